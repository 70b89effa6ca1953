# Shared by the Ruby driver checks: the harness's environment and the
# output format (one key=value line per check).
require "uri"

module Check
  HOST = ENV.fetch("MG_HOST")
  PORT = Integer(ENV.fetch("MG_PORT"))
  DB = ENV.fetch("MG_DB")
  USER_A = ENV.fetch("MG_USER_A")
  USER_B = ENV.fetch("MG_USER_B")
  PASSWORD = ENV.fetch("MG_PASSWORD")
  TENANT = ENV["MG_TENANT"] == "1"
  RUN = ENV.fetch("MG_RUN")
  SETS = [
    "SET extra_float_digits = 3",
    "SET client_min_messages TO 'warning'",
    "SET standard_conforming_strings = on",
    "SET intervalstyle = iso_8601",
    "SET SESSION timezone TO 'UTC'",
    "SET TIME ZONE 'UTC'",
    "SET application_name = 'mg-client-check'",
    "SET search_path TO public",
  ].freeze
  SHOWS = %w[extra_float_digits client_min_messages IntervalStyle TimeZone application_name search_path].freeze
  TYPES_SQL = %q{SELECT NULL::text AS n, '\x00ff10'::bytea AS b, '2020-01-02 03:04:05.678+00'::timestamptz AS ts, '{"a": [1, 2]}'::jsonb AS j}

  def self.url(user)
    "postgresql://#{URI.encode_www_form_component(user)}:#{URI.encode_www_form_component(PASSWORD)}@#{HOST}:#{PORT}/#{DB}"
  end

  def self.out(key, value)
    puts "#{key}=#{value}"
    $stdout.flush
  end
end

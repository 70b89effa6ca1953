# ActiveRecord (Rails' ORM) with the postgresql adapter's defaults: it sends
# SET client_min_messages, standard_conforming_strings, intervalstyle and
# SET SESSION timezone after connecting, prepared statements on. The
# migration runs through the bypass user, as the guide's migrations do.
require "active_record"
require_relative "common"
include Check

Check.out("version", ActiveRecord::VERSION::STRING)
ActiveRecord::Base.logger = nil
ActiveRecord::Migration.verbose = false

# The migration runs as the superuser: through the proxy's bypass path, or
# directly for the direct run.
bypass = { username: ENV.fetch("MG_BYPASS_USER"), password: ENV.fetch("MG_BYPASS_PASSWORD") }
base = { adapter: "postgresql", host: HOST, port: PORT, database: DB }

class Admin < ActiveRecord::Base
  self.abstract_class = true
end

table = "ar_widgets_#{RUN}".downcase.gsub(/[^a-z0-9_]/, "_")
Admin.establish_connection(base.merge(bypass))
Admin.connection.create_table(table, force: true) do |t|
  t.string :tenant_id
  t.string :name
  t.timestamps
end
Admin.connection.execute("SELECT multigres_protect('#{table}', 'tenant_id')")
Admin.remove_connection
Check.out("migration", "ok")

class TenantRecord < ActiveRecord::Base
  self.abstract_class = true
end

class Contact < TenantRecord
  self.table_name = "contacts"
end

widget = Class.new(TenantRecord) { self.table_name = table }

TenantRecord.establish_connection(base.merge(username: USER_A, password: PASSWORD, pool: 4))
conn = TenantRecord.connection
Check.out("connect.params", conn.select_value("SELECT 1"))
Check.out("connect.url", "n/a")
total = (0...10).sum { |i| widget.where(name: "n#{i}").count + i }
Check.out("params", total)
Check.out("types", conn.select_rows(TYPES_SQL).first.map(&:to_s).join("|"))

widget.transaction do
  widget.create!(name: "#{RUN}-rb")
  raise ActiveRecord::Rollback
end
n = widget.where(name: "#{RUN}-rb").count
widget.transaction { widget.create!(name: "#{RUN}-ok") }
m = widget.where(name: "#{RUN}-ok").count
Check.out("tx", "rolled back #{n}, committed #{m}")
Check.out("model", widget.where(name: "#{RUN}-ok").pluck(:name).map { |x| x.delete_prefix(RUN) }.join(","))

begin
  conn.execute("SELECT 1/0")
rescue ActiveRecord::StatementInvalid => e
  Check.out("error", e.cause.respond_to?(:result) ? e.cause.result.error_field(PG::Result::PG_DIAG_SQLSTATE) : e.cause.class)
end
Check.out("error.recovered", conn.select_value("SELECT 2"))
Check.out("copy", "n/a")
Check.out("cursor", "n/a")
Check.out("cancel", "n/a")
Check.out("show.client_min_messages", conn.select_value("SHOW client_min_messages"))
Check.out("show.IntervalStyle", conn.select_value("SHOW intervalstyle"))
Check.out("show.TimeZone", conn.select_value("SHOW timezone"))
Check.out("show.standard_conforming_strings", conn.select_value("SHOW standard_conforming_strings"))
Check.out("notify", "n/a")

results = [[], []]
lock = Mutex.new
if TENANT
  Other = Class.new(ActiveRecord::Base) { self.abstract_class = true }
  Other.establish_connection(base.merge(username: USER_B, password: PASSWORD, pool: 4))
  OtherContact = Class.new(Other) { self.table_name = "contacts" }
end
models = [Contact, TENANT ? OtherContact : Contact]
threads = (0...8).map do |w|
  i = w % 2
  Thread.new do
    5.times do
      models[i].connection_pool.with_connection do
        v = models[i].transaction { models[i].order(:name).pluck(:name).join(",") }
        lock.synchronize { results[i] << v }
      end
    end
  end
end
threads.each(&:join)
Check.out("pool", "#{results[0].size}+#{results[1].size}")
if TENANT
  Check.out("tenant.pool_a", results[0].uniq.sort.join(","))
  Check.out("tenant.pool_b", results[1].uniq.sort.join(","))
  Check.out("tenant.a_names", Contact.order(:name).pluck(:name).join(","))
  Check.out("tenant.b_names", OtherContact.order(:name).pluck(:name).join(","))
  Check.out("tenant.widgets_b", OtherContact.connection.select_value("SELECT count(*) FROM #{table}").to_s)
end
widget.where("name LIKE ?", "#{RUN}%").delete_all

# ruby-pg with its defaults (exec / exec_params, PG::Connection per thread).
require "pg"
require_relative "common"
include Check

Check.out("version", PG::VERSION)
c0 = PG.connect(host: HOST, port: PORT, dbname: DB, user: USER_A, password: PASSWORD)
Check.out("connect.params", c0.exec("SELECT 1 AS x")[0]["x"])
c0.close
c = PG.connect(Check.url(USER_A))
Check.out("connect.url", c.exec("SELECT 1 AS x")[0]["x"])

total = (0...10).sum { |i| c.exec_params("SELECT $1::int + $2::int AS s", [i, 1])[0]["s"].to_i }
c.prepare("sum2", "SELECT $1::int * 2 AS s")
total2 = (0...6).sum { |i| c.exec_prepared("sum2", [i])[0]["s"].to_i }
c.exec("DEALLOCATE sum2")
Check.out("params", "#{total} #{total2}")

r = c.exec(TYPES_SQL)[0]
Check.out("types", "#{r['n'].inspect}|#{c.unescape_bytea(r['b']).unpack1('H*')}|#{r['ts']}|#{r['j']}")
r2 = c.exec_params("SELECT $1::bytea AS b, $2::jsonb AS j, $3::timestamptz AS ts",
                   [{ value: "\x01\x02", format: 1 }, '{"k": "v"}', r["ts"]])[0]
Check.out("types.params", "#{c.unescape_bytea(r2['b']).unpack1('H*')}|#{r2['j']}|#{r2['ts']}")

c.exec("BEGIN")
c.exec_params("INSERT INTO scratch (v) VALUES ($1)", ["#{RUN}-rb"])
c.exec("ROLLBACK")
n = c.exec_params("SELECT count(*) AS n FROM scratch WHERE v = $1", ["#{RUN}-rb"])[0]["n"]
c.transaction { |t| t.exec_params("INSERT INTO scratch (v) VALUES ($1)", ["#{RUN}-ok"]) }
m = c.exec_params("SELECT count(*) AS n FROM scratch WHERE v = $1", ["#{RUN}-ok"])[0]["n"]
c.exec_params("DELETE FROM scratch WHERE v LIKE $1", ["#{RUN}%"])
Check.out("tx", "rolled back #{n}, committed #{m}")

begin
  c.exec("SELECT 1/0")
rescue PG::Error => e
  Check.out("error", e.result.error_field(PG::Result::PG_DIAG_SQLSTATE))
end
Check.out("error.recovered", c.exec("SELECT 2 AS x")[0]["x"])

rows = []
c.copy_data("COPY (SELECT g FROM generate_series(1, 3) g) TO STDOUT") do
  while (line = c.get_copy_data)
    rows << line.strip
  end
end
Check.out("copy", rows.join(","))

vals = []
c.transaction do |t|
  t.exec("DECLARE mgcur CURSOR FOR SELECT g FROM generate_series(1, 5) g")
  loop do
    res = t.exec("FETCH 2 FROM mgcur")
    break if res.ntuples.zero?
    vals.concat(res.map { |x| x["g"] })
  end
end
Check.out("cursor", vals.join(","))

c.exec("SET statement_timeout = '200ms'")
begin
  c.exec("SELECT pg_sleep(3)")
rescue PG::Error => e
  Check.out("statement_timeout", e.result.error_field(PG::Result::PG_DIAG_SQLSTATE))
end
c.exec("RESET statement_timeout")
canceller = Thread.new { sleep 0.3; c.cancel }
begin
  c.exec("SELECT pg_sleep(3)")
  Check.out("cancel", "not cancelled")
rescue PG::Error => e
  Check.out("cancel", e.result&.error_field(PG::Result::PG_DIAG_SQLSTATE) || e.class)
end
canceller.join
Check.out("cancel.recovered", c.exec("SELECT 3 AS x")[0]["x"])

SETS.each { |s| c.exec(s) }
SHOWS.each { |name| Check.out("show.#{name}", c.exec_params("SELECT current_setting($1) AS v", [name])[0]["v"]) }
c.exec("RESET ALL")
Check.out("reset_all", c.exec("SHOW extra_float_digits")[0]["extra_float_digits"])

def wait_notify(conn, timeout)
  got = nil
  conn.wait_for_notify(timeout) { |ch, _pid, payload| got = "#{ch}:#{payload}" }
  got
end

listener = PG.connect(Check.url(USER_A))
listener.exec("LISTEN mg_events")
c.exec("NOTIFY mg_events, 'p1'")
Check.out("notify", wait_notify(listener, 5) || "timeout")
if TENANT
  other = PG.connect(Check.url(USER_B))
  other.exec("LISTEN mg_events")
  c.exec("NOTIFY mg_events, 'secret-a'")
  heard = wait_notify(other, 0.5)
  Check.out("tenant.cross_notify", heard ? heard.split(":", 2)[1] : "none")
  other.close
end
listener.close
c.close

# A hand-made pool per tenant: four connections, eight threads.
results = [[], []]
lock = Mutex.new
pools = [USER_A, USER_B].map { |u| Queue.new.tap { |q| 4.times { q << PG.connect(Check.url(u)) } } }
threads = (0...8).map do |w|
  i = w % 2
  Thread.new do
    5.times do
      pc = pools[i].pop
      begin
        v = pc.transaction { |t| t.exec("SELECT string_agg(name, ',' ORDER BY name) AS n FROM contacts")[0]["n"] }
        lock.synchronize { results[i] << v }
      ensure
        pools[i] << pc
      end
    end
  end
end
threads.each(&:join)
Check.out("pool", "#{results[0].size}+#{results[1].size}")
if TENANT
  Check.out("tenant.pool_a", results[0].uniq.sort.join(","))
  Check.out("tenant.pool_b", results[1].uniq.sort.join(","))
  %w[tenant.a_names tenant.b_names].each_with_index do |key, i|
    pc = pools[i].pop
    Check.out(key, pc.exec("SELECT string_agg(name, ',' ORDER BY name) AS n FROM contacts")[0]["n"])
    pools[i] << pc
  end
end
pools.each { |q| q.size.times { q.pop.close } }

// node-postgres (pg) with its defaults: unnamed statements for
// parameterised queries, named ones when asked, pg.Pool.
import pg from "pg";
import Cursor from "pg-cursor";
import copyStreams from "pg-copy-streams";
import { readFileSync } from "node:fs";
import net from "node:net";
import { env, url, SETS, SHOWS, TYPES_SQL, out, sleep, codeOf } from "./common.mjs";

const version = JSON.parse(readFileSync(new URL("./node_modules/pg/package.json", import.meta.url))).version;
out("version", version);

const c0 = new pg.Client({ host: env.host, port: env.port, database: env.database, user: env.userA, password: env.password });
await c0.connect();
out("connect.params", (await c0.query("SELECT 1 AS x")).rows[0].x);
await c0.end();
const c = new pg.Client({ connectionString: url(env.userA) });
await c.connect();
out("connect.url", (await c.query("SELECT 1 AS x")).rows[0].x);

let total = 0;
for (let i = 0; i < 10; i++) total += (await c.query("SELECT $1::int + $2::int AS s", [i, 1])).rows[0].s;
for (let i = 0; i < 6; i++) await c.query({ name: "named-sum", text: "SELECT $1::int AS s", values: [i] });
out("params", total);

let r = (await c.query(TYPES_SQL)).rows[0];
out("types", `${r.n}|${r.b.toString("hex")}|${r.ts.toISOString()}|${JSON.stringify(r.j)}`);
const r2 = (await c.query("SELECT $1::bytea AS b, $2::jsonb AS j, $3::timestamptz AS ts", [Buffer.from([1, 2]), { k: "v" }, r.ts])).rows[0];
out("types.params", `${r2.b.toString("hex")}|${JSON.stringify(r2.j)}|${r2.ts.toISOString()}`);

await c.query("BEGIN");
await c.query("INSERT INTO scratch (v) VALUES ($1)", [env.run + "-rb"]);
await c.query("ROLLBACK");
const n = (await c.query("SELECT count(*)::int AS n FROM scratch WHERE v = $1", [env.run + "-rb"])).rows[0].n;
await c.query("BEGIN");
await c.query("INSERT INTO scratch (v) VALUES ($1)", [env.run + "-ok"]);
await c.query("COMMIT");
const m = (await c.query("SELECT count(*)::int AS n FROM scratch WHERE v = $1", [env.run + "-ok"])).rows[0].n;
await c.query("DELETE FROM scratch WHERE v LIKE $1", [env.run + "%"]);
out("tx", `rolled back ${n}, committed ${m}`);

try { await c.query("SELECT 1/0"); } catch (e) { out("error", codeOf(e)); }
out("error.recovered", (await c.query("SELECT 2 AS x")).rows[0].x);

const chunks = [];
await new Promise((resolve, reject) => {
  const s = c.query(copyStreams.to("COPY (SELECT g FROM generate_series(1, 3) g) TO STDOUT"));
  s.on("data", (d) => chunks.push(d));
  s.on("end", resolve);
  s.on("error", reject);
});
out("copy", Buffer.concat(chunks).toString().trim().split("\n").join(","));

await c.query("BEGIN");
const cur = c.query(new Cursor("SELECT g FROM generate_series(1, 5) g"));
const vals = [];
for (;;) {
  const rows = await cur.read(2);
  if (rows.length === 0) break;
  vals.push(...rows.map((x) => x.g));
}
await cur.close();
await c.query("COMMIT");
out("cursor", vals.join(","));

await c.query("SET statement_timeout = '200ms'");
try { await c.query("SELECT pg_sleep(3)"); out("statement_timeout", "none"); } catch (e) { out("statement_timeout", codeOf(e)); }
await c.query("RESET statement_timeout");
// node-postgres has no cancel call; the protocol's CancelRequest, with
// the key the server (here: the proxy) gave the client, is what it would
// send.
const q = c.query("SELECT pg_sleep(3)").then(() => "not cancelled", (e) => codeOf(e));
await sleep(300);
await new Promise((resolve, reject) => {
  const sock = net.connect(env.port, env.host, () => {
    const b = Buffer.alloc(16);
    b.writeInt32BE(16, 0);
    b.writeInt32BE(80877102, 4);
    b.writeInt32BE(c.processID, 8);
    b.writeInt32BE(c.secretKey, 12);
    sock.end(b);
  });
  sock.on("close", resolve);
  sock.on("error", reject);
});
out("cancel", await q);
out("cancel.recovered", (await c.query("SELECT 3 AS x")).rows[0].x);

for (const s of SETS) await c.query(s);
for (const name of SHOWS) out("show." + name, (await c.query("SELECT current_setting($1) AS v", [name])).rows[0].v);
await c.query("RESET ALL");
out("reset_all", (await c.query("SHOW extra_float_digits")).rows[0].extra_float_digits);

const listener = new pg.Client({ connectionString: url(env.userA) });
await listener.connect();
const heardA = [];
listener.on("notification", (msg) => heardA.push(`${msg.channel}:${msg.payload}`));
await listener.query("LISTEN mg_events");
await c.query("NOTIFY mg_events, 'p1'");
for (let i = 0; i < 100 && heardA.length === 0; i++) await sleep(50);
out("notify", heardA.join(",") || "timeout");
if (env.tenant) {
  const other = new pg.Client({ connectionString: url(env.userB) });
  await other.connect();
  const heardB = [];
  other.on("notification", (msg) => heardB.push(msg.payload));
  await other.query("LISTEN mg_events");
  await c.query("NOTIFY mg_events, 'secret-a'");
  await sleep(500);
  out("tenant.cross_notify", heardB.join(",") || "none");
  await other.end();
}
await listener.end();
await c.end();

const pools = [env.userA, env.userB].map((u) => new pg.Pool({ connectionString: url(u), max: 4 }));
const results = [[], []];
await Promise.all(Array.from({ length: 8 }, async (_, w) => {
  const i = w % 2;
  for (let k = 0; k < 5; k++) {
    const pc = await pools[i].connect();
    try {
      await pc.query("BEGIN");
      results[i].push((await pc.query("SELECT string_agg(name, ',' ORDER BY name) AS n FROM contacts")).rows[0].n);
      await pc.query("COMMIT");
    } finally { pc.release(); }
  }
}));
out("pool", `${results[0].length}+${results[1].length}`);
if (env.tenant) {
  out("tenant.pool_a", [...new Set(results[0])].sort().join(","));
  out("tenant.pool_b", [...new Set(results[1])].sort().join(","));
  out("tenant.a_names", (await pools[0].query("SELECT string_agg(name, ',' ORDER BY name) AS n FROM contacts")).rows[0].n);
  out("tenant.b_names", (await pools[1].query("SELECT string_agg(name, ',' ORDER BY name) AS n FROM contacts")).rows[0].n);
}
await Promise.all(pools.map((p) => p.end()));

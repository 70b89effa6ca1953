// postgres.js with its defaults: named prepared statements for every
// parameterised query (prepare: true), its own pool.
import postgres from "postgres";
import { readFileSync } from "node:fs";
import { env, url, SETS, SHOWS, TYPES_SQL, out, sleep, codeOf } from "./common.mjs";

out("version", JSON.parse(readFileSync(new URL("./node_modules/postgres/package.json", import.meta.url))).version);
const quiet = { onnotice: () => {} };
const s0 = postgres({ host: env.host, port: env.port, database: env.database, username: env.userA, password: env.password, max: 1, ...quiet });
out("connect.params", (await s0`SELECT 1 AS x`)[0].x);
await s0.end();
// One connection, so settings and errors stay on it.
const sql = postgres(url(env.userA), { max: 1, ...quiet });
out("connect.url", (await sql`SELECT 1 AS x`)[0].x);

let total = 0;
for (let i = 0; i < 10; i++) total += (await sql`SELECT ${i}::int + ${1}::int AS s`)[0].s;
out("params", total);

const r = (await sql.unsafe(TYPES_SQL))[0];
out("types", `${r.n}|${Buffer.from(r.b).toString("hex")}|${r.ts.toISOString()}|${JSON.stringify(r.j)}`);
const r2 = (await sql`SELECT ${Buffer.from([1, 2])}::bytea AS b, ${sql.json({ k: "v" })}::jsonb AS j, ${r.ts}::timestamptz AS ts`)[0];
out("types.params", `${Buffer.from(r2.b).toString("hex")}|${JSON.stringify(r2.j)}|${r2.ts.toISOString()}`);

try {
  await sql.begin(async (tx) => {
    await tx`INSERT INTO scratch (v) VALUES (${env.run + "-rb"})`;
    throw new Error("roll back");
  });
} catch { /* rolled back */ }
const n = (await sql`SELECT count(*)::int AS n FROM scratch WHERE v = ${env.run + "-rb"}`)[0].n;
await sql.begin(async (tx) => { await tx`INSERT INTO scratch (v) VALUES (${env.run + "-ok"})`; });
const m = (await sql`SELECT count(*)::int AS n FROM scratch WHERE v = ${env.run + "-ok"}`)[0].n;
await sql`DELETE FROM scratch WHERE v LIKE ${env.run + "%"}`;
out("tx", `rolled back ${n}, committed ${m}`);

try { await sql`SELECT 1/0`; } catch (e) { out("error", codeOf(e)); }
out("error.recovered", (await sql`SELECT 2 AS x`)[0].x);

const chunks = [];
const stream = await sql`COPY (SELECT g FROM generate_series(1, 3) g) TO STDOUT`.readable();
for await (const chunk of stream) chunks.push(chunk);
out("copy", Buffer.concat(chunks).toString().trim().split("\n").join(","));

const vals = [];
await sql.begin(async (tx) => {
  for await (const rows of tx`SELECT g FROM generate_series(1, 5) g`.cursor(2)) vals.push(...rows.map((x) => x.g));
});
out("cursor", vals.join(","));

await sql`SET statement_timeout = '200ms'`;
try { await sql`SELECT pg_sleep(3)`; out("statement_timeout", "none"); } catch (e) { out("statement_timeout", codeOf(e)); }
await sql`RESET statement_timeout`;
const q = sql`SELECT pg_sleep(3)`;
const p = q.then(() => "not cancelled", (e) => codeOf(e));
await sleep(300);
q.cancel();
out("cancel", await p);
out("cancel.recovered", (await sql`SELECT 3 AS x`)[0].x);

for (const s of SETS) await sql.unsafe(s);
for (const name of SHOWS) out("show." + name, (await sql`SELECT current_setting(${name}) AS v`)[0].v);
await sql`RESET ALL`;
out("reset_all", (await sql`SHOW extra_float_digits`)[0].extra_float_digits);

const heardA = [];
const la = postgres(url(env.userA), { max: 1, ...quiet });
await la.listen("mg_events", (payload) => heardA.push(`mg_events:${payload}`));
await sql`NOTIFY mg_events, 'p1'`;
for (let i = 0; i < 100 && heardA.length === 0; i++) await sleep(50);
out("notify", heardA.join(",") || "timeout");
if (env.tenant) {
  const heardB = [];
  const lb = postgres(url(env.userB), { max: 1, ...quiet });
  await lb.listen("mg_events", (payload) => heardB.push(payload));
  await sql`NOTIFY mg_events, 'secret-a'`;
  await sleep(500);
  out("tenant.cross_notify", heardB.join(",") || "none");
  await lb.end();
}
await la.end();
await sql.end();

const pools = [env.userA, env.userB].map((u) => postgres(url(u), { max: 4, ...quiet }));
const results = [[], []];
await Promise.all(Array.from({ length: 8 }, async (_, w) => {
  const i = w % 2;
  for (let k = 0; k < 5; k++) {
    await pools[i].begin(async (tx) => {
      results[i].push((await tx`SELECT string_agg(name, ',' ORDER BY name) AS n FROM contacts`)[0].n);
    });
  }
}));
out("pool", `${results[0].length}+${results[1].length}`);
if (env.tenant) {
  out("tenant.pool_a", [...new Set(results[0])].sort().join(","));
  out("tenant.pool_b", [...new Set(results[1])].sort().join(","));
  out("tenant.a_names", (await pools[0]`SELECT string_agg(name, ',' ORDER BY name) AS n FROM contacts`)[0].n);
  out("tenant.b_names", (await pools[1]`SELECT string_agg(name, ',' ORDER BY name) AS n FROM contacts`)[0].n);
}
await Promise.all(pools.map((p) => p.end()));

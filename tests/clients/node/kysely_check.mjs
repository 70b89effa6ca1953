// Kysely with its PostgresDialect over a pg.Pool (its documented setup).
import { Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import Cursor from "pg-cursor";
import { readFileSync } from "node:fs";
import { env, url, SETS, SHOWS, TYPES_SQL, out, codeOf } from "./common.mjs";

out("version", JSON.parse(readFileSync(new URL("./node_modules/kysely/package.json", import.meta.url))).version);
const make = (conn, max) => new Kysely({ dialect: new PostgresDialect({ pool: new pg.Pool({ ...conn, max }), cursor: Cursor }) });

const k0 = make({ host: env.host, port: env.port, database: env.database, user: env.userA, password: env.password }, 1);
out("connect.params", (await sql`SELECT 1 AS x`.execute(k0)).rows[0].x);
await k0.destroy();
const db = make({ connectionString: url(env.userA) }, 1);
out("connect.url", (await sql`SELECT 1 AS x`.execute(db)).rows[0].x);

let total = 0;
for (let i = 0; i < 10; i++) total += (await sql`SELECT ${i}::int + ${1}::int AS s`.execute(db)).rows[0].s;
out("params", total);
const r = (await sql.raw(TYPES_SQL).execute(db)).rows[0];
out("types", `${r.n}|${r.b.toString("hex")}|${r.ts.toISOString()}|${JSON.stringify(r.j)}`);
const r2 = (await sql`SELECT ${Buffer.from([1, 2])}::bytea AS b, ${JSON.stringify({ k: "v" })}::jsonb AS j, ${r.ts}::timestamptz AS ts`.execute(db)).rows[0];
out("types.params", `${r2.b.toString("hex")}|${JSON.stringify(r2.j)}|${r2.ts.toISOString()}`);

try {
  await db.transaction().execute(async (tx) => {
    await tx.insertInto("scratch").values({ v: env.run + "-rb" }).execute();
    throw new Error("roll back");
  });
} catch { /* rolled back */ }
const count = async (v) => Number((await db.selectFrom("scratch").select(db.fn.countAll().as("n")).where("v", "=", v).executeTakeFirst()).n);
const n = await count(env.run + "-rb");
await db.transaction().execute(async (tx) => { await tx.insertInto("scratch").values({ v: env.run + "-ok" }).execute(); });
const m = await count(env.run + "-ok");
await db.deleteFrom("scratch").where("v", "like", env.run + "%").execute();
out("tx", `rolled back ${n}, committed ${m}`);

try { await sql`SELECT 1/0`.execute(db); } catch (e) { out("error", codeOf(e)); }
out("error.recovered", (await sql`SELECT 2 AS x`.execute(db)).rows[0].x);
out("copy", "n/a");
const vals = [];
await db.transaction().execute(async (tx) => {
  for await (const row of tx.selectFrom(sql`generate_series(1, 5)`.as("g")).select(sql`g`.as("g")).stream(2)) vals.push(row.g);
});
out("cursor", vals.join(","));

await db.connection().execute(async (c) => {
  await sql`SET statement_timeout = '200ms'`.execute(c);
  try { await sql`SELECT pg_sleep(3)`.execute(c); out("statement_timeout", "none"); } catch (e) { out("statement_timeout", codeOf(e)); }
  await sql`RESET statement_timeout`.execute(c);
  out("cancel", "n/a");
  out("cancel.recovered", (await sql`SELECT 3 AS x`.execute(c)).rows[0].x);
  for (const s of SETS) await sql.raw(s).execute(c);
  for (const name of SHOWS) out("show." + name, (await sql`SELECT current_setting(${name}) AS v`.execute(c)).rows[0].v);
  await sql`RESET ALL`.execute(c);
  out("reset_all", (await sql`SHOW extra_float_digits`.execute(c)).rows[0].extra_float_digits);
});
out("notify", "n/a");
await db.destroy();

const dbs = [env.userA, env.userB].map((u) => make({ connectionString: url(u) }, 4));
const results = [[], []];
await Promise.all(Array.from({ length: 8 }, async (_, w) => {
  const i = w % 2;
  for (let k = 0; k < 5; k++) {
    await dbs[i].transaction().execute(async (tx) => {
      const rows = await tx.selectFrom("contacts").select("name").orderBy("name").execute();
      results[i].push(rows.map((x) => x.name).join(","));
    });
  }
}));
out("pool", `${results[0].length}+${results[1].length}`);
if (env.tenant) {
  out("tenant.pool_a", [...new Set(results[0])].sort().join(","));
  out("tenant.pool_b", [...new Set(results[1])].sort().join(","));
  for (const [i, key] of [[0, "tenant.a_names"], [1, "tenant.b_names"]]) {
    out(key, (await dbs[i].selectFrom("contacts").select("name").orderBy("name").execute()).map((x) => x.name).join(","));
  }
}
await Promise.all(dbs.map((d) => d.destroy()));

// db.ts — the guide's connection code. The only change from the guide: host
// and port come from MULTIGRES_HOST / MULTIGRES_PORT (defaults are the guide's
// "localhost" and 6432), so the tests can point them at a throwaway proxy.
// The guide gives two different functions the name getTenantDb; one module
// cannot, so the max: 1 and the two-variable forms are renamed here.
import { drizzle, NodePgDatabase } from "drizzle-orm/node-postgres";
import { Pool } from "pg";
import * as schema from "./schema";

function multigresHost(): string {
  return process.env.MULTIGRES_HOST || "localhost";
}

function multigresPort(): number {
  return Number(process.env.MULTIGRES_PORT || 6432);
}

// "Database connection": one new pool per call.
export function createTenantDb(tenantId: string) {
  const pool = new Pool({
    host: multigresHost(),
    port: multigresPort(),               // Multigres port
    user: `app_user.${tenantId}`,        // tenant encoded in username
    password: "app_user_password",
    database: "mydb",
  });

  return drizzle(pool, { schema });
}

// "Pool-per-tenant": one cached pool per tenant.
const tenantPools = new Map<string, NodePgDatabase<typeof schema>>();

export function getTenantDb(tenantId: string): NodePgDatabase<typeof schema> {
  let db = tenantPools.get(tenantId);
  if (!db) {
    const pool = new Pool({
      host: multigresHost(),
      port: multigresPort(),
      user: `app_user.${tenantId}`,
      password: "app_user_password",
      database: "mydb",
      max: 5,                  // per-tenant pool size
      idleTimeoutMillis: 30000,
    });
    db = drizzle(pool, { schema });
    tenantPools.set(tenantId, db);
  }
  return db;
}

// Not in the guide: ends the cached pools, for a clean shutdown.
export async function closeTenantPools(): Promise<void> {
  const dbs = [...tenantPools.values()];
  tenantPools.clear();
  // drizzle() keeps the pool as $client; NodePgDatabase does not declare it.
  await Promise.all(dbs.map((db) => (db as typeof db & { $client: Pool }).$client.end()));
}

// "Single shared pool" (the guide's second getTenantDb): a new pool with one
// connection per request.
export function getTenantDbPerRequest(tenantId: string): NodePgDatabase<typeof schema> {
  const pool = new Pool({
    host: multigresHost(),
    port: multigresPort(),
    user: `app_user.${tenantId}`,
    password: "app_user_password",
    database: "mydb",
    max: 1,
  });
  return drizzle(pool, { schema });
}

// "Multiple context variables" / "After (Multigres)" (the guide's
// getTenantDb(listId, userId)): both values in the username, separated by ':'.
export function getListUserDb(listId: string, userId: string) {
  const pool = new Pool({
    host: multigresHost(),
    port: multigresPort(),
    user: `app_user.${listId}:${userId}`,
    password: "app_user_password",
    database: "mydb",
  });
  return drizzle(pool, { schema });
}

// guide.test.ts — runs the Drizzle guide's code against `multigres demo`.
// The demo seeds contacts for tenant acme (Alice, Bob) and globex (Grace).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/node-postgres";
import pg, { Pool } from "pg";
import {
  closeTenantPools,
  createTenantDb,
  getListUserDb,
  getTenantDb,
  getTenantDbPerRequest,
} from "../src/db";
import * as schema from "../src/schema";
import { auditLog, contacts } from "../src/schema";
import { app, createApp, type TenantDb } from "../src/server";
import { freePort, multigresBinary, startDemo, type Binary, type Demo } from "./harness";

type Contact = typeof contacts.$inferSelect;

const listVars = ["app.current_list_id", "app.current_user_id"];

let binary: Binary;
let demo: Demo; // one context variable (app.current_tenant_id)
let listDemo: Demo; // -context-variables app.current_list_id,app.current_user_id
let adminPool: Pool;
let adminDb: TenantDb;
const servers: Server[] = [];
const extraPools: Pool[] = [];

// Every pg client the tests open, with a promise of its socket's end. Pool.end()
// resolves before its clients' sockets close; a client still open when the demo
// stops gets the proxy's FATAL 57P01, and its pool emits 'error' with no
// handler, which ends the test process. after() awaits these first.
const clientEnds = new Set<Promise<void>>();
const connect = pg.Client.prototype.connect;
pg.Client.prototype.connect = function (this: pg.Client, ...args: unknown[]) {
  clientEnds.add(new Promise<void>((resolve) => this.once("end", () => resolve())));
  return (connect as (...a: unknown[]) => unknown).apply(this, args);
} as typeof connect;

async function listen(a: typeof app): Promise<string> {
  const server = a.listen(await freePort(), "127.0.0.1");
  servers.push(server);
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function pool(config: ConstructorParameters<typeof Pool>[0]): Pool {
  const p = new Pool(config);
  extraPools.push(p);
  return p;
}

function endPool(db: TenantDb): Promise<void> {
  return (db as TenantDb & { $client: Pool }).$client.end();
}

async function getContacts(base: string, tenant: string): Promise<Contact[]> {
  const res = await fetch(`${base}/contacts`, { headers: { "x-tenant-id": tenant } });
  assert.equal(res.status, 200, `GET /contacts as ${tenant}: ${await res.clone().text()}`);
  return (await res.json()) as Contact[];
}

function names(rows: { name: string }[]): string[] {
  return rows.map((r) => r.name).sort();
}

before(async () => {
  binary = await multigresBinary();
  const started = await Promise.allSettled([
    startDemo(binary.path),
    startDemo(binary.path, { contextVariables: listVars }),
  ]);
  const failed = started.find((s) => s.status === "rejected");
  if (failed) {
    await Promise.all(started.map((s) => (s.status === "fulfilled" ? s.value.stop() : undefined)));
    throw (failed as PromiseRejectedResult).reason;
  }
  [demo, listDemo] = started.map((s) => (s as PromiseFulfilledResult<Demo>).value);
  // src/db.ts reads these; the guide's "localhost" host is kept.
  process.env.MULTIGRES_PORT = String(demo.port);

  // The guide's admin pool: the superuser bypass, through Multigres.
  adminPool = new Pool({
    host: "localhost",
    port: demo.port,
    user: "postgres",
    password: "postgres", // the demo's superuser password
    database: "mydb",
  });
  adminDb = drizzle(adminPool, { schema });
  await adminPool.query(`CREATE TABLE IF NOT EXISTS audit_log (
    id serial PRIMARY KEY,
    tenant_id varchar(255) NOT NULL,
    action text NOT NULL)`);
  await adminPool.query(`SELECT multigres_protect('audit_log', 'tenant_id')`);
});

after(async () => {
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  // Pools end before the proxy stops: an idle pg client whose server goes
  // away makes its pool emit 'error', which crashes a process without a handler.
  await closeTenantPools();
  await Promise.all(extraPools.map((p) => p.end()));
  await adminPool?.end();
  // Bounded: a client a test forgot to end must not hang the suite.
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(clientEnds),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, 10_000))),
  ]);
  clearTimeout(timer);
  const stops = await Promise.allSettled([demo?.stop(), listDemo?.stop()]);
  await binary?.cleanup();
  for (const s of stops) {
    if (s.status === "rejected") throw s.reason;
  }
});

describe("Express integration (pool-per-tenant)", () => {
  let base: string;
  before(async () => {
    base = await listen(app);
  });

  test("each tenant sees only its own contacts", async () => {
    const acme = await getContacts(base, "acme");
    assert.deepEqual(names(acme), ["Alice", "Bob"]);
    assert.ok(acme.every((c) => c.tenantId === "acme"));
    const globex = await getContacts(base, "globex");
    assert.deepEqual(names(globex), ["Grace"]);
    assert.equal(globex[0].tenantId, "globex");
    assert.deepEqual(await getContacts(base, "initech"), [], "an unknown tenant sees nothing");
  });

  test("a request without x-tenant-id gets 400", async () => {
    const res = await fetch(`${base}/contacts`);
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), { error: "Missing tenant ID" });
  });

  test("deleting another tenant's contact affects zero rows", async () => {
    const [grace] = await getContacts(base, "globex");
    const res = await fetch(`${base}/contacts/${grace.id}`, {
      method: "DELETE",
      headers: { "x-tenant-id": "acme" },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { ok: true, deleted: 0 });
    assert.deepEqual(names(await getContacts(base, "globex")), ["Grace"]);
    const stored = await adminDb.select().from(contacts).where(eq(contacts.id, grace.id));
    assert.equal(stored.length, 1, "Grace is still in the table");
  });

  test("deleting an own contact works (the route is not a no-op)", async () => {
    const created = await fetch(`${base}/contacts`, {
      method: "POST",
      headers: { "x-tenant-id": "acme", "content-type": "application/json" },
      body: JSON.stringify({ name: "Temp" }),
    });
    assert.equal(created.status, 201);
    const { id } = (await created.json()) as Contact;
    const res = await fetch(`${base}/contacts/${id}`, { method: "DELETE", headers: { "x-tenant-id": "acme" } });
    assert.deepEqual(await res.json(), { ok: true, deleted: 1 });
    assert.deepEqual(names(await getContacts(base, "acme")), ["Alice", "Bob"]);
  });

  test("POST /contacts inserts the contact and its audit row in one transaction", async () => {
    const res = await fetch(`${base}/contacts`, {
      method: "POST",
      headers: { "x-tenant-id": "globex", "content-type": "application/json" },
      body: JSON.stringify({ name: "Heidi", email: "heidi@globex.test" }),
    });
    assert.equal(res.status, 201, await res.clone().text());
    const heidi = (await res.json()) as Contact;
    assert.equal(heidi.tenantId, "globex");
    assert.deepEqual(names(await getContacts(base, "globex")), ["Grace", "Heidi"]);
    assert.deepEqual(names(await getContacts(base, "acme")), ["Alice", "Bob"]);
    const audit = await adminDb.select().from(auditLog).where(eq(auditLog.tenantId, "globex"));
    assert.deepEqual(
      audit.map((a) => a.action),
      ["contact_created"],
    );
    // Clean up so later tests see the seed data only.
    await adminDb.delete(contacts).where(eq(contacts.id, heidi.id));
    await adminDb.delete(auditLog);
  });
});

describe("Transactions", () => {
  test("a failing second insert rolls back the first", async () => {
    const db = getTenantDb("acme");
    let insertedId: number | undefined;
    await assert.rejects(
      db.transaction(async (tx) => {
        const [row] = await tx
          .insert(contacts)
          .values({ name: "Mallory", tenantId: "acme", email: "m@acme.test" })
          .returning();
        insertedId = row.id;
        // Another tenant's id: the policy's WITH CHECK refuses the row.
        await tx.insert(auditLog).values({ action: "contact_created", tenantId: "globex" });
      }),
      (err: Error & { cause?: { code?: string } }) => {
        const code = (err as { code?: string }).code ?? err.cause?.code;
        assert.equal(code, "42501", `expected an RLS violation, got ${err}`);
        return true;
      },
    );
    assert.ok(insertedId !== undefined, "the first insert ran inside the transaction");
    assert.deepEqual(await adminDb.select().from(contacts).where(eq(contacts.id, insertedId!)), []);
    assert.deepEqual(await adminDb.select().from(auditLog), []);
    // The pooled connection is usable, and still acme's, after the rollback.
    assert.deepEqual(names(await db.select().from(contacts)), ["Alice", "Bob"]);
  });

  test("both inserts commit together", async () => {
    const db = getTenantDb("acme");
    const tenantId = "acme";
    let id = 0;
    await db.transaction(async (tx) => {
      const [row] = await tx.insert(contacts).values({ name: "Alice", tenantId, email: "a@b.com" }).returning();
      id = row.id;
      await tx.insert(auditLog).values({ action: "contact_created", tenantId });
    });
    const stored = await adminDb.select().from(contacts).where(eq(contacts.id, id));
    assert.equal(stored.length, 1);
    assert.equal(stored[0].tenantId, "acme");
    const audit = await adminDb.select().from(auditLog);
    assert.deepEqual(
      audit.map((a) => [a.tenantId, a.action]),
      [["acme", "contact_created"]],
    );
    await adminDb.delete(contacts).where(eq(contacts.id, id));
    await adminDb.delete(auditLog);
  });
});

describe("Connections", () => {
  test("the connection URL form works with a pg Pool", async () => {
    const p = pool({
      connectionString: `postgresql://app_user.acme:app_user_password@127.0.0.1:${demo.port}/mydb`,
    });
    const { rows } = await p.query<{ tenant: string; role: string }>(
      "SELECT current_setting('app.current_tenant_id') AS tenant, current_user::text AS role",
    );
    assert.deepEqual(rows, [{ tenant: "acme", role: "app_user" }]);
    const db = drizzle(p, { schema });
    assert.deepEqual(names(await db.select().from(contacts)), ["Alice", "Bob"]);
  });

  test("the admin bypass pool sees every tenant", async () => {
    const all = await adminDb.select().from(contacts);
    assert.deepEqual(names(all), ["Alice", "Bob", "Grace"]);
    assert.deepEqual([...new Set(all.map((c) => c.tenantId))].sort(), ["acme", "globex"]);
  });

  test("pool-per-request with max: 1 works", async () => {
    const db = getTenantDbPerRequest("globex");
    try {
      const client = (db as TenantDb & { $client: Pool }).$client;
      assert.equal(client.options.max, 1);
      const results = await Promise.all([1, 2, 3].map(() => db.select().from(contacts)));
      for (const r of results) assert.deepEqual(names(r), ["Grace"]);
      assert.equal(client.totalCount, 1, "all queries shared the one connection");
    } finally {
      await endPool(db);
    }
  });

  test("the guide's middleware with createTenantDb (a pool per request) works", async () => {
    const created: TenantDb[] = [];
    const base = await listen(
      createApp((tenantId) => {
        const db = createTenantDb(tenantId);
        created.push(db);
        return db;
      }),
    );
    try {
      assert.deepEqual(names(await getContacts(base, "acme")), ["Alice", "Bob"]);
      assert.deepEqual(names(await getContacts(base, "globex")), ["Grace"]);
      assert.equal(created.length, 2);
    } finally {
      await Promise.all(created.map(endPool));
    }
  });

  test("a username without a tenant is refused with the guide's message", async () => {
    const p = pool({ host: "127.0.0.1", port: demo.port, user: "app_user", password: "app_user_password", database: "mydb" });
    await assert.rejects(p.query("SELECT 1"), /Username must contain context values separated by '\.'/);
  });
});

describe("Multiple context variables", () => {
  const check = "SELECT current_setting('app.current_list_id') AS list, current_setting('app.current_user_id') AS usr";

  test("app_user.list123%3Auser456 in a URL reaches Multigres as app_user.list123:user456", async () => {
    const p = pool({
      connectionString: `postgresql://app_user.list123%3Auser456:app_user_password@127.0.0.1:${listDemo.port}/mydb`,
    });
    const { rows } = await p.query(check);
    assert.deepEqual(rows, [{ list: "list123", usr: "user456" }]);
  });

  test("the two-variable getTenantDb(listId, userId) sets both variables", async () => {
    const saved = process.env.MULTIGRES_PORT;
    process.env.MULTIGRES_PORT = String(listDemo.port);
    let db: ReturnType<typeof getListUserDb>;
    try {
      db = getListUserDb("list123", "user456");
    } finally {
      process.env.MULTIGRES_PORT = saved;
    }
    try {
      const { rows } = await db.$client.query(check);
      assert.deepEqual(rows, [{ list: "list123", usr: "user456" }]);
    } finally {
      await endPool(db);
    }
  });

  test("one value where two are configured is refused with the guide's message", async () => {
    const p = pool({ host: "127.0.0.1", port: listDemo.port, user: "app_user.acme", password: "app_user_password", database: "mydb" });
    await assert.rejects(p.query("SELECT 1"), /Expected 2 context value\(s\), got 1/);
  });
});

// server.ts — the guide's Express server. Differences from the guide, each
// needed to make it compile and run: the imports of contacts, auditLog and eq;
// the declaration of req.db; the route id converted to a number; a POST route
// built from the guide's transaction example; a JSON error handler.
//
// The middleware takes its tenant-scoped db from a factory. The default is the
// guide's recommended pool-per-tenant getTenantDb. The guide's first example
// calls createTenantDb in the middleware, which opens a new pool on every
// request and never ends it; createApp(createTenantDb) runs that shape too.
import express, { type ErrorRequestHandler } from "express";
import { eq } from "drizzle-orm";
import type { NodePgDatabase } from "drizzle-orm/node-postgres";
import { getTenantDb } from "./db";
import * as schema from "./schema";
import { auditLog, contacts } from "./schema";

export type TenantDb = NodePgDatabase<typeof schema>;

declare global {
  namespace Express {
    interface Request {
      db: TenantDb;
      tenantId: string;
    }
  }
}

export function createApp(tenantDb: (tenantId: string) => TenantDb = getTenantDb) {
  const app = express();
  app.use(express.json());

  // Middleware: resolve tenant, attach scoped db to request
  app.use((req, res, next) => {
    const tenantId = req.headers["x-tenant-id"] as string;
    if (!tenantId) {
      return res.status(400).json({ error: "Missing tenant ID" });
    }

    // Create a tenant-scoped db — every query through this instance
    // is isolated to this tenant by the database, not by your code
    req.tenantId = tenantId;
    req.db = tenantDb(tenantId);
    next();
  });

  // Routes just use req.db — no tenant filtering needed
  app.get("/contacts", async (req, res) => {
    const result = await req.db.select().from(contacts).orderBy(contacts.id);
    res.json(result);
    // Returns ONLY this tenant's contacts. Guaranteed.
  });

  // The guide's transaction example behind a route: the contact and its audit
  // row commit together or not at all.
  app.post("/contacts", async (req, res) => {
    const { name, email } = req.body ?? {};
    if (typeof name !== "string" || (email !== undefined && typeof email !== "string")) {
      return res.status(400).json({ error: "name (string) required, email optional string" });
    }
    const tenantId = req.tenantId;
    const created = await req.db.transaction(async (tx) => {
      const [contact] = await tx.insert(contacts).values({ name, tenantId, email }).returning();
      await tx.insert(auditLog).values({ action: "contact_created", tenantId });
      return contact;
    });
    res.status(201).json(created);
  });

  app.delete("/contacts/:id", async (req, res) => {
    const id = Number(req.params.id);
    if (!Number.isSafeInteger(id)) {
      return res.status(400).json({ error: "id must be an integer" });
    }
    const result = await req.db.delete(contacts).where(eq(contacts.id, id));
    // Can only delete this tenant's contacts. Even if the ID belongs
    // to another tenant, the DELETE affects zero rows.
    res.json({ ok: true, deleted: result.rowCount });
  });

  // Express 5 passes rejected route promises here. The SQLSTATE tells a
  // caller what failed without echoing the database's message.
  const onError: ErrorRequestHandler = (err, _req, res, _next) => {
    const code = typeof err?.code === "string" ? err.code : undefined;
    res.status(500).json({ error: "Database error", code });
  };
  app.use(onError);

  return app;
}

export const app = createApp();


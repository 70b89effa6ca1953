// schema.ts — the guide's contacts table, unchanged, plus the audit_log table
// its transaction example writes to.
import { pgTable, serial, text, uuid, varchar } from "drizzle-orm/pg-core";

export const contacts = pgTable("contacts", {
  id: serial("id").primaryKey(),
  tenantId: varchar("tenant_id", { length: 255 }).notNull(),
  name: text("name").notNull(),
  email: text("email"),
});

// Not shown in the guide; the transaction example inserts into it. Protect it
// like contacts: SELECT multigres_protect('audit_log', 'tenant_id');
export const auditLog = pgTable("audit_log", {
  id: serial("id").primaryKey(),
  tenantId: varchar("tenant_id", { length: 255 }).notNull(),
  action: text("action").notNull(),
});

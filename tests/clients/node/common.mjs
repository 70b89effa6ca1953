// Shared by the Node.js driver checks: the harness's environment and the
// output format (one key=value line per check).
export const env = {
  host: process.env.MG_HOST,
  port: Number(process.env.MG_PORT),
  database: process.env.MG_DB,
  userA: process.env.MG_USER_A,
  userB: process.env.MG_USER_B,
  password: process.env.MG_PASSWORD,
  tenant: process.env.MG_TENANT === "1",
  run: process.env.MG_RUN,
};

export const url = (user) =>
  `postgres://${encodeURIComponent(user)}:${encodeURIComponent(env.password)}@${env.host}:${env.port}/${env.database}`;

export const SETS = [
  "SET extra_float_digits = 3",
  "SET client_min_messages TO 'warning'",
  "SET standard_conforming_strings = on",
  "SET intervalstyle = iso_8601",
  "SET SESSION timezone TO 'UTC'",
  "SET TIME ZONE 'UTC'",
  "SET application_name = 'mg-client-check'",
  "SET search_path TO public",
];
export const SHOWS = ["extra_float_digits", "client_min_messages", "IntervalStyle", "TimeZone", "application_name", "search_path"];
export const TYPES_SQL = `SELECT NULL::text AS n, '\\x00ff10'::bytea AS b, '2020-01-02 03:04:05.678+00'::timestamptz AS ts, '{"a": [1, 2]}'::jsonb AS j`;

export const out = (k, v) => console.log(`${k}=${v}`);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const codeOf = (e) => e?.code ?? String(e);

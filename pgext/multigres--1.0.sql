-- The C seal carrier. `multigres setup` installs it (CREATE EXTENSION
-- multigres), grants EXECUTE on set_nonce to the server user only, and
-- points multigres.context(text) at the C accessor multigres_context in
-- this module (setup owns that function, so it can switch between the SQL
-- and the C accessor without breaking the policies that call it).
\echo Use "CREATE EXTENSION multigres" (or multigres setup) to load this file. \quit

CREATE FUNCTION multigres.set_nonce(pg_catalog.int8) RETURNS pg_catalog.void
AS 'MODULE_PATHNAME', 'multigres_set_nonce'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

REVOKE ALL ON FUNCTION multigres.set_nonce(pg_catalog.int8) FROM PUBLIC;

package dbsetup

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// hardeningStep is one privilege change that keeps a tenant session from
// reaching SQL the proxy's statement guard cannot see, or from touching data
// that row level security does not cover. Every step is reversible; Undo is
// reported and documented in docs/hardening.md.
type hardeningStep struct {
	Name string
	Why  string
	// functions, when set, are pg_catalog function names (all overloads) or
	// exact signatures "name(argtypes)" whose EXECUTE is revoked from PUBLIC.
	functions []string
	// check returns true when the step is in effect (SQL, one boolean).
	check string
	// apply and undo are fixed statements; for function steps they are
	// generated from the signatures found in the catalog.
	apply, undo []string
}

// hardeningSteps lists the steps in the order Setup applies them. Superusers
// keep every privilege regardless; the proxy's server user needs none of
// these (it uses SET statements and setval on the nonce sequence).
func hardeningSteps() []hardeningStep {
	return []hardeningStep{
		{
			// A temp table is private to the session, but temp schemas let a tenant
			// shadow objects in the search_path for later statements in a pooled session.
			Name:  "temp-tables",
			Why:   "tenant sessions cannot create temporary tables (they could shadow application tables for later statements)",
			check: `SELECT NOT has_database_privilege('public', current_database(), 'TEMPORARY')`,
			apply: []string{`REVOKE TEMPORARY ON DATABASE {{DB}} FROM PUBLIC`},
			undo:  []string{`GRANT TEMPORARY ON DATABASE {{DB}} TO PUBLIC`},
		},
		{
			// DO blocks and new plpgsql functions run dynamic SQL the guard never sees.
			// Executing existing plpgsql functions does not need USAGE.
			Name:  "plpgsql",
			Why:   "tenant sessions cannot run DO blocks or create plpgsql functions (dynamic SQL hidden from the statement guard)",
			check: `SELECT NOT has_language_privilege('public', 'plpgsql', 'USAGE')`,
			apply: []string{`REVOKE USAGE ON LANGUAGE plpgsql FROM PUBLIC`},
			undo:  []string{`GRANT USAGE ON LANGUAGE plpgsql TO PUBLIC`},
		},
		{
			// set_config() changes a context variable with a function call inside any
			// expression, where a statement guard looking for SET cannot see it.
			Name:      "set-config",
			Why:       "tenant sessions cannot call set_config() (it changes settings from inside an expression)",
			functions: []string{"set_config"},
		},
		{
			// These take a query string (or a table name) and run it through SPI.
			Name: "xml-query-functions",
			Why:  "tenant sessions cannot call the *_to_xml functions that execute SQL passed as a string",
			functions: []string{"query_to_xml", "query_to_xml_and_xmlschema", "query_to_xmlschema",
				"cursor_to_xml", "cursor_to_xmlschema", "table_to_xml", "table_to_xml_and_xmlschema", "table_to_xmlschema"},
		},
		{
			Name:      "text-search-query-functions",
			Why:       "tenant sessions cannot call ts_stat() or ts_rewrite(tsquery, text), which execute SQL passed as a string",
			functions: []string{"ts_stat", "ts_rewrite(tsquery, text)"},
		},
		{
			// Large objects live outside tables, so no policy filters them; any
			// session can read every tenant's objects by OID.
			Name: "large-objects",
			Why:  "tenant sessions cannot use large objects, which row level security does not cover",
			functions: []string{"lo_open", "lo_close", "loread", "lowrite", "lo_lseek", "lo_lseek64", "lo_tell",
				"lo_tell64", "lo_truncate", "lo_truncate64", "lo_creat", "lo_create", "lo_unlink",
				"lo_from_bytea", "lo_get", "lo_put"},
		},
		{
			// All tenant sessions share one login role, so "your own backend" is not a
			// tenant boundary.
			Name:      "signal-backends",
			Why:       "tenant sessions cannot cancel or terminate backends (every tenant shares the server user)",
			functions: []string{"pg_cancel_backend", "pg_terminate_backend"},
		},
		{
			// Query text of other sessions may hold other tenants' values. Roles that
			// monitor need pg_read_all_stats plus GRANT SELECT ON pg_stat_activity.
			Name: "activity-view",
			Why:  "tenant sessions cannot read pg_stat_activity (other sessions' query text and client details)",
			check: `SELECT NOT has_table_privilege('public', 'pg_catalog.pg_stat_activity', 'SELECT')
			          AND NOT has_function_privilege('public', 'pg_catalog.pg_stat_get_activity(integer)', 'EXECUTE')`,
			apply: []string{
				`REVOKE SELECT ON pg_catalog.pg_stat_activity FROM PUBLIC`,
				`REVOKE EXECUTE ON FUNCTION pg_catalog.pg_stat_get_activity(integer) FROM PUBLIC`,
			},
			undo: []string{
				`GRANT SELECT ON pg_catalog.pg_stat_activity TO PUBLIC`,
				`GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_get_activity(integer) TO PUBLIC`,
			},
		},
		{
			// The per-backend accessors behind pg_stat_activity show any backend
			// of the caller's session user, and every tenant backend shares
			// the login role: one that got back to it would read them all.
			Name: "backend-activity-functions",
			Why:  "the login role cannot read other backends' query text through the pg_stat_get_backend_* functions",
			functions: []string{"pg_stat_get_backend_activity", "pg_stat_get_backend_activity_start",
				"pg_stat_get_backend_client_addr", "pg_stat_get_backend_client_port", "pg_stat_get_backend_start",
				"pg_stat_get_backend_userid", "pg_stat_get_backend_wait_event", "pg_stat_get_backend_wait_event_type",
				"pg_stat_get_backend_xact_start", "pg_stat_get_backend_dbid", "pg_stat_get_backend_pid"},
		},
		{
			// pg_stat_statements shows a role its own statements, and every tenant
			// runs as the same tenant role: it would show one tenant the query
			// text (utility statements verbatim) of all the others.
			Name: "pg-stat-statements",
			Why:  "tenant sessions cannot read pg_stat_statements, which would show them every tenant's statements",
			check: `SELECT NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')
			          OR NOT has_table_privilege('public', (SELECT format('%I.pg_stat_statements', n.nspname)
			               FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace
			               WHERE e.extname = 'pg_stat_statements'), 'SELECT')`,
			apply: []string{pgStatStatementsGrant("REVOKE", "FROM")},
			undo:  []string{pgStatStatementsGrant("GRANT", "TO")},
		},
		{
			// PostgreSQL 15 already ships this; older clusters let everyone CREATE
			// in public, where a tenant could plant functions or shadow tables.
			Name: "public-schema",
			Why:  "nobody but owners creates objects in schema public; everyone keeps USAGE",
			check: `SELECT NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'public')
			          OR (NOT has_schema_privilege('public', 'public', 'CREATE') AND has_schema_privilege('public', 'public', 'USAGE'))`,
			apply: []string{`REVOKE ALL ON SCHEMA public FROM PUBLIC`, `GRANT USAGE ON SCHEMA public TO PUBLIC`},
			undo:  []string{`GRANT CREATE ON SCHEMA public TO PUBLIC`},
		},
	}
}

// functionSignatures finds the pg_catalog functions a step names, as
// schema-qualified signatures usable in GRANT/REVOKE.
const functionSignaturesSQL = `SELECT 'pg_catalog.' || p.proname || '(' || oidvectortypes(p.proargtypes) || ')'
FROM pg_proc AS p
WHERE p.pronamespace = 'pg_catalog'::regnamespace
  AND (p.proname = ANY ($1) OR p.proname || '(' || oidvectortypes(p.proargtypes) || ')' = ANY ($1))
ORDER BY 1`

// resolve fills check/apply/undo for a function step from the catalog, and
// substitutes the database name into the fixed statements.
func (h hardeningStep) resolve(ctx context.Context, q querier, db string) (hardeningStep, error) {
	r := strings.NewReplacer("{{DB}}", quoteIdent(db))
	if h.functions == nil {
		h.apply = replaceAll(r, h.apply)
		h.undo = replaceAll(r, h.undo)
		return h, nil
	}
	rows, err := q.Query(ctx, functionSignaturesSQL, h.functions)
	if err != nil {
		return h, fmt.Errorf("finding functions for %s: %w", h.Name, err)
	}
	sigs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return h, fmt.Errorf("finding functions for %s: %w", h.Name, err)
	}
	if len(sigs) == 0 {
		h.check = `SELECT true`
		return h, nil
	}
	quoted := make([]string, len(sigs))
	for i, s := range sigs {
		quoted[i] = quoteLiteral(s)
	}
	h.check = `SELECT NOT bool_or(has_function_privilege('public', f::regprocedure, 'EXECUTE')) FROM unnest(ARRAY[` +
		strings.Join(quoted, ", ") + `]) AS f`
	list := strings.Join(sigs, ", ")
	h.apply = []string{`REVOKE EXECUTE ON FUNCTION ` + list + ` FROM PUBLIC`}
	h.undo = []string{`GRANT EXECUTE ON FUNCTION ` + list + ` TO PUBLIC`}
	return h, nil
}

func replaceAll(r *strings.Replacer, in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = r.Replace(s)
	}
	return out
}

// undoText renders the undo statements as one line for reports.
func (h hardeningStep) undoText() string { return strings.Join(h.undo, "; ") }

// pgStatStatementsGrant builds the statement that grants or revokes the
// pg_stat_statements views and functions for PUBLIC, wherever the extension
// is installed (nothing happens when it is not).
func pgStatStatementsGrant(verb, prep string) string {
	return `DO $mg$
DECLARE s text;
BEGIN
  SELECT n.nspname INTO s FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace
  WHERE e.extname = 'pg_stat_statements';
  IF s IS NOT NULL THEN
    EXECUTE format('` + verb + ` SELECT ON %I.pg_stat_statements, %I.pg_stat_statements_info ` + prep + ` PUBLIC', s, s);
    EXECUTE format('` + verb + ` EXECUTE ON FUNCTION %I.pg_stat_statements(boolean), %I.pg_stat_statements_info() ` + prep + ` PUBLIC', s, s);
  END IF;
END
$mg$`
}

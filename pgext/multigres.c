/*
 * multigres.c: the C seal accessor for Multigres.
 *
 * The proxy, logged in as the server user, stores a fresh nonce in this
 * backend's memory with multigres.set_nonce() (EXECUTE granted to the
 * server user only) and then sets the context variables and the seal
 * multigres.seal = "<nonce>:<var,...>:<hex HMAC-SHA256>" over
 * "v1\n<role>\n<backend pid>\n<nonce>\n<var>=<value>\n...", exactly as
 * wire/seal computes it and the SQL multigres.context() checks it.
 *
 * multigres.context(name) (created by multigres setup as a C function over
 * multigres_context) verifies the seal once per context assignment:
 * a full check (nonce, HMAC with the key in multigres.secret) whose success
 * is remembered with copies of everything it vouched for (nonce, role, seal,
 * every listed variable's value). Later calls compare those copies with the
 * current settings in backend memory; any difference (a tenant's set_config,
 * RESET, SET ROLE, a new nonce) falls back to the full check, which then
 * fails. All state is per backend (static), so it works on a hot standby,
 * where setval() is refused. DISCARD ALL and DISCARD SEQUENCES forget the
 * nonce, as they forget currval() for the SQL accessor.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(multigres_set_nonce);
PG_FUNCTION_INFO_V1(multigres_context);

void		_PG_init(void);

/* A seal lists at most this many variables; more is not a proxy's seal. */
#define MAX_VARS 64
#define KEY_PAD_LEN 64
#define MAC_HEX_LEN (2 * PG_SHA256_DIGEST_LENGTH)

/* The nonce the proxy stored in this backend (valid when nonce_set). */
static bool nonce_set = false;
static int64 nonce = 0;

/*
 * What the last successful full check vouched for, copied into
 * TopMemoryContext. Valid only while every field still equals the current
 * state of the backend.
 */
typedef struct Verified
{
	bool		valid;
	int64		nonce;
	char	   *seal;
	char	   *role;
	int			nvars;
	char	   *names[MAX_VARS];
	char	   *values[MAX_VARS];
} Verified;

static Verified verified;

static void
forget(void)
{
	int			i;

	if (verified.seal)
		pfree(verified.seal);
	if (verified.role)
		pfree(verified.role);
	for (i = 0; i < verified.nvars; i++)
	{
		pfree(verified.names[i]);
		pfree(verified.values[i]);
	}
	memset(&verified, 0, sizeof(verified));
}

static ProcessUtility_hook_type prev_utility = NULL;

/*
 * discard_hook forgets the nonce on DISCARD ALL and DISCARD SEQUENCES, so a
 * session that discards its state has no seal that verifies until the proxy
 * sets a new nonce, exactly as the SQL accessor loses currval(). The hook is
 * in place from the first call of any function here, and the proxy calls
 * set_nonce before anything can verify.
 */
static void
discard_hook(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
			 ProcessUtilityContext context, ParamListInfo params,
			 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	if (IsA(pstmt->utilityStmt, DiscardStmt))
	{
		DiscardStmt *d = (DiscardStmt *) pstmt->utilityStmt;

		if (d->target == DISCARD_ALL || d->target == DISCARD_SEQUENCES)
		{
			forget();
			nonce_set = false;
			nonce = 0;
		}
	}
	if (prev_utility)
		prev_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
}

void
_PG_init(void)
{
	prev_utility = ProcessUtility_hook;
	ProcessUtility_hook = discard_hook;
}

/*
 * multigres.set_nonce(bigint): store the nonce for this backend. Only the
 * server user may EXECUTE it (setup grants it; the extension script revokes
 * it from PUBLIC). Not transactional, like setval(), and allowed in a
 * read-only transaction and on a standby, unlike setval().
 */
Datum
multigres_set_nonce(PG_FUNCTION_ARGS)
{
	forget();
	nonce = PG_GETARG_INT64(0);
	nonce_set = true;
	PG_RETURN_VOID();
}

/* setting returns a setting's text as current_setting(name, true) does. */
static char *
setting(const char *name)
{
	return GetConfigOptionByName(name, NULL, true);
}

static bool
same(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/* sha256 of a || b into out. */
static void
sha256_2(const uint8 *a, size_t alen, const uint8 *b, size_t blen, uint8 *out)
{
	pg_cryptohash_ctx *c = pg_cryptohash_create(PG_SHA256);

	if (c == NULL || pg_cryptohash_init(c) < 0 ||
		pg_cryptohash_update(c, a, alen) < 0 ||
		pg_cryptohash_update(c, b, blen) < 0 ||
		pg_cryptohash_final(c, out, PG_SHA256_DIGEST_LENGTH) < 0)
	{
		pg_cryptohash_free(c);
		ereport(ERROR, (errmsg("multigres: computing SHA-256 failed")));
	}
	pg_cryptohash_free(c);
}

static bool
copy_pad(HeapTuple tup, TupleDesc desc, int attnum, const char *attname, uint8 *dest)
{
	Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);
	bool		isnull;
	Datum		d;
	bytea	   *b;

	if (att->attisdropped || att->atttypid != BYTEAOID || strcmp(NameStr(att->attname), attname) != 0)
		return false;
	d = heap_getattr(tup, attnum, desc, &isnull);
	if (isnull)
		return false;
	b = DatumGetByteaPP(d);
	if (VARSIZE_ANY_EXHDR(b) != KEY_PAD_LEN)
		return false;
	memcpy(dest, VARDATA_ANY(b), KEY_PAD_LEN);
	return true;
}

/*
 * load_key reads the HMAC pads from multigres.secret. It reads the heap
 * directly, which checks no privileges: the caller is a tenant role that may
 * not SELECT the table (the SQL accessor is SECURITY DEFINER for this).
 */
static bool
load_key(uint8 *ipad, uint8 *opad)
{
	Oid			nsp = get_namespace_oid("multigres", true);
	Oid			relid;
	Relation	rel;
	Snapshot	snap;
	TableScanDesc scan;
	HeapTuple	tup;
	bool		ok = false;

	if (!OidIsValid(nsp))
		return false;
	relid = get_relname_relid("secret", nsp);
	if (!OidIsValid(relid))
		return false;
	rel = table_open(relid, AccessShareLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION || RelationGetDescr(rel)->natts < 2)
	{
		table_close(rel, AccessShareLock);
		return false;
	}
	snap = RegisterSnapshot(ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot());
	scan = table_beginscan(rel, snap, 0, NULL);
	tup = heap_getnext(scan, ForwardScanDirection);
	if (tup != NULL)
		ok = copy_pad(tup, RelationGetDescr(rel), 1, "ipad", ipad) &&
			copy_pad(tup, RelationGetDescr(rel), 2, "opad", opad);
	table_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
	return ok;
}

/* Compares without an early exit, so the time says nothing of where they differ. */
static bool
equal_ct(const char *a, const char *b, size_t n)
{
	unsigned char diff = 0;
	size_t		i;

	for (i = 0; i < n; i++)
		diff |= (unsigned char) a[i] ^ (unsigned char) b[i];
	return diff == 0;
}

/*
 * full_check verifies seal for role against this backend's pid and nonce,
 * and on success remembers what it vouched for. Every malformed seal simply
 * fails: the caller returns NULL, as the SQL accessor does.
 */
static bool
full_check(const char *seal, const char *role)
{
	char		nonce_text[32];
	const char *c1,
			   *c2,
			   *mac;
	char	   *vars;
	char	   *names[MAX_VARS];
	char	   *values[MAX_VARS];
	int			nvars = 0;
	char	   *p;
	StringInfoData msg;
	uint8		ipad[KEY_PAD_LEN],
				opad[KEY_PAD_LEN],
				inner[PG_SHA256_DIGEST_LENGTH],
				outer[PG_SHA256_DIGEST_LENGTH];
	char		hex[MAC_HEX_LEN + 1];
	static const char digits[] = "0123456789abcdef";
	int			i;
	bool		ok;
	MemoryContext old;

	forget();
	snprintf(nonce_text, sizeof(nonce_text), INT64_FORMAT, nonce);
	c1 = strchr(seal, ':');
	if (c1 == NULL || (size_t) (c1 - seal) != strlen(nonce_text) || memcmp(seal, nonce_text, c1 - seal) != 0)
		return false;
	c2 = strchr(c1 + 1, ':');
	if (c2 == NULL || c2 == c1 + 1)
		return false;
	mac = c2 + 1;
	if (strlen(mac) != MAC_HEX_LEN)
		return false;

	vars = pnstrdup(c1 + 1, c2 - c1 - 1);
	for (p = vars;;)
	{
		char	   *comma = strchr(p, ',');

		if (comma)
			*comma = '\0';
		if (*p == '\0' || nvars == MAX_VARS)
			return false;
		names[nvars] = p;
		values[nvars] = setting(p);
		/* A NULL value makes the SQL MAC NULL: it never verifies. */
		if (values[nvars] == NULL)
			return false;
		nvars++;
		if (!comma)
			break;
		p = comma + 1;
	}

	initStringInfo(&msg);
	appendStringInfo(&msg, "v1\n%s\n%d\n%s\n", role, MyProcPid, nonce_text);
	for (i = 0; i < nvars; i++)
		appendStringInfo(&msg, "%s=%s\n", names[i], values[i]);

	if (!load_key(ipad, opad))
		return false;
	sha256_2(ipad, KEY_PAD_LEN, (uint8 *) msg.data, msg.len, inner);
	sha256_2(opad, KEY_PAD_LEN, inner, sizeof(inner), outer);
	for (i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
	{
		hex[2 * i] = digits[outer[i] >> 4];
		hex[2 * i + 1] = digits[outer[i] & 15];
	}
	hex[MAC_HEX_LEN] = '\0';
	ok = equal_ct(mac, hex, MAC_HEX_LEN);
	explicit_bzero(ipad, sizeof(ipad));
	explicit_bzero(opad, sizeof(opad));
	if (!ok)
		return false;

	old = MemoryContextSwitchTo(TopMemoryContext);
	verified.nonce = nonce;
	verified.seal = pstrdup(seal);
	verified.role = pstrdup(role);
	for (i = 0; i < nvars; i++)
	{
		verified.names[i] = pstrdup(names[i]);
		verified.values[i] = pstrdup(values[i]);
	}
	verified.nvars = nvars;
	verified.valid = true;
	MemoryContextSwitchTo(old);
	return true;
}

/* still_verified reports whether the remembered check covers the backend's current state. */
static bool
still_verified(const char *seal, const char *role)
{
	int			i;

	if (!verified.valid || verified.nonce != nonce || !same(verified.seal, seal) || !same(verified.role, role))
		return false;
	for (i = 0; i < verified.nvars; i++)
	{
		char	   *v = setting(verified.names[i]);
		bool		eq = same(v, verified.values[i]);

		if (v)
			pfree(v);
		if (!eq)
			return false;
	}
	return true;
}

/*
 * multigres.context(name text): the value of the context variable name
 * when the session's seal verifies for it, else NULL.
 */
Datum
multigres_context(PG_FUNCTION_ARGS)
{
	char	   *name;
	char	   *seal;
	char	   *role;
	int			i;

	if (PG_ARGISNULL(0) || !nonce_set)
		PG_RETURN_NULL();
	seal = setting("multigres.seal");
	if (seal == NULL || seal[0] == '\0')
		PG_RETURN_NULL();
	role = GetConfigOptionByName("role", NULL, false);
	if (!still_verified(seal, role) && !full_check(seal, role))
		PG_RETURN_NULL();
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	for (i = 0; i < verified.nvars; i++)
		if (strcmp(verified.names[i], name) == 0)
			PG_RETURN_TEXT_P(cstring_to_text(verified.values[i]));
	PG_RETURN_NULL();
}

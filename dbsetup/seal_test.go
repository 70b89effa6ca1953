package dbsetup_test

import (
	"github.com/multigres/proxy/dbsetup"
	"strings"
	"testing"
)

// TestSealMACReference pins the reference MAC to a vector computed
// independently (Python hmac), so wire/seal can check itself against it:
// key = bytes 0x00..0x1f, role app_user, pid 4242, nonce 77,
// app.current_tenant_id=acme, app.current_user_id=u1.
func TestSealMACReference(t *testing.T) {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	got := sealMAC(key, "app_user", 4242, 77, []string{tenantVar, userVar}, []string{"acme", "u1"})
	const want = "331ca8a913c718ee699722be715c7ff332591d093c4a8bd3917217c8807a5a90"
	if got != want {
		t.Fatalf("sealMAC = %s, want %s", got, want)
	}
}

// TestContextSQLMatchesReference installs a known key and checks that the
// SQL HMAC (sha256 over the stored pads) equals the Go reference for it.
func TestContextSQLMatchesReference(t *testing.T) {
	e := newEnv(t)
	e.setup()
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(0xa0 + i)
	}
	e.setKey(key)
	conn := e.session(key, seal{values: []string{"ünïcode ✓", "o'brien"}})
	if got := queryString(t, e.ctx, conn, "SELECT multigres.context($1)", tenantVar); got == nil || *got != "ünïcode ✓" {
		t.Fatalf("context = %v", deref(got))
	}
}

// setKey stores a 32-byte HMAC key as multigres.secret holds it, pre-XORed
// with the HMAC pads, and checks that seal_key() returns it.
func (e *env) setKey(key []byte) {
	e.t.Helper()
	pad := func(x byte) []byte {
		p := make([]byte, 64)
		for i := range p {
			if i < len(key) {
				p[i] = key[i] ^ x
			} else {
				p[i] = x
			}
		}
		return p
	}
	e.exec("UPDATE multigres.secret SET ipad = $1, opad = $2", pad(0x36), pad(0x5c))
	if got := e.sealKey(); string(got) != string(key) {
		e.t.Fatalf("seal_key() = %x, want %x", got, key)
	}
}

func TestContextSeal(t *testing.T) {
	for _, impl := range impls {
		t.Run(impl, func(t *testing.T) { testContextSeal(t, impl) })
	}
}

func testContextSeal(t *testing.T, impl string) {
	e := newEnvImpl(t, impl)
	e.setup()
	key := e.sealKey()
	if len(key) != 32 {
		t.Fatalf("seal key has %d bytes, want 32", len(key))
	}
	honest := []string{"acme", "user-1"}
	for _, tc := range []struct {
		name     string
		seal     seal
		ask      string
		askEmpty bool // ask for "" rather than calling tenant_id()
		want     *string
		wantErr  string // SQLSTATE, from the SQL carrier; the C one returns NULL
	}{
		{name: "correct seal", seal: seal{values: honest}, ask: tenantVar, want: ptr("acme")},
		{name: "second variable", seal: seal{values: honest}, ask: userVar, want: ptr("user-1")},
		{name: "tenant_id accessor", seal: seal{values: honest}, ask: "", want: ptr("acme")},
		{name: "wrong mac", seal: seal{values: honest, badMAC: true}, ask: tenantVar},
		{name: "wrong key", seal: seal{values: honest, key: make([]byte, 32)}, ask: tenantVar},
		{name: "wrong nonce", seal: seal{values: honest, macNonce: 12345}, ask: tenantVar},
		{name: "other pid", seal: seal{values: honest, macPID: 1}, ask: tenantVar},
		{name: "other role in mac", seal: seal{values: honest, macRole: "someone_else"}, ask: tenantVar},
		{name: "var not in list", seal: seal{values: honest, vars: []string{userVar}}, ask: tenantVar},
		{name: "listed var still works", seal: seal{values: honest, vars: []string{userVar}}, ask: userVar, want: ptr("user-1")},
		{name: "changed value", seal: seal{values: honest, after: []string{"SET " + tenantVar + " = 'globex'"}}, ask: tenantVar},
		{name: "changed other value", seal: seal{values: honest, after: []string{"SET " + userVar + " = 'user-2'"}}, ask: tenantVar},
		{name: "missing seal", seal: seal{values: honest, noSeal: true}, ask: tenantVar},
		{name: "reset seal", seal: seal{values: honest, after: []string{"RESET multigres.seal"}}, ask: tenantVar},
		{name: "text after the mac", seal: seal{values: honest, suffix: ":x"}, ask: tenantVar},
		{name: "garbage seal", seal: seal{values: honest, after: []string{"SET multigres.seal = 'x:y:z'"}}, ask: tenantVar},
		{name: "nonce never set", seal: seal{values: honest, noSetval: true, macNonce: 99}, ask: tenantVar, wantErr: "55000"},
		{name: "no seal and nonce never set", seal: seal{values: honest, noSeal: true, noSetval: true}, ask: tenantVar},
		// current_setting() of a listed but unset variable is NULL: the MAC
		// must fail rather than the call raise.
		{name: "listed var unset", seal: seal{values: honest, vars: []string{tenantVar, "app.never_set"}}, ask: tenantVar},
		{name: "name with comma", seal: seal{values: honest}, ask: tenantVar + "," + userVar},
		{name: "empty name", seal: seal{values: honest, vars: []string{tenantVar, "", userVar}}, ask: "", askEmpty: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := e.session(key, tc.seal)
			q := "SELECT multigres.context($1)"
			args := []any{tc.ask}
			if tc.ask == "" && !tc.askEmpty {
				q, args = "SELECT multigres.tenant_id()", nil
			}
			var got *string
			err := conn.QueryRow(e.ctx, q, args...).Scan(&got)
			if tc.wantErr != "" && impl == dbsetup.SealSQL {
				if sqlState(err) != tc.wantErr {
					t.Fatalf("got %v, want SQLSTATE %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
				t.Fatalf("context = %v, want %v", deref(got), deref(tc.want))
			}
		})
	}
}

func TestSealReplayInOtherSession(t *testing.T) {
	for _, impl := range impls {
		t.Run(impl, func(t *testing.T) { testSealReplayInOtherSession(t, impl) })
	}
}

func testSealReplayInOtherSession(t *testing.T, impl string) {
	e := newEnvImpl(t, impl)
	e.setup()
	key := e.sealKey()
	a := e.session(key, seal{values: []string{"acme", "u"}})
	seal := queryString(t, e.ctx, a, "SELECT current_setting('multigres.seal')")
	nonce := ptr(strings.SplitN(*seal, ":", 2)[0])
	// Session b copies a's seal and even a's nonce: the pid differs.
	b := e.as(e.opts.ServerUser, e.opts.ServerPassword)
	if _, err := b.Exec(e.ctx, e.setNonceSQL(), *nonce); err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{
		"SET " + tenantVar + " = 'acme'", "SET " + userVar + " = 'u'",
		"SET multigres.seal = " + quoteLit(*seal), "SET ROLE " + e.app(),
	} {
		if _, err := b.Exec(e.ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	if got := queryString(t, e.ctx, b, "SELECT multigres.context($1)", tenantVar); got != nil {
		t.Fatalf("replayed seal accepted: %q", *got)
	}
	if got := queryString(t, e.ctx, a, "SELECT multigres.context($1)", tenantVar); got == nil || *got != "acme" {
		t.Fatalf("original session lost its context: %v", deref(got))
	}
}

func TestTenantCannotSetNonce(t *testing.T) {
	for _, impl := range impls {
		t.Run(impl, func(t *testing.T) {
			e := newEnvImpl(t, impl)
			e.setup()
			conn := e.session(e.sealKey(), seal{values: []string{"acme", "u"}})
			for _, q := range []string{"SELECT pg_catalog.setval('multigres.seal_nonce', $1, true)", e.setNonceSQL()} {
				if _, err := conn.Exec(e.ctx, q, 5); sqlState(err) != "42501" && sqlState(err) != "42883" {
					t.Fatalf("tenant %s: got %v, want permission denied", q, err)
				}
			}
			if got := queryString(t, e.ctx, conn, "SELECT multigres.context($1)", tenantVar); got == nil || *got != "acme" {
				t.Fatalf("context after the refused attempts = %v, want acme", deref(got))
			}
		})
	}
}

// TestDiscardForgetsNonce: after DISCARD ALL (or DISCARD SEQUENCES) a
// session that puts back the very seal and values it had, and its role,
// gets no context until the proxy stores a new nonce.
func TestDiscardForgetsNonce(t *testing.T) {
	for _, impl := range impls {
		for _, discard := range []string{"DISCARD ALL", "DISCARD SEQUENCES"} {
			t.Run(impl+"/"+discard, func(t *testing.T) {
				e := newEnvImpl(t, impl)
				e.setup()
				conn := e.session(e.sealKey(), seal{values: []string{"acme", "u"}})
				sl := queryString(t, e.ctx, conn, "SELECT current_setting('multigres.seal')")
				for _, st := range []string{"RESET ROLE", discard, "SET " + tenantVar + " = 'acme'", "SET " + userVar + " = 'u'",
					"SET multigres.seal = " + quoteLit(*sl), "SET ROLE " + e.app()} {
					if _, err := conn.Exec(e.ctx, st); err != nil {
						t.Fatalf("%s: %v", st, err)
					}
				}
				var got *string
				err := conn.QueryRow(e.ctx, "SELECT multigres.context($1)", tenantVar).Scan(&got)
				if impl == dbsetup.SealSQL && sqlState(err) == "55000" {
					return // currval gone: fails closed with an error
				}
				if err != nil || got != nil {
					t.Fatalf("context after %s = %v, %v; want NULL", discard, deref(got), err)
				}
			})
		}
	}
}

func ptr(s string) *string { return &s }

func deref(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}

package seal

import (
	"strings"
	"testing"
)

// TestComputeKnownVector pins the MAC to the vector dbsetup's tests check
// against multigres.context() (and that Python's hmac module reproduces), so
// the proxy and the database cannot drift apart silently.
func TestComputeKnownVector(t *testing.T) {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	ctx := Context{Role: "app_user", Variables: []string{"app.current_tenant_id", "app.current_user_id"}, Values: []string{"acme", "u1"}}
	got := Compute(key, ctx, 4242, 77)
	want := "77:app.current_tenant_id,app.current_user_id:331ca8a913c718ee699722be715c7ff332591d093c4a8bd3917217c8807a5a90"
	if got != want {
		t.Fatalf("Compute = %s\nwant      %s", got, want)
	}
}

func TestComputeBindsEveryInput(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	base := Context{Role: "app_user", Variables: []string{"app.t"}, Values: []string{"acme"}}
	ref := Compute(key, base, 1, 1)
	variants := map[string]string{
		"role":  Compute(key, Context{Role: "other", Variables: base.Variables, Values: base.Values}, 1, 1),
		"value": Compute(key, Context{Role: "app_user", Variables: base.Variables, Values: []string{"globex"}}, 1, 1),
		"name":  Compute(key, Context{Role: "app_user", Variables: []string{"app.u"}, Values: base.Values}, 1, 1),
		"pid":   Compute(key, base, 2, 1),
		"nonce": Compute(key, base, 1, 2),
		"key":   Compute([]byte("another key of thirty-two bytes!"), base, 1, 1),
	}
	mac := func(s string) string { return s[strings.LastIndexByte(s, ':')+1:] }
	for what, v := range variants {
		if mac(v) == mac(ref) {
			t.Errorf("changing the %s did not change the MAC", what)
		}
	}
}

func TestKeyDistinguishesContexts(t *testing.T) {
	a := Context{Role: "r", Variables: []string{"a.b", "a.c"}, Values: []string{"x", "y"}}
	b := Context{Role: "r", Variables: []string{"a.b", "a.c"}, Values: []string{"x\x00a.c", "y"}}
	if a.Key() == b.Key() {
		t.Fatal("different contexts share a key")
	}
}

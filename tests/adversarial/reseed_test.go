package adversarial

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// randomBits is random() as the hex of its eight bytes: exact, and the same
// whatever extra_float_digits each session runs with.
const randomBits = "encode(float8send(random()), 'hex')"

// firstRow splits the first row of a client.run result into its values.
func firstRow(out string) []string {
	line, _, _ := strings.Cut(out, "\n")
	return strings.Split(strings.TrimSuffix(line, "|"), "|")
}

// seededRandoms returns the first n values random() gives after
// setseed(seed), read straight from PostgreSQL on a connection of its own.
func seededRandoms(t testing.TB, conn *pgx.Conn, seed string, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []string
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT setseed("+seed+")"); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT "+randomBits+" FROM generate_series(1, $1)", n)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		t.Fatalf("random() after setseed(%s): %v", seed, err)
	}
	return out
}

// TestSetseedDoesNotReachTheNextTenant: the random() seed is backend state
// that DISCARD ALL keeps, so without a reseed one tenant's setseed()
// decides every random() value the next tenant of that backend gets (its
// "random" tokens, sampling, retry jitter). The proxy reseeds from
// crypto/rand whenever it assigns a context. With one server connection,
// acme seeds and leaves, and globex's random() must be none of the values
// that follow that seed, and must differ from round to round.
func TestSetseedDoesNotReachTheNextTenant(t *testing.T) {
	env := sample(t)
	const seed = "0.5"
	// What a planted seed predicts: the first values after it, in case
	// something in between calls random() a few times.
	predicted := map[string]bool{}
	for _, v := range seededRandoms(t, adminConn(t, env), seed, 64) {
		predicted[v] = true
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			o := options(env, mode)
			o.DefaultPoolSize = 1 // every client gets the same backend
			addr := startProxy(t, o)
			seen := map[string]bool{}
			const rounds = 4
			for i := range rounds {
				a := connectTenant(t, addr, acme)
				apid := firstRow(a.mustRun("SELECT pg_backend_pid()"))[0]
				a.mustRun("SELECT setseed(" + seed + ")")
				a.conn.Close(context.Background())

				g := connectTenant(t, addr, globex)
				row := firstRow(g.mustRun("SELECT pg_backend_pid(), " + randomBits))
				gpid, v := row[0], row[1]
				g.conn.Close(context.Background())
				if gpid != apid {
					t.Fatalf("round %d: globex got backend %s, acme had %s; with a pool of one the test needs the same backend", i, gpid, apid)
				}
				t.Logf("round %d: globex's random() on acme's backend %s: %s", i, gpid, v)
				if predicted[v] {
					t.Errorf("round %d: globex's random() is %s, a value acme's setseed(%s) predicts: the seed survived into the next tenant", i, v, seed)
				}
				seen[v] = true
			}
			if len(seen) != rounds {
				t.Errorf("globex's random() took %d distinct values in %d rounds after the same setseed: it is not reseeded", len(seen), rounds)
			}
		})
	}
}

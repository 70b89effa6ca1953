package differential

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
)

// configs are the set-ups TestDifferential runs. "direct" comes first: it
// checks the model against PostgreSQL itself, so a failure there is the
// test's, and it needs only half the time.
var configs = []config{
	{name: "direct", mode: "direct", clients: 6},
	{name: "transaction_pool1", mode: "transaction", poolSize: 1, clients: 8},
	{name: "transaction_pool2", mode: "transaction", poolSize: 2, clients: 8},
	{name: "session_pool1", mode: "session", poolSize: 1, clients: 6},
	{name: "session_pool2", mode: "session", poolSize: 2, clients: 6},
}

// TestDifferential runs random concurrent clients against each
// configuration and compares every reply with the model's.
func TestDifferential(t *testing.T) {
	env := sample(t)
	s, d := seed(t), duration(t)
	t.Logf("seed %d (replay with MULTIGRES_DIFF_SEED=%d), %s per configuration, MULTIGRES_DIFF_ALL=%q",
		s, s, d, os.Getenv("MULTIGRES_DIFF_ALL"))
	for _, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			dur := d
			if cfg.mode == "direct" {
				dur = d / 2
			}
			h := newHarness(t, env, cfg, s, dur)
			h.run()
			h.finish()
		})
	}
}

// fuzzOp is one step of one client in FuzzSequences.
type fuzzOp struct {
	client int
	step   stepKind
	seed   byte
}

// maxFuzzOps bounds one input's run time.
const maxFuzzOps = 24

// decodeOps reads an input as: a byte choosing 2 or 3 clients, then
// triples (client, step index into steps, seed for the step's choices).
// Steps that the configuration (or MULTIGRES_DIFF_STEPS) does not enable
// are dropped.
func decodeOps(h *harness, data []byte) (clients int, ops []fuzzOp) {
	if len(data) == 0 {
		return 2, nil
	}
	clients = 2 + int(data[0]%2)
	for i := 1; i+3 <= len(data) && len(ops) < maxFuzzOps; i += 3 {
		k := steps[int(data[i+1])%len(steps)]
		if !stepEnabled(h, k) {
			continue
		}
		ops = append(ops, fuzzOp{client: int(data[i]) % clients, step: k, seed: data[i+2]})
	}
	return clients, ops
}

// encodeOps is decodeOps' inverse for writing seeds by step name.
func encodeOps(clients int, ops ...any) []byte {
	out := []byte{byte(clients - 2)}
	for i := 0; i+3 <= len(ops); i += 3 {
		name := ops[i+1].(string)
		idx := -1
		for j, k := range steps {
			if k.name == name {
				idx = j
			}
		}
		if idx < 0 {
			panic("no step " + name)
		}
		out = append(out, byte(ops[i].(int)), byte(idx), byte(ops[i+2].(int)))
	}
	return out
}

// runOps runs ops one after the other (so that an input means the same
// interleaving every time), against one proxy. Every client logs in first,
// and a client that disconnects logs in again at once, so that other
// clients' steps come between a login and the next step.
func (h *harness) runOps(ops []fuzzOp) {
	clients := make([]*client, h.cfg.clients)
	for i := range clients {
		clients[i] = h.newClient(i, rand.New(rand.NewPCG(uint64(i), 1)))
		clients[i].protect("login", clients[i].connect)
	}
	for i, op := range ops {
		if h.failures.Load() > 0 {
			break
		}
		c := clients[op.client]
		c.rng = rand.New(rand.NewPCG(uint64(op.seed), uint64(i)))
		if c.conn == nil && !c.protect("login", c.connect) {
			continue
		}
		c.fresh = false
		h.counts[op.step.name]++
		c.protect(op.step.name, func() { op.step.run(c) })
		if c.conn == nil && h.failures.Load() == 0 {
			c.protect("login", c.connect)
		}
	}
	for _, c := range clients {
		c.leave()
	}
}

// FuzzSequences decodes the fuzzer's bytes into steps of 2 or 3 clients and
// runs them in order through one proxy in transaction mode with a pool of
// one server connection, where every client shares it:
// go test -run '^$' -fuzz FuzzSequences ./tests/differential/
func FuzzSequences(f *testing.F) {
	// Seeds: ordinary traffic; no-reply messages and disconnects between
	// other clients' queries (defect 1); statements prepared, the
	// connection reset by another tenant, then a pipeline that fails before
	// using them (defect 3); transactions, COPY and cancels interleaved.
	f.Add(encodeOps(2, 0, "simple", 1, 1, "ext", 2, 0, "pipeline", 3, 1, "tx", 4, 0, "copyIn", 5, 1, "copyOut", 6))
	f.Add(encodeOps(2, 1, "simple", 1, 0, "closeAfterFlush", 2, 1, "simple", 3, 0, "closeAfterCopyData", 4,
		1, "simple", 5, 0, "closeAfterFlush", 6, 1, "ext", 7, 1, "simple", 8))
	f.Add(encodeOps(3, 0, "ext", 1, 0, "ext", 2, 1, "simple", 3, 2, "simple", 4, 0, "pipeline", 5, 0, "pipeline", 6,
		1, "ext", 7, 0, "ext", 8, 2, "pipeline", 9))
	f.Add(encodeOps(3, 0, "tx", 1, 1, "cancel", 2, 2, "copyIn", 3, 0, "strayCancel", 4, 1, "closeMidTx", 5,
		2, "closeMidCopyIn", 6, 0, "flushSplit", 7, 1, "portal", 8, 2, "closeAfterPipeline", 9, 0, "multi", 10))
	shareWithFuzzWorkers(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		env := sample(t)
		h := newHarness(t, env, config{name: "fuzz", mode: "transaction", poolSize: 1}, 0, time.Hour)
		n, ops := decodeOps(h, data)
		h.cfg.clients = n
		var names []string
		for _, op := range ops {
			names = append(names, fmt.Sprintf("c%d:%s/%d", op.client, op.step.name, op.seed))
		}
		h.replay = fmt.Sprintf("input %q: %d clients, %s", data, n, strings.Join(names, " "))
		h.runOps(ops)
		h.finish()
	})
}

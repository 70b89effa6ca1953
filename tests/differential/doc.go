// Package differential drives the proxy with random protocol traffic from many concurrent clients and checks every reply against what PostgreSQL itself would send.
//
// Each client speaks the raw protocol (pgproto3 over a net.Conn) so that it
// can send any message sequence: simple and multi-statement queries,
// extended-protocol batches with named and unnamed statements and portals,
// row limits, Flush without Sync, pipelines with an error in the middle,
// transactions that commit, roll back or fail, COPY in both directions,
// SQL-level DEALLOCATE, cancel requests, and abrupt disconnects at any point.
// Each client keeps a small model of one PostgreSQL backend (model_test.go)
// that computes, for what the client sent, the exact reply sequence a direct
// connection would produce, and the client compares the proxy's replies with
// it message by message. Every row a query returns carries the client's id,
// a per-statement nonce, the tenant the database believes the session has and
// how many contacts rows that tenant can see, so a reply that reaches the
// wrong client, a row of another tenant, a lost or duplicated message, an
// unexpected error and a hang (every read has a deadline) are all failures,
// reported with the seed, the client and its recent protocol log.
//
// The model itself is checked by the "direct" configuration, which runs the
// same generator against PostgreSQL without the proxy: a failure there is a
// bug in the test, not in the proxy.
//
// The package lives under tests/ because it checks the proxy as a whole
// (relay, pooling, statement translation, cancel and context injection
// together) from the outside, as tests/adversarial does for attacks.
//
// Run with: go test -race -count=1 ./tests/differential/
// Environment: MULTIGRES_DIFF_SEED (replay a seed; each run logs its own),
// MULTIGRES_DIFF_DURATION (per configuration; 10s, 2s with -short),
// MULTIGRES_DIFF_ALL=1 (also generate, in transaction mode, what the proxy
// may not support yet there: SQL DEALLOCATE, the unnamed statement across a
// Sync, re-Parse of an existing name), MULTIGRES_DIFF_STEPS (a comma list of
// step names to run only those, or of -names to leave those out; see the
// steps table in steps_test.go). FuzzSequences turns the fuzzer's bytes into
// steps of two or three clients run one after the other:
// go test -run '^$' -fuzz FuzzSequences ./tests/differential/
package differential

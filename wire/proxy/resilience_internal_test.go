package proxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"
)

// TestLargeMessageMemoryFollowsTheData: a message announcing 64 MB whose
// sender stops after 100 kB holds a buffer the size of what arrived, not of
// what was announced, and a complete one is read whole.
func TestLargeMessageMemoryFollowsTheData(t *testing.T) {
	const total = MaxMessageSize
	head := make([]byte, 5, 100<<10)
	head[0] = feQuery
	binary.BigEndian.PutUint32(head[1:], total-1)
	head = append(head, bytes.Repeat([]byte{'x'}, 100<<10-5)...)
	buf, err := growBuffer(&chunkReader{chunks: [][]byte{head}, err: io.EOF}, nil, total)
	if !errors.Is(err, io.EOF) || len(buf) != len(head) {
		t.Fatalf("read %d bytes, %v", len(buf), err)
	}
	if cap(buf) > 4*len(head) {
		t.Errorf("a stalled 64 MB message holds a %d-byte buffer after %d bytes arrived", cap(buf), len(head))
	}

	whole := bytes.Repeat([]byte{'y'}, 3<<20)
	got, err := growBuffer(&chunkReader{chunks: [][]byte{whole[:1000], whole[1000 : 1<<20], whole[1<<20:]}}, nil, len(whole))
	if err != nil || !bytes.Equal(got, whole) || cap(got) != len(whole) {
		t.Fatalf("a whole message: %d bytes (cap %d), %v", len(got), cap(got), err)
	}
}

// TestBigQueryTextIsNotCopied: the guard reads a large Query's text where
// the reader put it; a copy would double the memory of every large query.
func TestBigQueryTextIsNotCopied(t *testing.T) {
	sql := bytes.Repeat([]byte{'x'}, 2<<20)
	msg := appendMsg(nil, feQuery, sql, []byte{0})
	r := newMsgReader(bytes.NewReader(msg))
	_, got, err := r.next(MaxMessageSize)
	if err != nil {
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(10, func() { _, _ = querySQL(got) }); allocs != 0 {
		t.Errorf("querySQL of a 2 MB Query allocates %v times", allocs)
	}
	if text, _ := querySQL(got); text != string(sql) {
		t.Error("querySQL returned the wrong text")
	}
	// A small message lives in the reader's reused buffer: it is copied.
	small := appendMsg(nil, feQuery, bytes.Repeat([]byte{'z'}, 100), []byte{0})
	text := textOf(small, body(small)[:100])
	small[5] = 'w'
	if text[0] != 'z' {
		t.Error("a small message's text changes with the reader's buffer")
	}
}

// TestBudgetWaitsInOrder: charges that do not fit wait first come, first
// served, a refund serves them, and a wait ends at its bound.
func TestBudgetWaitsInOrder(t *testing.T) {
	b := newMsgBudget()
	b.setLimit(100)
	ctx := context.Background()
	if err := b.charge(ctx, 80, 0); err != nil {
		t.Fatal(err)
	}
	order := make(chan int64, 2)
	go func() { _ = b.charge(ctx, 60, 0); order <- 60 }()
	waitFor(t, func() bool { return b.waits.Load() == 1 })
	go func() { _ = b.charge(ctx, 10, 0); order <- 10 }() // would fit, but 60 was first
	waitFor(t, func() bool { return b.waits.Load() == 2 })
	select {
	case n := <-order:
		t.Fatalf("a charge of %d jumped the queue", n)
	default:
	}
	b.refund(40) // room for 60 (the first), then not for 10 as well
	if n := <-order; n != 60 {
		t.Fatalf("served %d first, want 60", n)
	}
	select {
	case n := <-order:
		t.Fatalf("served %d beyond the limit", n)
	default:
	}
	b.refund(60)
	if n := <-order; n != 10 {
		t.Fatalf("served %d, want 10", n)
	}
	if err := b.charge(ctx, 51, 20*time.Millisecond); err == nil {
		t.Error("a charge that cannot fit succeeded")
	}
	var ce *clientError
	if err := b.charge(ctx, 101, 0); !errors.As(err, &ce) || ce.Code != codeOutOfMemory {
		t.Errorf("a charge larger than the budget: %v", err)
	}
	b.refund(50)
	if b.inUse.Load() != 0 {
		t.Errorf("%d bytes in use after everything was refunded", b.inUse.Load())
	}
}

// waitFor polls cond (the budget has no event to wait on) for up to 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}

package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// chunkReader returns its chunks one Read at a time, as a socket does, then
// err.
type chunkReader struct {
	chunks [][]byte
	err    error
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, c.err
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	if len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

func msgOf(typ byte, bodyLen int) []byte {
	return appendMsg(nil, typ, bytes.Repeat([]byte{typ}, bodyLen))
}

// TestLentReaderFramesAcrossReleases reads messages of every size relative
// to the idle buffer and the lent buffer, releasing between messages as the
// relay does, and checks every byte arrives in order.
func TestLentReaderFramesAcrossReleases(t *testing.T) {
	var many [][]byte
	for range 200 {
		many = append(many, msgOf('d', 20))
	}
	tests := []struct {
		name   string
		msgs   [][]byte
		chunks []int // how the stream is cut into reads; 0 = one read
	}{
		{"small messages, one read", [][]byte{msgOf('B', 40), msgOf('E', 5), msgOf('S', 0)}, nil},
		{"message just over the idle buffer", [][]byte{msgOf('Q', idleReadSize)}, nil},
		{"message over the lent buffer", [][]byte{msgOf('Q', clientReadBuffer+100), msgOf('S', 0)}, nil},
		{"message over the lent buffer, byte by byte", [][]byte{msgOf('P', clientReadBuffer+3), msgOf('S', 0)}, []int{1}},
		{"header cut across reads", [][]byte{msgOf('Q', 10), msgOf('Q', 10)}, []int{3, 2}},
		{"many messages in one read", many, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream := bytes.Join(tt.msgs, nil)
			src := &chunkReader{err: io.EOF}
			if len(tt.chunks) == 0 {
				src.chunks = [][]byte{stream}
			} else {
				for rest, i := stream, 0; len(rest) > 0; i++ {
					n := min(tt.chunks[i%len(tt.chunks)], len(rest))
					src.chunks = append(src.chunks, rest[:n])
					rest = rest[n:]
				}
			}
			pools := newBufPools()
			m := newLentMsgReader(src, pools)
			for i, want := range tt.msgs {
				if m.buffered() == 0 {
					m.release()
					if m.r != nil {
						t.Fatal("release kept the buffer with nothing buffered")
					}
				}
				_, got, err := m.next(MaxMessageSize)
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("message %d: got %d bytes %q..., want %d bytes %q...", i, len(got), got[:min(8, len(got))], len(want), want[:8])
				}
			}
			m.release()
			if _, _, err := m.header(); !errors.Is(err, io.EOF) {
				t.Fatalf("after the last message: %v, want EOF", err)
			}
		})
	}
}

// TestLentReaderKeepsBufferedBytes checks that release refuses while bytes
// are buffered, and that a read deadline still reaches the caller of an
// idle (released) reader, which is how client_idle_timeout works.
func TestLentReaderKeepsBufferedBytes(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	m := newLentMsgReader(server, newBufPools())
	go func() { _, _ = client.Write(append(msgOf('Q', 3), msgOf('Q', 4)...)) }()
	if _, msg, err := m.next(MaxMessageSize); err != nil || len(msg) != 8 {
		t.Fatalf("first message: %q %v", msg, err)
	}
	m.release()
	if m.r == nil || m.buffered() != 9 {
		t.Fatalf("release with %d bytes buffered dropped the buffer", m.buffered())
	}
	if _, msg, err := m.next(MaxMessageSize); err != nil || len(msg) != 9 {
		t.Fatalf("second message: %q %v", msg, err)
	}
	m.release()
	_ = server.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, _, err := m.header(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("idle read past its deadline: %v, want a deadline error", err)
	}
}

// TestClientWriterLendsPerFlush checks that the writer holds a buffer only
// between a Write and the next Flush and loses nothing across flushes.
func TestClientWriterLendsPerFlush(t *testing.T) {
	var out bytes.Buffer
	w := newClientWriter(&out, newBufPools())
	if err := w.Flush(); err != nil || w.w != nil {
		t.Fatalf("empty flush: %v, holding %v", err, w.w != nil)
	}
	for i := range 3 {
		if _, err := w.Write(bytes.Repeat([]byte{byte('a' + i)}, clientWriteBuffer+10)); err != nil {
			t.Fatal(err)
		}
		if _, err := w.ReadFrom(bytes.NewReader([]byte{'!'})); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if w.w != nil {
			t.Fatal("Flush kept the buffer")
		}
	}
	if out.Len() != 3*(clientWriteBuffer+11) || out.Bytes()[clientWriteBuffer+10] != '!' || out.Bytes()[clientWriteBuffer+11] != 'b' {
		t.Fatalf("wrote %d bytes in the wrong order", out.Len())
	}
}

// loopReader serves the same bytes forever, one message per Read.
type loopReader struct{ msg []byte }

func (l *loopReader) Read(p []byte) (int, error) { return copy(p, l.msg), nil }

// TestLendingAllocatesNothing: the hot path (borrow, frame, release; write,
// flush) must not allocate per message once the pools are warm.
func TestLendingAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	pools := newBufPools()
	m := newLentMsgReader(&loopReader{msg: msgOf('B', 60)}, pools)
	w := newClientWriter(io.Discard, pools)
	reply := msgOf('D', 120)
	allocs := testing.AllocsPerRun(1000, func() {
		m.release()
		if _, _, err := m.next(MaxMessageSize); err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(reply)
		_ = w.Flush()
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per request, want 0", allocs)
	}
}

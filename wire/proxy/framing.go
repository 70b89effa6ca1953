package proxy

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
	"unsafe"
)

const (
	// MaxMessageSize bounds a message the proxy must hold in memory to inspect
	// (Query, Parse). PostgreSQL's own limit for a query string is 1 GB; a proxy
	// that buffers per client needs a smaller one. Messages it only passes
	// through (rows, COPY data) stream and are not bounded by this.
	MaxMessageSize = 64 << 20
	maxStartupSize = 10_000
	// bufferSize is the read and write buffer of a server connection, and
	// the size above which a message is streamed rather than held.
	bufferSize = 32 << 10
	// Client connections mostly sit idle, one per application pool slot, so
	// their buffers are smaller: they bound the memory of idle clients.
	clientReadBuffer  = 8 << 10
	clientWriteBuffer = 16 << 10

	// ownedMessageSize: a message larger than this is read into a buffer
	// of its own that the reader never touches again, so the caller may
	// keep it, or strings that view it (textOf), without a copy. Smaller
	// ones reuse the reader's buffer.
	ownedMessageSize = 1 << 20
	// budgetedMessageSize: client messages larger than this count against
	// max_buffered_message_bytes while held. It is above maxStartupSize,
	// so a client that has not logged in never holds any of the budget.
	budgetedMessageSize = 64 << 10
	// growStart is the first size of a large message's buffer; it grows
	// as the body arrives (growBuffer), so announcing a large message and
	// sending nothing costs no memory.
	growStart = 64 << 10
)

// idleReadSize is what an idle client connection holds to read into: the
// first read after a pause lands here, and a typical request (a Bind and an
// Execute, a short Query) fits whole, so borrowing the real buffer costs no
// extra system call.
const idleReadSize = 1 << 10

// errTooLarge is returned for a message over MaxMessageSize.
var errTooLarge = errors.New("message exceeds the maximum size")

// bufPools lends client connections their read and write buffers while they
// have work in hand. Most clients of a pooler sit idle most of the time (one
// per application pool slot); holding nothing then is what keeps 10,000 of
// them cheap.
type bufPools struct {
	readers sync.Pool // *bufio.Reader of clientReadBuffer bytes
	writers sync.Pool // *bufio.Writer of clientWriteBuffer bytes
}

func newBufPools() *bufPools {
	p := &bufPools{}
	p.readers.New = func() any { return bufio.NewReaderSize(nil, clientReadBuffer) }
	p.writers.New = func() any { return bufio.NewWriterSize(nil, clientWriteBuffer) }
	return p
}

// msgReader frames protocol messages on a buffered reader without copying
// when a message fits in the buffer.
type msgReader struct {
	r   *bufio.Reader // nil while lent back (see release)
	big []byte        // reused for messages larger than the bufio buffer, up to ownedMessageSize

	// The process's budget for large messages (nil: not charged, as for
	// server connections), what a wait for it is bounded by, and how much
	// the message last returned holds of it.
	budget     *msgBudget
	budgetCtx  context.Context
	budgetWait time.Duration
	held       int64

	pool *bufPools  // nil: the buffer is the reader's own for good
	head headReader // what r reads through when it comes from pool
}

// headReader serves bytes read while no buffer was held, then reads src.
type headReader struct {
	src      io.Reader
	buf      [idleReadSize]byte
	off, end int
}

func (h *headReader) Read(p []byte) (int, error) {
	if h.off < h.end {
		n := copy(p, h.buf[h.off:h.end])
		h.off += n
		return n, nil
	}
	return h.src.Read(p)
}

func newMsgReader(r io.Reader) *msgReader { return newMsgReaderSize(r, bufferSize) }

func newMsgReaderSize(r io.Reader, size int) *msgReader {
	return &msgReader{r: bufio.NewReaderSize(r, size)}
}

// newLentMsgReader reads src through a buffer borrowed from pool, which
// release can give back between messages.
func newLentMsgReader(src io.Reader, pool *bufPools) *msgReader {
	m := &msgReader{pool: pool}
	m.head.src = src
	m.r = pool.readers.Get().(*bufio.Reader)
	m.r.Reset(&m.head)
	return m
}

// buffered reports how many bytes are read but not yet consumed.
func (m *msgReader) buffered() int {
	if m.r == nil {
		return m.head.end - m.head.off
	}
	return m.r.Buffered() + m.head.end - m.head.off
}

// release gives the buffers back when nothing is buffered; the next read
// borrows them again. Only a reader whose r nobody else holds may call it.
func (m *msgReader) release() {
	m.settle()
	if m.pool == nil || m.r == nil || m.buffered() > 0 {
		return
	}
	m.r.Reset(nil)
	m.pool.readers.Put(m.r)
	m.r = nil
	m.big = nil // one huge query must not pin its buffer for the session's life
}

// borrow waits for data in head, then takes a buffer from the pool: an idle
// client blocks holding only head.
func (m *msgReader) borrow() error {
	if m.r != nil {
		return nil
	}
	for {
		n, err := m.head.src.Read(m.head.buf[:])
		if n > 0 {
			// An error with data recurs on the next read; deliver the data first.
			m.head.off, m.head.end = 0, n
			m.r = m.pool.readers.Get().(*bufio.Reader)
			m.r.Reset(&m.head)
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// settle gives back the budget the last message held: the caller is done
// with it once it asks for the next one.
func (m *msgReader) settle() {
	if m.held > 0 {
		m.budget.refund(m.held)
		m.held = 0
	}
}

// header peeks the next message's type and total length (type byte + length
// word + body) without consuming it.
func (m *msgReader) header() (typ byte, total int, err error) {
	m.settle()
	if err := m.borrow(); err != nil {
		return 0, 0, err
	}
	h, err := m.r.Peek(5)
	if err != nil {
		if errors.Is(err, io.EOF) && len(h) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return 0, 0, err
	}
	n := int(int32(binary.BigEndian.Uint32(h[1:5])))
	if n < 4 {
		return 0, 0, fmt.Errorf("invalid message length %d for message type %q", n, h[0])
	}
	return h[0], n + 1, nil
}

// next returns the whole next message (header included). The slice is valid
// until the next call on m.
func (m *msgReader) next(limit int) (typ byte, msg []byte, err error) {
	typ, total, err := m.header()
	if err != nil {
		return 0, nil, err
	}
	if total > limit {
		return typ, nil, fmt.Errorf("%w: %c message of %d bytes (limit %d)", errTooLarge, typ, total, limit)
	}
	if total <= m.r.Size() {
		msg, err = m.r.Peek(total)
		if err != nil {
			return 0, nil, unexpected(err)
		}
		_, _ = m.r.Discard(total)
		return typ, msg, nil
	}
	if m.budget != nil && total > budgetedMessageSize {
		if err := m.budget.charge(m.budgetCtx, int64(total), m.budgetWait); err != nil {
			return typ, nil, err
		}
		m.held = int64(total)
	}
	if total > ownedMessageSize {
		msg, err = growBuffer(m.r, nil, total)
		if err != nil {
			return 0, nil, unexpected(err)
		}
		return typ, msg, nil
	}
	m.big, err = growBuffer(m.r, m.big[:0], total)
	if err != nil {
		return 0, nil, unexpected(err)
	}
	return typ, m.big, nil
}

// growBuffer reads total bytes from r into buf, growing it as the bytes
// arrive rather than allocating the announced size up front: a client
// that announces 64 MB and stalls holds what it sent, not 64 MB. Once a
// quarter has arrived the rest is taken in one step, so a real large
// message costs one copy of at most a quarter of it.
func growBuffer(r io.Reader, buf []byte, total int) ([]byte, error) {
	for len(buf) < total {
		if len(buf) == cap(buf) {
			c := max(2*cap(buf), growStart)
			if c >= total/4 {
				c = total
			}
			nb := make([]byte, len(buf), min(c, total))
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), total)])
		buf = buf[:len(buf)+n]
		if err != nil && len(buf) < total {
			return buf, err
		}
	}
	return buf, nil
}

// textOf returns part, a piece of msg, as a string. When msg is in a
// buffer of its own (larger than ownedMessageSize) nothing writes to that
// buffer again, so the string views it instead of copying: a 60 MB Query
// costs 60 MB, not 120. Smaller messages live in buffers the reader
// reuses and are copied.
func textOf(msg, part []byte) string {
	if len(msg) > ownedMessageSize && len(part) > 0 {
		return unsafe.String(&part[0], len(part))
	}
	return string(part)
}

// copyTo streams the next message to w, buffering at most the reader's
// buffer; used for large rows and COPY data the proxy never inspects.
func (m *msgReader) copyTo(w io.Writer, total int) error {
	m.settle()
	if err := m.borrow(); err != nil {
		return unexpected(err)
	}
	_, err := io.CopyN(w, m.r, int64(total))
	return unexpected(err)
}

// startup reads an untyped startup-phase packet (length word + body) and
// returns its body.
func (m *msgReader) startup() ([]byte, error) {
	if err := m.borrow(); err != nil {
		return nil, err
	}
	h, err := m.r.Peek(4)
	if err != nil {
		return nil, err
	}
	n := int(int32(binary.BigEndian.Uint32(h)))
	if n < 8 || n > maxStartupSize {
		return nil, fmt.Errorf("invalid startup packet length %d", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(m.r, buf); err != nil {
		return nil, unexpected(err)
	}
	return buf[4:], nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// body returns a message's body (after type byte and length).
func body(msg []byte) []byte { return msg[5:] }

// cstring splits a NUL-terminated string off the front of b.
func cstring(b []byte) (s []byte, rest []byte, ok bool) {
	for i, c := range b {
		if c == 0 {
			return b[:i], b[i+1:], true
		}
	}
	return nil, nil, false
}

// appendMsg appends a message with the given type and body to dst.
func appendMsg(dst []byte, typ byte, parts ...[]byte) []byte {
	n := 4
	for _, p := range parts {
		n += len(p)
	}
	dst = append(dst, typ)
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	for _, p := range parts {
		dst = append(dst, p...)
	}
	return dst
}

// clientWriter buffers what goes to a client in a writer borrowed from the
// pool and gives it back at every Flush, so a client between requests holds
// no write buffer.
type clientWriter struct {
	dst  io.Writer
	pool *bufPools

	// The session and its relay goroutine take turns on the writer; the
	// lock makes a mistake in that protocol garble one client's stream at
	// worst, never give a buffer back twice and so share it between clients.
	mu sync.Mutex
	w  *bufio.Writer
}

func newClientWriter(dst io.Writer, pool *bufPools) *clientWriter {
	return &clientWriter{dst: dst, pool: pool}
}

func (c *clientWriter) get() *bufio.Writer {
	if c.w == nil {
		c.w = c.pool.writers.Get().(*bufio.Writer)
		c.w.Reset(c.dst)
	}
	return c.w
}

func (c *clientWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.get().Write(p)
}

// ReadFrom keeps io.Copy into the client on bufio's path (no extra buffer).
func (c *clientWriter) ReadFrom(r io.Reader) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.get().ReadFrom(r)
}

// Flush sends what is buffered and gives the buffer back. After an error
// the unsent bytes are dropped: the connection is not usable anyway.
func (c *clientWriter) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.w == nil {
		return nil
	}
	err := c.w.Flush()
	c.putLocked()
	return err
}

// Discard gives the buffer back without sending what it holds.
func (c *clientWriter) Discard() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.w != nil {
		c.putLocked()
	}
}

func (c *clientWriter) putLocked() {
	c.w.Reset(nil)
	c.pool.writers.Put(c.w)
	c.w = nil
}

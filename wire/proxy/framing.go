package proxy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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
)

// errTooLarge is returned for a message over MaxMessageSize.
var errTooLarge = errors.New("message exceeds the maximum size")

// msgReader frames protocol messages on a buffered reader without copying
// when a message fits in the buffer.
type msgReader struct {
	r   *bufio.Reader
	big []byte // reused for messages larger than the bufio buffer
}

func newMsgReader(r io.Reader) *msgReader { return newMsgReaderSize(r, bufferSize) }

func newMsgReaderSize(r io.Reader, size int) *msgReader {
	return &msgReader{r: bufio.NewReaderSize(r, size)}
}

// header peeks the next message's type and total length (type byte + length
// word + body) without consuming it.
func (m *msgReader) header() (typ byte, total int, err error) {
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
	if cap(m.big) < total {
		m.big = make([]byte, total)
	}
	m.big = m.big[:total]
	if _, err := io.ReadFull(m.r, m.big); err != nil {
		return 0, nil, unexpected(err)
	}
	return typ, m.big, nil
}

// copyTo streams the next message to w, buffering at most the reader's
// buffer; used for large rows and COPY data the proxy never inspects.
func (m *msgReader) copyTo(w io.Writer, total int) error {
	_, err := io.CopyN(w, m.r, int64(total))
	return unexpected(err)
}

// startup reads an untyped startup-phase packet (length word + body) and
// returns its body.
func (m *msgReader) startup() ([]byte, error) {
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

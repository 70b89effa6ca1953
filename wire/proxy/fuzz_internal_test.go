package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// These let a test of package proxy_test check searchPathSQL and the
// reference parser its fuzz test trusts against a real PostgreSQL, which
// only that package's TestMain starts.
var (
	SearchPathSQL         = searchPathSQL
	SplitIdentifierString = pgSplitIdentifierString
	SearchPathFuzzSeeds   = searchPathSeeds
)

// fuzzMaxInput bounds the bytes the reader fuzz targets look at. The fuzzer
// minimizes every input it finds interesting at a cost that grows with the
// square of its length, and larger inputs reach nothing smaller ones do not:
// the readers with 16-byte buffers take every path a large message takes.
const fuzzMaxInput = 512

// fzSource hands out data in reads of the sizes the fuzzer picks, as a
// socket does, then io.EOF for good. With eofWithData the last read returns
// io.EOF together with its bytes, which io.Reader allows.
type fzSource struct {
	data        []byte
	cuts        []byte
	i           int
	eofWithData bool
}

func (s *fzSource) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	n := len(s.data)
	if len(s.cuts) > 0 {
		c := int(s.cuts[s.i%len(s.cuts)])
		s.i++
		if c == 0 {
			c = 1 << 16 // lets one read cover a message bigger than any buffer
		}
		n = min(n, c)
	}
	n = copy(p, s.data[:n])
	s.data = s.data[n:]
	if len(s.data) == 0 && s.eofWithData {
		return n, io.EOF
	}
	return n, nil
}

// Per message, how the reader is driven: opStream reads it with header and
// copyTo (the path for messages the proxy does not inspect), otherwise with
// next; opRelease first gives the lent buffer back if nothing is buffered,
// as the session does between requests.
const (
	opStream  = 1
	opRelease = 2
)

func fzOp(ops []byte, i int) byte {
	if len(ops) == 0 {
		return 0
	}
	return ops[i%len(ops)]
}

// fzEvent is one message read, or the error that ended reading with the
// bytes copyTo wrote before it.
type fzEvent struct {
	msg []byte
	err string
}

func fzKind(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, errTooLarge):
		return "too large"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected EOF"
	case errors.Is(err, io.EOF):
		return "EOF"
	case strings.HasPrefix(err.Error(), "invalid message length "):
		return "bad length"
	}
	return "other: " + err.Error()
}

// fzFrames is what reading stream must give, from the protocol's
// definition: a type byte, a length word of at least 4 counting itself and
// the body, the body; next refuses messages longer than limit.
func fzFrames(stream, ops []byte, limit int) []fzEvent {
	var out []fzEvent
	for i := 0; ; i++ {
		op := fzOp(ops, i)
		switch {
		case len(stream) == 0:
			return append(out, fzEvent{err: "EOF"})
		case len(stream) < 5:
			return append(out, fzEvent{err: "unexpected EOF"})
		}
		n := int(int32(binary.BigEndian.Uint32(stream[1:5])))
		total := n + 1
		switch {
		case n < 4:
			return append(out, fzEvent{err: "bad length"})
		case op&opStream == 0 && total > limit:
			return append(out, fzEvent{err: "too large"})
		case total > len(stream):
			e := fzEvent{err: "unexpected EOF"}
			if op&opStream != 0 {
				e.msg = stream
			}
			return append(out, e)
		}
		out = append(out, fzEvent{msg: stream[:total]})
		stream = stream[total:]
	}
}

// fzRead reads m to its first error the way ops say, checking what each
// call returns on its own terms.
func fzRead(t *testing.T, name string, m *msgReader, ops []byte, limit, maxMsgs int) []fzEvent {
	var out []fzEvent
	for i := 0; i <= maxMsgs; i++ {
		op := fzOp(ops, i)
		if op&opRelease != 0 && m.buffered() == 0 {
			m.release()
			if m.pool != nil && m.r != nil {
				t.Fatalf("%s: release kept the buffer with nothing buffered", name)
			}
		}
		if op&opStream != 0 {
			typ, total, err := m.header()
			if err != nil {
				return append(out, fzEvent{err: fzKind(err)})
			}
			if total < 5 {
				t.Fatalf("%s: header gave total %d", name, total)
			}
			var buf bytes.Buffer
			err = m.copyTo(&buf, total)
			got := buf.Bytes()
			if len(got) > 0 && got[0] != typ {
				t.Fatalf("%s: header said type %q, copyTo wrote %q", name, typ, got[0])
			}
			if err != nil {
				return append(out, fzEvent{msg: got, err: fzKind(err)})
			}
			if len(got) != total {
				t.Fatalf("%s: copyTo wrote %d bytes of %d without an error", name, len(got), total)
			}
			out = append(out, fzEvent{msg: got})
			continue
		}
		typ, msg, err := m.next(limit)
		if err != nil {
			if msg != nil {
				t.Fatalf("%s: next returned %d bytes with error %v", name, len(msg), err)
			}
			return append(out, fzEvent{err: fzKind(err)})
		}
		if len(msg) > limit {
			t.Fatalf("%s: next returned %d bytes over the limit %d", name, len(msg), limit)
		}
		if len(msg) < 5 || msg[0] != typ || int(int32(binary.BigEndian.Uint32(msg[1:5])))+1 != len(msg) {
			t.Fatalf("%s: next returned a malformed message: type %q, % x...", name, typ, msg[:min(len(msg), 8)])
		}
		out = append(out, fzEvent{msg: bytes.Clone(msg)}) // msg is valid until the next call only
	}
	t.Fatalf("%s: more than %d messages from a stream that can hold at most that many", name, maxMsgs)
	return nil
}

func fzDescribe(evs []fzEvent) string {
	var b strings.Builder
	for _, e := range evs {
		if len(e.msg) > 0 {
			fmt.Fprintf(&b, "%q(%d)", e.msg[0], len(e.msg))
		}
		if e.err != "" {
			b.WriteString("!" + e.err)
		}
		b.WriteByte(' ')
	}
	return b.String()
}

// FuzzMsgReader frames arbitrary bytes cut into arbitrary reads with the
// plain reader, a reader whose buffer is smaller than most messages, and
// the lent-buffer reader clients get, and checks all three against the
// protocol's definition: same messages, same bytes consumed, same error.
func FuzzMsgReader(f *testing.F) {
	q := appendMsg(nil, 'Q', []byte("SELECT 1\x00"))
	sync := appendMsg(nil, 'S')
	big := appendMsg(nil, 'P', bytes.Repeat([]byte{'x'}, 40)) // larger than the 16-byte buffers
	seeds := []struct {
		stream, cuts, ops []byte
		limit             uint32
		eofWithData       bool
	}{
		{nil, nil, nil, 1 << 16, false},
		{q, nil, nil, 1 << 16, false},
		{slices.Concat(q, sync, q), []byte{1}, []byte{0, opRelease, opStream}, 1 << 16, false},
		{slices.Concat(q, sync), []byte{3, 2}, []byte{opRelease}, 1 << 16, true},
		{[]byte("Q\x00\x00\x00\x03"), nil, nil, 1 << 16, false},                 // length below 4
		{[]byte("Q\xff\xff\xff\xff"), nil, nil, 1 << 16, false},                 // negative length
		{[]byte("Q\x7f\xff\xff\xffabc"), nil, []byte{opStream}, 1 << 16, false}, // 2 GB announced
		{[]byte("Q\x00\x00"), nil, nil, 1 << 16, false},                         // cut header
		{q[:len(q)-2], []byte{1}, nil, 1 << 16, false},                          // cut body
		{slices.Concat(big, sync), []byte{0, 7}, []byte{opRelease}, 1 << 16, false},
		{slices.Concat(big, q), []byte{200}, []byte{0, opStream | opRelease}, 1 << 16, true},
		{slices.Concat(q, big), nil, nil, 100, false}, // over the limit
		{slices.Concat(q, big), nil, []byte{opStream}, 100, false},
	}
	for _, s := range seeds {
		f.Add(s.stream, s.cuts, s.ops, s.limit, s.eofWithData)
	}
	smallPools := &bufPools{}
	smallPools.readers.New = func() any { return bufio.NewReaderSize(nil, 16) }
	f.Fuzz(func(t *testing.T, stream, cuts, ops []byte, limit uint32, eofWithData bool) {
		if len(stream) > fuzzMaxInput {
			return
		}
		lim := 5 + int(limit%(1<<17))
		want := fzFrames(stream, ops, lim)
		maxMsgs := len(stream)/5 + 1
		src := func() io.Reader {
			return &fzSource{data: slices.Clone(stream), cuts: cuts, eofWithData: eofWithData}
		}
		readers := []struct {
			name string
			m    *msgReader
		}{
			{"plain", newMsgReader(src())},
			{"small buffer", newMsgReaderSize(src(), 16)},
			{"lent", newLentMsgReader(src(), newBufPools())},
			{"lent small buffer", newLentMsgReader(src(), smallPools)},
		}
		for _, r := range readers {
			got := fzRead(t, r.name, r.m, ops, lim, maxMsgs)
			if !slices.EqualFunc(got, want, func(a, b fzEvent) bool { return a.err == b.err && bytes.Equal(a.msg, b.msg) }) {
				t.Fatalf("%s reader: got %s\nwant %s", r.name, fzDescribe(got), fzDescribe(want))
			}
		}
	})
}

// fzStartupMessage does to a startup packet's body what session.startup
// (startup.go) does once msgReader.startup has read it; it is kept in step
// by hand because the session's version is tied to its connection. The
// request codes aside, any 3.x is read as 3.0 and _pq_ options set aside.
func fzStartupMessage(b []byte) (sm *pgproto3.StartupMessage, request string, err error) {
	code := binary.BigEndian.Uint32(b)
	switch code {
	case codeSSLRequest, codeGSSENCRequest:
		return nil, "encryption", nil
	case codeCancelRequest:
		if len(b) < 12 {
			return nil, "", errors.New("short cancel request")
		}
		return nil, "cancel", nil
	}
	if major := code >> 16; major != 3 {
		return nil, "", fmt.Errorf("unsupported frontend protocol %d.%d", major, code&0xffff)
	}
	sm = &pgproto3.StartupMessage{}
	binary.BigEndian.PutUint32(b, protocol30)
	if err := sm.Decode(b); err != nil {
		return nil, "", err
	}
	for k := range sm.Parameters {
		if strings.HasPrefix(k, "_pq_.") {
			delete(sm.Parameters, k)
		}
	}
	return sm, "startup", nil
}

// pgStartupParams parses the parameters of a startup packet body (after
// the version) as PostgreSQL's ProcessStartupPacket does: name/value pairs
// up to an empty name, which must be the packet's last byte.
func pgStartupParams(buf []byte) (map[string]string, bool) {
	cstr := func(b []byte) string {
		if i := bytes.IndexByte(b, 0); i >= 0 {
			return string(b[:i])
		}
		return string(b) // PostgreSQL puts a NUL after the packet
	}
	params := map[string]string{}
	off := 0
	for off < len(buf) {
		name := cstr(buf[off:])
		if name == "" {
			break
		}
		valOff := off + len(name) + 1
		if valOff >= len(buf) {
			break
		}
		val := cstr(buf[valOff:])
		params[name] = val
		off = valOff + len(val) + 1
	}
	return params, off == len(buf)-1
}

// FuzzStartupPacket reads an arbitrary first packet as a session does and
// decodes it as a startup message: the reader takes exactly the announced
// length or fails, and what decodes holds no NUL and no _pq_ option, agrees
// with PostgreSQL's own parsing and encodes back to the same parameters.
func FuzzStartupPacket(f *testing.F) {
	packet := func(version uint32, body string) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
		return append(binary.BigEndian.AppendUint32(b, version), body...)
	}
	for _, s := range [][]byte{
		packet(protocol30, "user\x00app_user.acme\x00database\x00mydb\x00\x00"),
		packet(protocol30, "user\x00u\x00user\x00postgres\x00\x00"), // duplicate: last wins
		packet(protocol30, "user\x00u\x00_pq_.x\x00y\x00\x00"),      // protocol option
		packet(3<<16|2, "user\x00u\x00\x00"),                        // 3.2
		packet(3<<16|9, "user\x00u\x00\x00"),                        // any 3.x
		packet(protocol30, "\x00val\x00\x00"),                       // empty name
		packet(protocol30, "user\x00u\x00\x00\x00\x00"),             // bytes after the terminator
		packet(protocol30, "user\x00u\x00"),                         // no terminator
		packet(protocol30, "\x00"),                                  // no parameters
		packet(2<<16, "user\x00u\x00\x00"),                          // protocol 2
		packet(codeSSLRequest, ""),
		packet(codeGSSENCRequest, ""),
		packet(codeCancelRequest, "\x00\x00\x00\x01abcd"),
		packet(codeCancelRequest, "\x00\x00"),
		{0, 0, 0, 7, 0, 3, 0},                                                   // length below 8
		{0, 0, 0x27, 0x11, 0, 3, 0},                                             // length over the limit
		{0, 0},                                                                  // cut length
		append(packet(protocol30, "user\x00u\x00\x00"), "Q\x00\x00\x00\x05"...), // a message after it
	} {
		f.Add(s, []byte(nil))
		f.Add(s, []byte{1})
	}
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		if len(data) > fuzzMaxInput {
			return // the length word alone can announce any size
		}
		m := newLentMsgReader(&fzSource{data: slices.Clone(data), cuts: cuts}, newBufPools())
		b, err := m.startup()
		n := -1
		if len(data) >= 4 {
			n = int(int32(binary.BigEndian.Uint32(data)))
		}
		switch {
		case len(data) < 4:
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("%d bytes: %v, want an end of input", len(data), err)
			}
			return
		case n < 8 || n > maxStartupSize:
			if err == nil || !strings.HasPrefix(err.Error(), "invalid startup packet length") {
				t.Fatalf("length %d: %v, want it refused", n, err)
			}
			return
		case n > len(data):
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("length %d of %d bytes: %v, want unexpected EOF", n, len(data), err)
			}
			return
		case err != nil:
			t.Fatalf("length %d of %d bytes: %v", n, len(data), err)
		}
		if !bytes.Equal(b, data[4:n]) {
			t.Fatalf("body of %d bytes, want %d", len(b), n-4)
		}
		if rest, err := io.ReadAll(m.r); err != nil || !bytes.Equal(rest, data[n:]) {
			t.Fatalf("after the packet: %d bytes (%v), want the %d after it", len(rest), err, len(data)-n)
		}

		sm, request, err := fzStartupMessage(b)
		if request != "startup" {
			return
		}
		pgParams, pgOK := pgStartupParams(data[8:n])
		if err != nil {
			if pgOK && len(pgParams) > 0 {
				t.Fatalf("refused a packet PostgreSQL accepts (%v): %q", err, pgParams)
			}
			return
		}
		for k, v := range sm.Parameters {
			if strings.IndexByte(k, 0) >= 0 || strings.IndexByte(v, 0) >= 0 {
				t.Fatalf("parameter %q = %q holds a NUL", k, v)
			}
			if strings.HasPrefix(k, "_pq_.") {
				t.Fatalf("protocol option %q kept", k)
			}
		}
		for k := range pgParams {
			if strings.HasPrefix(k, "_pq_.") {
				delete(pgParams, k)
			}
		}
		// pgproto3 reads an empty name as a parameter, where PostgreSQL
		// ends the list there (and refuses the packet unless it is the
		// last byte). The proxy ignores the empty name for tenants; a
		// relayed bypass login gets PostgreSQL's refusal.
		if _, empty := sm.Parameters[""]; !empty && (!pgOK || !maps.Equal(sm.Parameters, pgParams)) {
			t.Fatalf("decoded %q; PostgreSQL reads %q (accepts: %v)", sm.Parameters, pgParams, pgOK)
		}
		enc, err := (&pgproto3.StartupMessage{ProtocolVersion: protocol30, Parameters: sm.Parameters}).Encode(nil)
		if err != nil {
			t.Fatalf("re-encoding %q: %v", sm.Parameters, err)
		}
		var again pgproto3.StartupMessage
		if err := again.Decode(enc[4:]); err != nil || !maps.Equal(again.Parameters, sm.Parameters) {
			t.Fatalf("re-encoded %q decodes as %q (%v)", sm.Parameters, again.Parameters, err)
		}
	})
}

// pgIsSpace is scanner_isspace of current PostgreSQL. Version 15 and older
// do not count '\v', so the search_path tests avoid it.
func pgIsSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// pgSplitIdentifierString is PostgreSQL's SplitIdentifierString with ','
// as separator, which is how the server reads a search_path value: names
// are quoted ("" for a quote inside) or unquoted, lower-cased in ASCII
// only, with white space around them. ok is false where the server refuses
// the value. Names are not truncated to NAMEDATALEN.
func pgSplitIdentifierString(s string) (names []string, ok bool) {
	i := 0
	for i < len(s) && pgIsSpace(s[i]) {
		i++
	}
	if i == len(s) {
		return nil, true
	}
	for {
		var name []byte
		if i < len(s) && s[i] == '"' {
			i++
			for {
				j := strings.IndexByte(s[i:], '"')
				if j < 0 {
					return nil, false
				}
				name = append(name, s[i:i+j]...)
				i += j + 1
				if i < len(s) && s[i] == '"' {
					name = append(name, '"')
					i++
					continue
				}
				break
			}
		} else {
			start := i
			for i < len(s) && s[i] != ',' && !pgIsSpace(s[i]) {
				i++
			}
			if i == start {
				return nil, false
			}
			for _, c := range []byte(s[start:i]) {
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				name = append(name, c)
			}
		}
		names = append(names, string(name))
		for i < len(s) && pgIsSpace(s[i]) {
			i++
		}
		switch {
		case i == len(s):
			return names, true
		case s[i] != ',':
			return nil, false
		}
		i++
		for i < len(s) && pgIsSpace(s[i]) {
			i++
		}
	}
}

// parseSearchPathSQL reads searchPathSQL's output, which must be either an
// empty string literal (two single quotes) or double-quoted names, every
// quote inside doubled, joined by ", ".
func parseSearchPathSQL(out string) ([]string, error) {
	if out == "''" {
		return nil, nil
	}
	var names []string
	for i := 0; ; {
		if i >= len(out) || out[i] != '"' {
			return nil, errors.New("a name does not start with a quote")
		}
		var name []byte
		for i++; ; i++ {
			if i == len(out) {
				return nil, errors.New("unbalanced quote")
			}
			if out[i] == '"' {
				if i+1 < len(out) && out[i+1] == '"' {
					name = append(name, '"')
					i++
					continue
				}
				i++
				break
			}
			name = append(name, out[i])
		}
		names = append(names, string(name))
		if i == len(out) {
			return names, nil
		}
		if !strings.HasPrefix(out[i:], ", ") {
			return nil, errors.New("something other than \", \" between names")
		}
		i += 2
	}
}

// searchPathSeeds are search_path values worth trying, shared with the
// test that checks against PostgreSQL.
var searchPathSeeds = []string{
	`"$user", public`, `public`, `Public,  Other `, `"My Schema",x`, `"a""b"`, `"x"; DROP TABLE t; --`,
	``, `  `, `a'b`, `"unterminated, still ok`, `""`, `"", public`, `a,,b`, `a,`, `,a`, `a b`, `"a" b`,
	`"a"b"c"`, `A"B`, `a"b"`, `Éco`, `ÉCO, "Éco"`, "public\u00a0", "\u00a0public", "\u212a", "İx",
	"a\r,\fb", "\ta\n", "x\xff", `"a;b", c`, `'; SELECT 1; --`, `"\"`, `\`, `e'\\'`, `$1`,
	strings.Repeat("n", 70), `"` + strings.Repeat("Q", 70) + `"`, `pg_catalog, "$user"`,
}

// FuzzSearchPathSQL: whatever the client's search_path, searchPathSQL gives
// SQL that is only quoted names (or an empty literal), and where PostgreSQL
// would accept the value itself, the same names PostgreSQL reads from it.
func FuzzSearchPathSQL(f *testing.F) {
	for _, s := range searchPathSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		out := searchPathSQL(v)
		names, err := parseSearchPathSQL(out)
		if err != nil {
			t.Fatalf("searchPathSQL(%q) = %s: %v", v, out, err)
		}
		for _, n := range names {
			if n == "" {
				t.Fatalf("searchPathSQL(%q) = %s: PostgreSQL refuses a zero-length quoted name", v, out)
			}
		}
		if strings.IndexByte(out, 0) >= 0 && strings.IndexByte(v, 0) < 0 {
			t.Fatalf("searchPathSQL(%q) = %q: a NUL from nowhere", v, out)
		}
		if strings.ContainsAny(v, "\x00\v") {
			return // no NUL in a startup value; \v depends on the server version
		}
		pg, ok := pgSplitIdentifierString(v)
		if !ok {
			return // the server would refuse it; the proxy may be lenient
		}
		// A zero-length name cannot name a schema, so leaving it out means
		// the same to PostgreSQL.
		pg = slices.DeleteFunc(pg, func(n string) bool { return n == "" })
		if !slices.Equal(names, pg) {
			t.Fatalf("searchPathSQL(%q) = %s, names %q; PostgreSQL reads %q", v, out, names, pg)
		}
	})
}

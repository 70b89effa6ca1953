package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/multigres/proxy/wire/sqlguard"
)

// Notifications for tenants.
//
// PostgreSQL's channels are per database, shared by every session, so a
// tenant's channel name is mapped to a server channel derived from the
// tenant role, the context values and the name (channelName): NOTIFY and
// pg_notify() are rewritten to it by the guard (RewriteNotify), and a
// tenant can never name another tenant's server channel, because whatever
// it names is mapped again with its own role and values. LISTEN and
// UNLISTEN never reach the tenant's server connection: they become empty
// stand-ins there (so replies stay in order and the statement takes part in
// the transaction as PostgreSQL's would), and at commit the session joins
// or leaves the server channel on the pool's notification hub: one server
// connection per database, logged in as server_user, that LISTENs to every
// channel some client listens to and hands each notification to the
// sessions listening to that exact server channel, under the client's own
// channel name. It works the same in both pool modes.

// channelName maps a tenant's channel to its server channel. The hash
// keeps the name within PostgreSQL's 63 bytes whatever the inputs.
func (s *session) channelName(client string) string {
	h := sha256.New()
	h.Write([]byte("multigres notify\x00"))
	h.Write([]byte(s.tenant.Role))
	for _, v := range s.tenant.Values {
		h.Write([]byte{0})
		h.Write([]byte(v))
	}
	h.Write([]byte{1})
	h.Write([]byte(client))
	return "mgn_" + hex.EncodeToString(h.Sum(nil)[:16])
}

// listenEffect reads LISTEN channel, UNLISTEN channel and UNLISTEN *.
func (s *session) listenEffect(verb string, toks []sqlguard.Token, multi bool) (stmtEffect, string, *refusal) {
	what := strings.ToUpper(verb)
	if multi {
		return stmtEffect{}, "", &refusal{kind: verb, code: codeInsufficientPriv,
			message: "multigres: " + what + " inside a longer query string is not supported",
			hint:    "send " + what + " as a query of its own"}
	}
	if len(toks) != 1 {
		return stmtEffect{}, "", nil // a syntax error; the stand-in cannot report it
	}
	switch {
	case verb == "unlisten" && toks[0].IsOp('*'):
		return stmtEffect{kind: effUnlistenAll}, "", nil
	case toks[0].IsName():
		k := effListen
		if verb == "unlisten" {
			k = effUnlisten
		}
		return stmtEffect{kind: k, name: strings.Clone(toks[0].Value)}, "", nil
	}
	return stmtEffect{}, "", &refusal{kind: verb, code: codeInsufficientPriv,
		message: "multigres: " + what + " of a Unicode-escaped channel name is not supported", hint: "write the channel name without U& escapes"}
}

// listenPlan reports whether plan is a lone statement the server only gets
// an empty stand-in for (LISTEN, UNLISTEN, an extended-protocol RESET ALL),
// and its command tag.
func listenPlan(plan *stmtPlan) (string, bool) {
	if plan == nil || len(plan.effects) != 1 {
		return "", false
	}
	switch plan.effects[0].kind {
	case effListen:
		return "LISTEN", true
	case effUnlisten, effUnlistenAll:
		return "UNLISTEN", true
	case effResetAll:
		return "RESET", true
	}
	return "", false
}

// listen joins the server channel for client's channel name.
func (s *session) listen(client string) {
	server := s.channelName(client)
	t := s.track()
	t.mu.Lock()
	_, had := t.listens[server]
	t.listens[server] = client
	t.mu.Unlock()
	if had {
		return
	}
	if err := hubFor(s).subscribe(server, s); err != nil {
		s.log.Warn("LISTEN failed on the notification connection", "err", err)
		t.mu.Lock()
		delete(t.listens, server)
		t.mu.Unlock()
		s.writeClient(&pgproto3.NoticeResponse{Severity: "WARNING", SeverityUnlocalized: "WARNING", Code: "58000",
			Message: "multigres: LISTEN " + client + " failed: the notification connection is unavailable; try again"})
	}
}

// unlisten leaves client's channel.
func (s *session) unlisten(client string) {
	server := s.channelName(client)
	t := s.track()
	t.mu.Lock()
	_, had := t.listens[server]
	delete(t.listens, server)
	t.mu.Unlock()
	if had {
		hubFor(s).unsubscribe(server, s)
	}
}

// unlistenAll leaves every channel (UNLISTEN *, DISCARD ALL, the end of
// the session).
func (s *session) unlistenAll() {
	t := s.tracked
	if t == nil {
		return
	}
	t.mu.Lock()
	chans := make([]string, 0, len(t.listens))
	for k := range t.listens {
		chans = append(chans, k)
	}
	clear(t.listens)
	t.queued = nil
	t.nqueued.Store(0)
	t.mu.Unlock()
	if len(chans) == 0 {
		return
	}
	h := hubFor(s)
	for _, c := range chans {
		h.unsubscribe(c, s)
	}
}

// maxQueuedNotifications bounds what waits for a busy client; PostgreSQL's
// own queue is bounded too (8 GB), and a client that never reads loses
// the oldest.
const maxQueuedNotifications = 10000

// notified queues a notification from the hub for the client, under the
// client's channel name, and delivers it when the client's stream is at a
// message boundary.
func (s *session) notified(server, payload string, pid uint32) {
	t := s.tracked
	t.mu.Lock()
	client, ok := t.listens[server]
	if !ok {
		t.mu.Unlock()
		return
	}
	msg, err := (&pgproto3.NotificationResponse{PID: pid, Channel: client, Payload: payload}).Encode(nil)
	if err != nil {
		t.mu.Unlock()
		return
	}
	if len(t.queued) >= maxQueuedNotifications {
		t.queued = t.queued[1:]
		s.log.Warn("dropping a notification: the client does not read them")
	}
	t.queued = append(t.queued, msg)
	t.nqueued.Store(int32(len(t.queued)))
	start := !t.delivering
	t.delivering = true
	t.mu.Unlock()
	if start {
		go s.deliverQueued()
	}
}

// deliverQueued writes queued notifications while nothing else can be in
// the middle of a message to the client: no server connection, or one
// that owes nothing and has nothing unflushed (a reader relaying a large
// row holds a request open). Otherwise the reader delivers them at the
// next ReadyForQuery.
func (s *session) deliverQueued() {
	t := s.tracked
	for {
		s.mu.Lock()
		ok := false
		switch s.att {
		case detached:
			ok = true
		case attached, parked:
			ok = !s.unflushed && s.sc != nil && !s.sc.st.busy()
		}
		t.mu.Lock()
		if !ok || len(t.queued) == 0 {
			t.delivering = false
			t.mu.Unlock()
			s.mu.Unlock()
			return
		}
		q := t.queued
		t.queued = nil
		t.nqueued.Store(0)
		t.mu.Unlock()
		for _, m := range q {
			_, _ = s.w.Write(m)
		}
		s.mu.Unlock()
		if err := s.w.Flush(); err != nil {
			t.mu.Lock()
			t.delivering = false
			t.mu.Unlock()
			return
		}
	}
}

// deliverAtBoundary writes queued notifications ahead of a ReadyForQuery,
// where PostgreSQL sends them too. The reader calls it.
func (s *session) deliverAtBoundary() {
	t := s.tracked
	if t.nqueued.Load() == 0 {
		return
	}
	t.mu.Lock()
	q := t.queued
	t.queued = nil
	t.nqueued.Store(0)
	t.mu.Unlock()
	for _, m := range q {
		_, _ = s.w.Write(m)
	}
}

// hubs holds one notification hub per pool.
var hubs sync.Map // *pool -> *notifyHub

func hubFor(s *session) *notifyHub {
	if h, ok := hubs.Load(s.pool); ok {
		return h.(*notifyHub)
	}
	h, _ := hubs.LoadOrStore(s.pool, &notifyHub{p: s.pool, log: s.srv.log.With("pool", s.pool.db, "notifications", true),
		timeout: s.gen.opts.ServerConnectTimeout, subs: map[string]map[*session]struct{}{}})
	return h.(*notifyHub)
}

// notifyHub is a pool's listening connection and who listens to what.
type notifyHub struct {
	p       *pool
	log     *slog.Logger
	timeout time.Duration

	mu      sync.Mutex
	subs    map[string]map[*session]struct{} // server channel -> sessions
	sc      *serverConn                      // nil when not connected
	waiters []chan error                     // one per query written, in order; nil entries wait for nobody
	retry   bool                             // a reconnect loop is running
}

var errHubDown = errors.New("the notification connection is not available")

// subscribe adds s to channel, LISTENing on the server first if nobody
// listened yet; it returns once PostgreSQL has confirmed the LISTEN, so a
// NOTIFY sent after the client's LISTEN returned is not missed.
func (h *notifyHub) subscribe(channel string, s *session) error {
	h.mu.Lock()
	set := h.subs[channel]
	if set == nil {
		set = map[*session]struct{}{}
		h.subs[channel] = set
	}
	set[s] = struct{}{}
	if len(set) > 1 {
		h.mu.Unlock()
		return nil
	}
	if h.sc == nil && !h.retry {
		if err := h.connectLocked(); err != nil {
			h.dropLocked(channel, s)
			h.mu.Unlock()
			return err
		}
	}
	if h.sc == nil {
		// Reconnecting: the loop LISTENs to every channel when it is back.
		h.mu.Unlock()
		return nil
	}
	done := make(chan error, 1)
	if err := h.sendLocked("LISTEN "+quoteIdent(channel), done); err != nil {
		h.dropLocked(channel, s)
		h.mu.Unlock()
		return err
	}
	h.mu.Unlock()
	t := time.NewTimer(h.timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("LISTEN on the notification connection: no answer within %s", h.timeout)
	}
}

// unsubscribe removes s from channel; the last listener's UNLISTEN is not
// waited for, and with nobody listening at all the connection is closed.
func (h *notifyHub) unsubscribe(channel string, s *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropLocked(channel, s)
	if _, still := h.subs[channel]; still || h.sc == nil {
		return
	}
	if len(h.subs) == 0 {
		h.closeLocked()
		return
	}
	_ = h.sendLocked("UNLISTEN "+quoteIdent(channel), nil)
}

func (h *notifyHub) dropLocked(channel string, s *session) {
	if set := h.subs[channel]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(h.subs, channel)
		}
	}
}

// connectLocked opens the listening connection. Caller holds mu; the
// dial is bounded by server_connect_timeout.
func (h *notifyHub) connectLocked() error {
	ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
	defer cancel()
	sc, err := h.p.open(ctx)
	if err != nil {
		return fmt.Errorf("opening the notification connection: %w", err)
	}
	h.sc = sc
	go h.run(sc)
	return nil
}

func (h *notifyHub) closeLocked() {
	if h.sc != nil {
		h.sc.close()
		h.sc = nil
	}
	for _, w := range h.waiters {
		if w != nil {
			w <- errHubDown
		}
	}
	h.waiters = nil
}

// sendLocked writes one query; done (if not nil) gets its outcome.
func (h *notifyHub) sendLocked(sql string, done chan error) error {
	msg := appendMsg(nil, feQuery, []byte(sql), []byte{0})
	_ = h.sc.conn.SetWriteDeadline(time.Now().Add(h.timeout))
	_, err := h.sc.w.Write(msg)
	if err == nil {
		err = h.sc.w.Flush()
	}
	if err != nil {
		h.log.Warn("writing to the notification connection failed", "err", err)
		h.closeLocked()
		h.reconnectLocked()
		return errHubDown
	}
	h.waiters = append(h.waiters, done)
	return nil
}

// run reads the listening connection: notifications are handed to the
// sessions listening to their channel, and each query's ReadyForQuery
// answers its waiter.
func (h *notifyHub) run(sc *serverConn) {
	var firstErr error
	for {
		typ, msg, err := sc.r.next(MaxMessageSize)
		if err != nil {
			h.lost(sc, err)
			return
		}
		switch typ {
		case beNotificationResponse:
			var n pgproto3.NotificationResponse
			if n.Decode(body(msg)) != nil {
				continue
			}
			h.mu.Lock()
			targets := make([]*session, 0, len(h.subs[n.Channel]))
			for s := range h.subs[n.Channel] {
				targets = append(targets, s)
			}
			h.mu.Unlock()
			for _, s := range targets {
				s.notified(n.Channel, n.Payload, n.PID)
			}
		case beErrorResponse:
			var e pgproto3.ErrorResponse
			_ = e.Decode(body(msg))
			if firstErr == nil {
				firstErr = fmt.Errorf("the server said: %s (SQLSTATE %s)", e.Message, e.Code)
			}
		case beReadyForQuery:
			h.mu.Lock()
			if h.sc == sc && len(h.waiters) > 0 {
				w := h.waiters[0]
				h.waiters = h.waiters[1:]
				if w != nil {
					w <- firstErr
				}
			}
			h.mu.Unlock()
			firstErr = nil
		}
	}
}

// lost handles the listening connection's failure: listeners stay
// registered and the hub reconnects and LISTENs again while anyone
// listens. Notifications sent in between are lost, as they would be for a
// client whose own connection broke.
func (h *notifyHub) lost(sc *serverConn, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sc != sc {
		return // closed on purpose
	}
	h.log.Warn("the notification connection was lost", "err", err)
	h.closeLocked()
	h.reconnectLocked()
}

func (h *notifyHub) reconnectLocked() {
	if h.retry || len(h.subs) == 0 {
		return
	}
	h.retry = true
	go func() {
		for delay := 100 * time.Millisecond; ; delay = min(delay*2, 5*time.Second) {
			time.Sleep(delay)
			h.mu.Lock()
			if len(h.subs) == 0 {
				h.retry = false
				h.mu.Unlock()
				return
			}
			if err := h.connectLocked(); err != nil {
				h.log.Warn("reconnecting the notification connection", "err", err)
				h.mu.Unlock()
				continue
			}
			h.retry = false
			for ch := range h.subs {
				if h.sendLocked("LISTEN "+quoteIdent(ch), nil) != nil {
					break
				}
			}
			h.mu.Unlock()
			return
		}
	}()
}

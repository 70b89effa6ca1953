// Package proxy accepts PostgreSQL clients, authenticates them, attaches a
// server connection carrying their tenant context, and relays the protocol.
//
// # The model of a server connection
//
// Every pooled server connection has a backend (backend.go): the queue of
// requests written to it whose replies have not all arrived (the client's
// and the proxy's own: context query, DISCARD ALL, re-prepares), whether a
// COPY is running, the transaction status, whether an extended-protocol
// batch is open or being skipped after an error, and which prepared
// statements it holds as the server confirmed them. The relay records each
// request before writing it and matches each reply against the queue's
// head. A connection goes back to the pool only when its backend is clean:
// nothing owed, idle, no COPY, no unsynced batch, nothing broken. A reply
// the model does not expect, a partial read or write, or a client that
// leaves with work in flight closes the connection instead (after a cancel
// when the server is still working), counted as ServerUnclean.
//
// # Goroutines and what each owns
//
//	goroutine          owns                                              started by
//	Serve (per ln)     accepting                                         the daemon
//	session            reading the client; writing to the server (sc.w); start
//	                   the session's statement maps; sc between attach
//	                   and detach when no reader runs; in transaction
//	                   mode also reading the replies (readInline)
//	reader (readServer) reading the server (sc.r); writing to the client; session mode: attach
//	                   releasing sc at a clean ReadyForQuery             / resume; transaction
//	                                                                     mode: ensureReader
//	cancel (per request) delivering one CancelRequest, or forwarding it  a cancel connection's session
//	                   to the peer its key names (peers.go)
//	pool maintenance   closing stale idle connections, min_pool_size     newPool
//	notification hub   reading a pool's listening connection; handing    the first LISTEN
//	(per pool)         notifications to sessions (notify.go)
//	notification       writing queued notifications to one client       a notification
//	delivery           while its stream is at a message boundary
//	health (per host)  logging in to one server_host entry every          Update (healthChecker;
//	                   interval and recording up/down and role           stopped by Update, Close)
//
// In transaction mode no reader starts at attach: after each flush the
// session goroutine reads the replies itself (relayReplies inline) until
// the connection is released or owes nothing, so a request/response costs
// no goroutine start and no cross-goroutine wake-up. A reader goroutine
// takes over (ensureReader) when a reply is slower than inlineReadWait
// (the session goroutine then watches the client again, so a client that
// leaves has its query cancelled), when the server waits for COPY data,
// when the session must wait for replies (settle), and before a write
// larger than sc.w's free space (the server could block writing replies
// nobody reads). A server failure seen on a write with no reader is
// reported to the client by the session goroutine (lostUnread).
//
// Tracked settings and LISTENs (settings.go) are followed by the reader:
// it applies each request's statement effects as the replies arrive and,
// at ReadyForQuery, makes what committed the client's (the session's
// parameters and context key change under session.mu, before the
// connection is released).
//
// The client writer (clientWriter) is shared by the session goroutine
// (local answers, errors while detached) and the reader; it has its own
// lock, and the attach states keep their turns apart: the session writes
// to the client only while no reader runs or while the connection owes
// nothing.
//
// # Attach states and locks
//
// session.mu guards the attachment (att, sc, unflushed, cancelling,
// relayDone); setAttach is its only transition function (attach.go lists
// the legal moves). backend.mu guards a connection's model. Lock order:
// Server.mu, then session.mu, then backend.mu, then pool.mu, then
// healthChecker.mu (the pool asks a host's state under its lock). No lock is
// held during network I/O; observers (SHOW CLIENTS, /metrics) read atomics
// (session.phase, backend.outstanding) and take no session lock.
//
// # Limits and lifetimes
//
//   - A startup packet may be at most 10,000 bytes (PostgreSQL's
//     MAX_STARTUP_PACKET_LENGTH); a frontend message at most MaxMessageSize.
//   - Message slices returned by msgReader.next are valid until the next call.
package proxy

// Package proxy accepts PostgreSQL clients, authenticates them, attaches a
// server connection carrying their tenant context, and relays the protocol.
//
// # Limits and lifetimes
//
//   - A startup packet may be at most 10,000 bytes (PostgreSQL's
//     MAX_STARTUP_PACKET_LENGTH); a frontend message at most MaxMessageSize.
//   - Message slices returned by msgReader.next are valid until the next call.
//   - One goroutine owns each client connection (the session), and while a
//     server connection is attached, one more goroutine owns reading from that
//     server and writing to the client. The session mutex guards the hand-over.
package proxy

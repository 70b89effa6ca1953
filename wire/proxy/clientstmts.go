package proxy

import "sync"

// clientStmts are a transaction-mode client's prepared statements by the
// client's names, kept as PostgreSQL would keep them on a connection of
// the client's own: a Parse defines its name only if the server ran it, a
// Close undefines only if the server ran it, and after an error the
// messages PostgreSQL skipped up to the Sync change nothing. Like a
// backend's statements, they exist twice: the writer's view (what will be
// true once the outstanding requests have run) and what the server
// confirmed; the attached connection's model updates both (see
// backend.client).
//
// Locking: mu guards the maps. The reader takes it while holding the
// backend's mu; the session goroutine takes it alone.
type clientStmts struct {
	mu                    sync.Mutex
	view, confirmed       map[string]preparedStmt
	unnamed, unnamedConfd *unnamedStmt
}

// unnamedStmt is the client's unnamed statement: what to parse again on a
// connection whose unnamed statement is not the client's.
type unnamedStmt struct {
	key string // the Parse body after the name: text and parameter types
}

// clientEffect is what a request does to the client's statements when the
// server runs it.
type clientEffect uint8

const (
	ceffNone        clientEffect = iota
	ceffDefine                   // Parse of a named statement
	ceffUndefine                 // Close of a named statement, DEALLOCATE name
	ceffClearAll                 // DEALLOCATE ALL (the unnamed statement stays)
	ceffUnnamed                  // Parse of the unnamed statement (nil: a refused one)
	ceffDropUnnamed              // a simple Query, Close of ""
)

func newClientStmts() *clientStmts {
	return &clientStmts{view: map[string]preparedStmt{}, confirmed: map[string]preparedStmt{}}
}

// lookup returns the statement the client's name will mean for the next
// message written.
func (c *clientStmts) lookup(name string) (preparedStmt, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.view[name]
	return st, ok
}

// unnamedNow returns the client's unnamed statement for the next message
// written (nil: none).
func (c *clientStmts) unnamedNow() *unnamedStmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unnamed
}

// applyLocked changes the view (confirmed false) or the confirmed set as r
// does. Caller holds mu.
func (c *clientStmts) applyLocked(r *request, confirmed bool) {
	m, u := c.view, &c.unnamed
	if confirmed {
		m, u = c.confirmed, &c.unnamedConfd
	}
	if r.typ == feQuery {
		*u = nil // every simple Query drops the unnamed statement
	}
	switch r.ceff {
	case ceffDefine:
		m[r.cname] = r.cstmt
	case ceffUndefine:
		delete(m, r.cname)
	case ceffClearAll:
		clear(m)
	case ceffUnnamed:
		*u = r.cunnamed
	case ceffDropUnnamed:
		*u = nil
	}
}

func (c *clientStmts) apply(r *request, confirmed bool) {
	c.mu.Lock()
	c.applyLocked(r, confirmed)
	c.mu.Unlock()
}

// failed records that the server refused r itself (not skipped it): a
// failed Parse of the unnamed statement leaves none, because PostgreSQL
// drops the old one before parsing the new.
func (c *clientStmts) failed(r *request) {
	if r.ceff != ceffUnnamed {
		return
	}
	c.mu.Lock()
	c.unnamedConfd = nil
	c.mu.Unlock()
}

// rebuild makes the view the confirmed set plus what the outstanding
// requests will do, after an error made the server skip some.
func (c *clientStmts) rebuild(pending []request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.view)
	for k, v := range c.confirmed {
		c.view[k] = v
	}
	c.unnamed = c.unnamedConfd
	for i := range pending {
		if !pending[i].skipped {
			c.applyLocked(&pending[i], false)
		}
	}
}

// local applies r to both sets at once: the proxy answered it without the
// server (nothing outstanding could reorder it).
func (c *clientStmts) local(r request) {
	c.mu.Lock()
	c.applyLocked(&r, false)
	c.applyLocked(&r, true)
	c.mu.Unlock()
}

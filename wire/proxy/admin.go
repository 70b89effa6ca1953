package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// AdminDB is the virtual database of the admin console (PgBouncer's
// "pgbouncer" database).
const AdminDB = "multigres"

// Admin is what the console needs from the process that runs the proxy.
type Admin interface {
	Reload() error       // RELOAD
	Config() [][2]string // SHOW CONFIG: key, value (secrets redacted)
}

// clientInfo is published once a client has logged in, for SHOW CLIENTS.
type clientInfo struct {
	user, db, role, tenant string
	addr                   string
	since                  time.Time
}

// admin serves the console: the user must be in admin_users and is
// authenticated by PostgreSQL itself, like a bypass user, after which the
// server connection is closed and commands are answered by the proxy.
func (s *session) admin(ctx context.Context) error {
	o := s.gen.opts
	if !contains(o.AdminUsers, s.user) {
		s.srv.metrics.authFailure("admin")
		return fatalf(codeInvalidAuthorization, "multigres: user %q is not in admin_users", s.user)
	}
	authDB := o.AuthDBName
	if authDB == "" {
		authDB = "postgres"
	}
	if err := s.relayLogin(ctx, authDB); err != nil {
		return err
	}
	s.info.Store(&clientInfo{user: s.user, db: AdminDB, addr: s.conn.RemoteAddr().String(), since: time.Now()})
	s.writeClient(&pgproto3.ParameterStatus{Name: "server_version", Value: "15.0 (Multigres " + o.Version + ")"})
	s.writeClient(&pgproto3.ParameterStatus{Name: "client_encoding", Value: "UTF8"})
	s.writeClient(&pgproto3.ParameterStatus{Name: "standard_conforming_strings", Value: "on"})
	s.writeClient(&pgproto3.ParameterStatus{Name: "DateStyle", Value: "ISO, MDY"})
	s.writeClient(&pgproto3.ParameterStatus{Name: "integer_datetimes", Value: "on"})
	s.writeClient(&pgproto3.BackendKeyData{ProcessID: 0, SecretKey: []byte{0, 0, 0, 0}})
	s.writeClient(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := s.w.Flush(); err != nil {
		return err
	}
	_ = s.conn.SetDeadline(time.Time{})
	s.log.Info("admin console connected")
	for {
		typ, msg, err := s.r.next(MaxMessageSize)
		if err != nil {
			return nil
		}
		switch typ {
		case feTerminate:
			return nil
		case feQuery:
			sql, _, _ := cstring(body(msg))
			s.adminCommand(ctx, string(sql))
		case feSync:
			s.writeClient(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		default:
			s.writeClient(&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: codeFeatureNotSupported,
				Message: "multigres: the admin console accepts simple queries only"})
			if typ == feParse || typ == feBind || typ == feExecute || typ == feDescribe {
				continue // the Sync that follows gets ReadyForQuery
			}
			s.writeClient(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		}
		if err := s.w.Flush(); err != nil {
			return err
		}
	}
}

// relayLogin relays the startup and authentication exchange with PostgreSQL
// for the client's user (over the same server leg, TLS included, as the
// bypass path), and closes that connection once PostgreSQL accepts the
// password: the proxy never sees the password.
func (s *session) relayLogin(ctx context.Context, db string) error {
	sc, err := s.dialServer(ctx, s.user, db)
	if err != nil {
		return err
	}
	defer sc.conn.Close()
	start, err := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": s.user, "database": db, "application_name": "multigres admin login"}}).Encode(nil)
	if err != nil {
		return err
	}
	if _, err := sc.conn.Write(start); err != nil {
		return fatalf(codeConnectionFailure, "multigres: cannot connect to the database server to authenticate")
	}
	for {
		if err := s.w.Flush(); err != nil {
			return err
		}
		typ, msg, err := sc.r.next(maxStartupSize)
		if err != nil {
			return fatalf(codeConnectionFailure, "multigres: the database server closed the connection during authentication")
		}
		switch typ {
		case beErrorResponse:
			_, _ = s.w.Write(msg)
			_ = s.w.Flush()
			s.srv.metrics.authFailure("admin")
			return errors.New("admin login refused by the server")
		case beAuthentication:
			if len(msg) < 9 {
				return fatalf(codeProtocolViolation, "invalid authentication request from the server")
			}
			code := binary.BigEndian.Uint32(msg[5:9])
			if code == authOk {
				s.writeClient(&pgproto3.AuthenticationOk{})
				return nil
			}
			if err := s.relayAuth(sc, msg, code); err != nil {
				return err
			}
		}
	}
}

// adminCommand runs one console command and writes its result.
func (s *session) adminCommand(ctx context.Context, sql string) {
	words := strings.Fields(strings.TrimRight(strings.TrimSpace(sql), ";"))
	for i := range words {
		words[i] = strings.ToUpper(words[i])
	}
	cmd := strings.Join(words, " ")
	ok := func(tag string) {
		s.writeClient(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
		s.writeClient(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	}
	fail := func(msg string) {
		s.writeClient(&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "42601", Message: msg})
		s.writeClient(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	}
	switch {
	case cmd == "":
		s.writeClient(&pgproto3.EmptyQueryResponse{})
		s.writeClient(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	case cmd == "SHOW POOLS":
		s.table([]string{"database", "user", "pool_mode", "cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_total", "pool_size"}, s.srv.poolRows())
	case cmd == "SHOW CLIENTS":
		s.table([]string{"id", "user", "database", "role", "tenant", "addr", "connect_time", "state"}, s.srv.clientRows())
	case cmd == "SHOW SERVERS":
		s.table([]string{"database", "pid", "state", "context_role", "connect_time", "idle_seconds", "host", "server_role"}, s.srv.serverRows())
	case cmd == "SHOW HOSTS":
		s.table([]string{"host", "state", "role", "matches", "since", "last_error"}, s.srv.hostRows())
	case cmd == "SHOW STATS":
		s.table([]string{"name", "value"}, s.srv.statRows())
	case cmd == "SHOW VERSION":
		s.table([]string{"version"}, [][]string{{"Multigres " + s.gen.opts.Version}})
	case cmd == "SHOW CONFIG":
		var rows [][]string
		if a := s.gen.opts.Admin; a != nil {
			for _, kv := range a.Config() {
				rows = append(rows, []string{kv[0], kv[1]})
			}
		}
		s.table([]string{"key", "value"}, rows)
	case cmd == "SHOW HELP" || cmd == "HELP":
		s.table([]string{"command"}, [][]string{{"SHOW POOLS|CLIENTS|SERVERS|HOSTS|STATS|CONFIG|VERSION"}, {"RELOAD"}, {"PAUSE"}, {"RESUME"}, {"KILL_CLIENT <id>"}})
	case cmd == "RELOAD":
		a := s.gen.opts.Admin
		if a == nil {
			fail("multigres: RELOAD is not available in this process")
			return
		}
		if err := a.Reload(); err != nil {
			fail("multigres: reload failed; the running configuration stays in force: " + err.Error())
			return
		}
		ok("RELOAD")
	case cmd == "PAUSE":
		s.srv.Pause(ctx)
		ok("PAUSE")
	case cmd == "RESUME":
		s.srv.Resume()
		ok("RESUME")
	case len(words) == 2 && words[0] == "KILL_CLIENT":
		id, err := strconv.ParseUint(words[1], 10, 64)
		if err != nil || !s.srv.KillClient(id) {
			fail(fmt.Sprintf("multigres: no client with id %q", words[1]))
			return
		}
		ok("KILL_CLIENT")
	default:
		fail(fmt.Sprintf("multigres: unknown admin command %q; try SHOW HELP", strings.TrimSpace(sql)))
	}
}

// table writes a text result set.
func (s *session) table(cols []string, rows [][]string) {
	fields := make([]pgproto3.FieldDescription, len(cols))
	for i, c := range cols {
		fields[i] = pgproto3.FieldDescription{Name: []byte(c), DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1}
	}
	s.writeClient(&pgproto3.RowDescription{Fields: fields})
	for _, r := range rows {
		vals := make([][]byte, len(r))
		for i, v := range r {
			vals[i] = []byte(v)
		}
		s.writeClient(&pgproto3.DataRow{Values: vals})
	}
	s.writeClient(&pgproto3.CommandComplete{CommandTag: []byte("SHOW")})
	s.writeClient(&pgproto3.ReadyForQuery{TxStatus: 'I'})
}

func (s *Server) poolRows() [][]string {
	g := s.gen.Load()
	s.mu.Lock()
	dbs := make([]string, 0, len(s.pools))
	pools := map[string]*pool{}
	for db, p := range s.pools {
		dbs = append(dbs, db)
		pools[db] = p
	}
	clients := map[string]int{}
	for sess := range s.sessions {
		if info := sess.info.Load(); info != nil {
			clients[info.db]++
		}
	}
	s.mu.Unlock()
	sort.Strings(dbs)
	var rows [][]string
	for _, db := range dbs {
		total, active, idle, waiting := pools[db].stats()
		rows = append(rows, []string{db, g.opts.ServerUser, g.opts.PoolMode, strconv.Itoa(clients[db]), strconv.Itoa(waiting),
			strconv.Itoa(active), strconv.Itoa(idle), strconv.Itoa(total), strconv.Itoa(g.opts.DefaultPoolSize)})
	}
	return rows
}

func (s *Server) clientRows() [][]string {
	s.mu.Lock()
	sessions := s.sessionsLocked()
	s.mu.Unlock()
	sort.Slice(sessions, func(i, j int) bool { return sessions[i].id < sessions[j].id })
	var rows [][]string
	for _, sess := range sessions {
		info := sess.info.Load()
		if info == nil {
			rows = append(rows, []string{strconv.FormatUint(sess.id, 10), "", "", "", "", sess.conn.RemoteAddr().String(), "", "login"})
			continue
		}
		state := "idle"
		if sessionPhase(sess.phase.Load()) == phaseActive {
			state = "active"
		}
		rows = append(rows, []string{strconv.FormatUint(sess.id, 10), info.user, info.db, info.role, info.tenant, info.addr,
			info.since.UTC().Format(time.RFC3339), state})
	}
	return rows
}

func (s *Server) serverRows() [][]string {
	s.mu.Lock()
	pools := make([]*pool, 0, len(s.pools))
	for _, p := range s.pools {
		pools = append(pools, p)
	}
	s.mu.Unlock()
	var rows [][]string
	for _, p := range pools {
		p.mu.Lock()
		for _, sc := range p.idle {
			role := ""
			if sc.ctxKey != "" {
				role, _, _ = strings.Cut(sc.ctxKey, "\x00")
			}
			rows = append(rows, []string{p.db, strconv.FormatUint(uint64(sc.pid), 10), "idle", role,
				sc.created.UTC().Format(time.RFC3339), strconv.Itoa(int(time.Since(sc.lastUsed).Seconds())),
				sc.host.String(), roleName(sc.role)})
		}
		if n := p.active; n > 0 {
			rows = append(rows, []string{p.db, "", fmt.Sprintf("active (%d)", n), "", "", "", "", ""})
		}
		p.mu.Unlock()
	}
	return rows
}

// hostRows is SHOW HOSTS: each server_host entry as the health checker
// last saw it.
func (s *Server) hostRows() [][]string {
	var rows [][]string
	for _, h := range s.Hosts() {
		state, since := "unknown", ""
		switch {
		case h.Checked && h.Up:
			state = "up"
		case h.Checked:
			state = "down"
		}
		if !h.Since.IsZero() {
			since = h.Since.UTC().Format(time.RFC3339)
		}
		rows = append(rows, []string{h.Host, state, h.Role, strconv.FormatBool(h.Matches), since, h.LastErr})
	}
	return rows
}

func (s *Server) statRows() [][]string {
	c := s.Counters()
	rows := [][]string{
		{"clients_total", strconv.FormatUint(c.ClientsTotal, 10)},
		{"queries_total", strconv.FormatUint(c.Queries, 10)},
		{"transactions_total", strconv.FormatUint(c.Transactions, 10)},
		{"bytes_in", strconv.FormatUint(c.BytesIn, 10)},
		{"bytes_out", strconv.FormatUint(c.BytesOut, 10)},
		{"server_errors_total", strconv.FormatUint(c.ServerErrors, 10)},
		{"pool_waits_total", strconv.FormatUint(c.WaitCount, 10)},
		{"pool_wait_seconds_total", strconv.FormatFloat(c.WaitSum, 'f', 6, 64)},
		{"tenant_limit_waits_total", strconv.FormatUint(c.TenantWaits, 10)},
		{"tenant_limit_rejections_total", strconv.FormatUint(c.TenantLimited, 10)},
	}
	add := func(prefix string, m map[string]uint64) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			rows = append(rows, []string{prefix + k, strconv.FormatUint(m[k], 10)})
		}
	}
	add("auth_failures.", c.AuthFailures)
	add("refused.", c.Refusals)
	return rows
}

// Pause stops handing out server connections and waits until none is in
// use (or ctx ends). Clients keep their connections; their next transaction
// waits until Resume.
func (s *Server) Pause(ctx context.Context) {
	s.mu.Lock()
	if s.resume == nil {
		s.resume = make(chan struct{})
	}
	s.mu.Unlock()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for s.Stats().ServersActive > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Resume ends a Pause.
func (s *Server) Resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.resume != nil {
		close(s.resume)
		s.resume = nil
	}
}

// waitResume blocks while the server is paused.
func (s *Server) waitResume(ctx context.Context) error {
	s.mu.Lock()
	ch := s.resume
	s.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// KillClient closes the client with the given id (SHOW CLIENTS).
func (s *Server) KillClient(id uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sess := range s.sessions {
		if sess.id == id {
			sess.log.Info("client killed from the admin console")
			sess.conn.Close()
			return true
		}
	}
	return false
}

// ConnGroup counts connections that share a database, role and state.
type ConnGroup struct {
	Database, Role, State string
	N                     int
}

// Connections counts clients by database, role and state (login, idle,
// waiting, active) and pooled server connections by database, role of the
// context they carry, and state (active, idle). Tenant values are left out
// so that the number of groups stays bounded by configuration.
func (s *Server) Connections() (clients, servers []ConnGroup) {
	type key struct{ db, role, state string }
	cl := map[key]int{}
	sv := map[key]int{}
	s.mu.Lock()
	sessions := s.sessionsLocked()
	pools := make([]*pool, 0, len(s.pools))
	for _, p := range s.pools {
		pools = append(pools, p)
	}
	s.mu.Unlock()
	for _, sess := range sessions {
		info := sess.info.Load()
		if info == nil {
			cl[key{state: "login"}]++
			continue
		}
		role := info.role
		if role == "" {
			role = info.user // bypass and admin users: bounded by configuration
		}
		state := "idle"
		switch {
		case sess.waiting.Load():
			state = "waiting"
		case sessionPhase(sess.phase.Load()) == phaseActive:
			state = "active"
			sv[key{info.db, role, "active"}]++
		}
		cl[key{info.db, role, state}]++
	}
	for _, p := range pools {
		p.mu.Lock()
		for _, sc := range p.idle {
			role, _, _ := strings.Cut(sc.ctxKey, "\x00")
			sv[key{p.db, role, "idle"}]++
		}
		p.mu.Unlock()
	}
	flatten := func(m map[key]int) []ConnGroup {
		out := make([]ConnGroup, 0, len(m))
		for k, n := range m {
			out = append(out, ConnGroup{Database: k.db, Role: k.role, State: k.state, N: n})
		}
		sort.Slice(out, func(i, j int) bool {
			a, b := out[i], out[j]
			if a.Database != b.Database {
				return a.Database < b.Database
			}
			if a.Role != b.Role {
				return a.Role < b.Role
			}
			return a.State < b.State
		})
		return out
	}
	return flatten(cl), flatten(sv)
}

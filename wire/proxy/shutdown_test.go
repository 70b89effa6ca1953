package proxy_test

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/multigres/proxy/internal/demo"
)

// TestShutdownTellsClients: clients still connected when shutdown_timeout
// runs out get a FATAL 57P01 before the connection closes, not a bare EOF.
func TestShutdownTellsClients(t *testing.T) {
	env := sample(t)
	srv, addr := startProxy(t, options(env))
	idle := rawLoginParams(t, addr, "app_user.acme", nil)
	inTx := rawLoginParams(t, addr, "app_user.globex", nil)
	if got, err := inTx.roundTrip(&pgproto3.Query{String: "BEGIN"}); err != nil || !sameReply(got, []string{"CommandComplete BEGIN", "ReadyForQuery T"}) {
		t.Fatalf("BEGIN: %q %v", got, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); err == nil {
		t.Fatal("Shutdown returned nil with clients connected past its deadline")
	}
	for name, c := range map[string]*rawClient{"idle": idle, "in a transaction": inTx} {
		msg, err := c.fe.Receive()
		if err != nil {
			t.Fatalf("%s client: no message before the close: %v", name, err)
		}
		e, ok := msg.(*pgproto3.ErrorResponse)
		if !ok || e.Severity != "FATAL" || e.Code != "57P01" || !strings.Contains(e.Message, "shutting down") {
			t.Fatalf("%s client: got %s, want FATAL 57P01 shutting down", name, describeMsg(msg))
		}
	}
}

// TestMaxClientConnAfterSSLRequest: a client over max_client_conn that
// starts with an SSLRequest (psql's sslmode=prefer) reads the reason, as
// with PostgreSQL's max_connections, instead of a failed SSL exchange.
func TestMaxClientConnAfterSSLRequest(t *testing.T) {
	env := sample(t)
	o := options(env)
	o.MaxClientConn = 1
	_, addr := startProxy(t, o)
	_ = rawLoginParams(t, addr, "app_user.acme", nil)
	host, port, _ := strings.Cut(addr, ":")
	for _, mode := range []string{"prefer", "disable"} {
		cfg, err := pgconn.ParseConfig("host=" + host + " port=" + port + " user=app_user.acme password=" + demo.TenantPassword +
			" dbname=" + demo.DB + " sslmode=" + mode)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.TLSConfig != nil {
			cfg.TLSConfig = &tls.Config{InsecureSkipVerify: true}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = pgconn.ConnectConfig(ctx, cfg)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "53300") || !strings.Contains(err.Error(), "max_client_conn") {
			t.Fatalf("sslmode=%s over max_client_conn: got %v, want 53300 naming max_client_conn", mode, err)
		}
	}
}

package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Limits of the HTTP server. Scrapes and probes are small requests from a
// few known clients; anything slower or larger is not one of them.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 16 << 10
	// closeGrace bounds how long Close lets a scrape in progress finish.
	closeGrace = 5 * time.Second
)

// Server serves a handler over HTTP on one listener. Build it with Listen
// or Serve and stop it with Close.
type Server struct {
	hs   *http.Server
	ln   net.Listener
	log  *slog.Logger
	done chan struct{} // closed when the serving goroutine returns

	closeOnce sync.Once
}

// Listen opens a TCP listener on addr (host:port; port 0 picks one) and
// serves h on it.
func Listen(addr string, h http.Handler, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics_addr %s: %w", addr, err)
	}
	return Serve(ln, h, log), nil
}

// Serve serves h on ln in a goroutine of its own until Close. A nil log
// discards messages.
func Serve(ln net.Listener, h http.Handler, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{ln: ln, log: log, done: make(chan struct{}), hs: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}}
	go func() {
		defer close(s.done)
		if err := s.hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("the metrics server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	log.Info("serving metrics and health checks", "addr", ln.Addr().String())
	return s
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops accepting, lets requests in progress finish for a few
// seconds, closes what remains and waits for the serving goroutine. It is
// safe to call more than once.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
		defer cancel()
		if err = s.hs.Shutdown(ctx); err != nil {
			err = errors.Join(err, s.hs.Close())
		}
		<-s.done
	})
	return err
}

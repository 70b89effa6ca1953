package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/multigres/proxy/daemon/config"
	"github.com/multigres/proxy/wire/proxy"
)

// readOnlyPort serves read_only_listen_port: a second proxy.Server with the
// same options as the main one except target_session_attrs, so its server
// connections go to standbys. It shares no pool, session or cancel key
// with the main server; a cancel request must reach the port whose
// session it names.
type readOnlyPort struct {
	srv     *proxy.Server
	lns     []listener
	serving sync.WaitGroup
	log     *slog.Logger
}

// readOnlyOptions derives the read-only server's options from the main ones.
func readOnlyOptions(cfg *config.Config, opts proxy.Options) proxy.Options {
	opts.TargetSessionAttrs = cfg.ReadOnlyTargetSessionAttrs
	return opts
}

// startReadOnly opens and serves read_only_listen_port on the listen_addr
// addresses (and unix_socket_dir), or returns nil when the port is 0.
// Under socket activation the port is not opened: systemd owns the
// sockets then.
func startReadOnly(cfg *config.Config, opts proxy.Options, activated bool, log *slog.Logger) (*readOnlyPort, error) {
	if cfg.ReadOnlyListenPort == 0 {
		return nil, nil
	}
	if activated {
		log.Warn("read_only_listen_port is ignored under socket activation")
		return nil, nil
	}
	log = log.With("listener", "read-only")
	lc := *cfg
	lc.ListenPort = cfg.ReadOnlyListenPort
	lns, err := listen(&lc)
	if err != nil {
		return nil, fmt.Errorf("read_only_listen_port: %w", err)
	}
	srv, err := proxy.New(readOnlyOptions(cfg, opts), log)
	if err != nil {
		closeListeners(lns)
		return nil, fmt.Errorf("starting the read-only proxy: %w", err)
	}
	r := &readOnlyPort{srv: srv, lns: lns, log: log}
	addrs := make([]string, len(lns))
	for i, l := range lns {
		addrs[i] = l.String()
		r.serving.Go(func() {
			if err := srv.Serve(l); err != nil {
				log.Error("the read-only listener failed", "listener", l.String(), "err", err)
			}
		})
	}
	log.Info("serving the read-only port", "listen", addrs, "target_session_attrs", srv.TargetSessionAttrs())
	return r, nil
}

// unixPaths are the Unix sockets it created, for the privilege drop.
func (r *readOnlyPort) unixPaths() []string {
	if r == nil {
		return nil
	}
	var out []string
	for _, l := range r.lns {
		if l.unixPath != "" {
			out = append(out, l.unixPath)
		}
	}
	return out
}

// update applies a reloaded configuration.
func (r *readOnlyPort) update(cfg *config.Config, opts proxy.Options) error {
	if r == nil {
		return nil
	}
	if err := r.srv.Update(readOnlyOptions(cfg, opts)); err != nil {
		return fmt.Errorf("the read-only proxy rejected the configuration: %w", err)
	}
	return nil
}

// stop drains the read-only port within ctx (or at once when immediate),
// then waits for its listeners' goroutines.
func (r *readOnlyPort) stop(ctx context.Context, immediate bool) {
	if r == nil {
		return
	}
	if immediate {
		r.srv.Close()
	} else if err := r.srv.Shutdown(ctx); err != nil {
		r.log.Info("closed the read-only port's remaining client connections", "err", err)
	}
	r.serving.Wait()
}

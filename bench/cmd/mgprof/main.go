// Command mgprof runs the Multigres daemon with Go's profiling endpoints on a
// separate address; it exists for bench/run.sh and is never shipped.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"

	"github.com/multigres/proxy/daemon"
)

func main() {
	path := flag.String("config", "", "path to multigres.conf (required)")
	addr := flag.String("pprof", "127.0.0.1:6060", "address for /debug/pprof/")
	flag.Parse()
	if err := run(*path, *addr); err != nil {
		fmt.Fprintf(os.Stderr, "mgprof: %v\n", err)
		os.Exit(1)
	}
}

func run(path, addr string) error {
	if path == "" {
		return errors.New("-config is required")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening for pprof: %w", err)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()
	return daemon.Run(context.Background(), path, os.Stderr)
}

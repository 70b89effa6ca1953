package daemon

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync/atomic"

	"github.com/multigres/proxy/daemon/config"
)

// logOutput is the process's log sink. Its level and format change on
// reload; loggers derived from it (With, WithGroup), including those the
// proxy keeps per pool and per client, follow the change.
type logOutput struct {
	w       io.Writer
	journal bool // under journald: no timestamps, the journal adds its own
	level   slog.LevelVar
	base    atomic.Pointer[logBase]
}

// logBase is one format's root handler; a new one is made on each change
// of format so derived handlers can tell that theirs is stale.
type logBase struct {
	format config.LogFormat
	h      slog.Handler
}

// newLogOutput writes logs to w. journal drops timestamps, for journald
// (JOURNAL_STREAM set), which records its own.
func newLogOutput(w io.Writer, format config.LogFormat, level slog.Level, journal bool) *logOutput {
	o := &logOutput{w: w, journal: journal}
	o.set(format, level)
	return o
}

// set switches format and level for every logger made from o.
func (o *logOutput) set(format config.LogFormat, level slog.Level) {
	o.level.Set(level)
	if b := o.base.Load(); b != nil && b.format == format {
		return
	}
	opts := &slog.HandlerOptions{Level: &o.level}
	if o.journal {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	var h slog.Handler
	if format == config.LogJSON {
		h = slog.NewJSONHandler(o.w, opts)
	} else {
		h = slog.NewTextHandler(o.w, opts)
	}
	o.base.Store(&logBase{format: format, h: h})
}

// logger returns a logger writing through o.
func (o *logOutput) logger() *slog.Logger { return slog.New(&switchHandler{out: o}) }

// switchHandler replays its WithAttrs/WithGroup calls on the current root
// handler, rebuilding only after a format change.
type switchHandler struct {
	out   *logOutput
	ops   []func(slog.Handler) slog.Handler
	built atomic.Pointer[builtHandler]
}

type builtHandler struct {
	base *logBase
	h    slog.Handler
}

func (s *switchHandler) current() slog.Handler {
	base := s.out.base.Load()
	if b := s.built.Load(); b != nil && b.base == base {
		return b.h
	}
	h := base.h
	for _, op := range s.ops {
		h = op(h)
	}
	s.built.Store(&builtHandler{base: base, h: h})
	return h
}

func (s *switchHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= s.out.level.Level()
}

func (s *switchHandler) Handle(ctx context.Context, r slog.Record) error {
	return s.current().Handle(ctx, r)
}

func (s *switchHandler) with(op func(slog.Handler) slog.Handler) *switchHandler {
	return &switchHandler{out: s.out, ops: append(slices.Clip(s.ops), op)}
}

func (s *switchHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return s
	}
	return s.with(func(h slog.Handler) slog.Handler { return h.WithAttrs(as) })
}

func (s *switchHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return s
	}
	return s.with(func(h slog.Handler) slog.Handler { return h.WithGroup(name) })
}

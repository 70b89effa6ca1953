package daemon

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// reloadDebounce gathers the burst of events one save makes (write, chmod,
// rename; Kubernetes' ..data swap) into one reload.
const reloadDebounce = 200 * time.Millisecond

// fileWatcher reports changes in the directories holding the configuration
// file and the files it names. It watches directories, not files: editors
// save by renaming a new file over the old one and Kubernetes swaps a
// ..data symlink, and a watch on the old file would see neither. Events for
// other files in those directories are ignored, so a log file or an editor's
// swap file next to multigres.conf does not wake the daemon on every write;
// for the rest, the daemon compares contents to decide whether anything
// changed.
type fileWatcher struct {
	w       *fsnotify.Watcher
	log     *slog.Logger
	dirs    map[string]bool
	changed chan struct{}

	mu    sync.Mutex
	names map[string]bool // base names of the watched files and their symlink targets; nil = every name
}

func newFileWatcher(log *slog.Logger) (*fileWatcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	return &fileWatcher{w: w, log: log, dirs: map[string]bool{}, names: map[string]bool{}, changed: make(chan struct{}, 1)}, nil
}

// relevant reports whether an event on path can change a watched file:
// one of their names (the target of a rename is named in the event), a
// watched directory itself, or Kubernetes' ..data symlink and its
// timestamped targets.
func (fw *fileWatcher) relevant(path string) bool {
	base := filepath.Base(path)
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return fw.names == nil || fw.names[base] || fw.dirs[path] || strings.HasPrefix(base, "..")
}

// watchEverything makes every event in the watched directories relevant
// until the next watch: after a failed reload the files that matter are not
// known.
func (fw *fileWatcher) watchEverything() {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	fw.names = nil
}

// watch makes the watched directories those of paths, and of their
// targets when they are symlinks. It is called by one goroutine at a time.
func (fw *fileWatcher) watch(paths ...string) {
	want := map[string]bool{}
	names := map[string]bool{}
	for _, p := range paths {
		if p == "" {
			continue
		}
		want[filepath.Dir(p)] = true
		names[filepath.Base(p)] = true
		if real, err := filepath.EvalSymlinks(p); err == nil {
			want[filepath.Dir(real)] = true
			names[filepath.Base(real)] = true
		}
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	fw.names = names
	for dir := range fw.dirs {
		if !want[dir] {
			_ = fw.w.Remove(dir)
			delete(fw.dirs, dir)
		}
	}
	for dir := range want {
		if fw.dirs[dir] {
			continue
		}
		if err := fw.w.Add(dir); err != nil {
			fw.log.Warn("cannot watch a configuration directory; changes there need SIGHUP", "dir", dir, "err", err)
			continue
		}
		fw.dirs[dir] = true
	}
}

// run turns bursts of events into single sends on changed until ctx ends,
// then closes the watcher.
func (fw *fileWatcher) run(ctx context.Context) {
	defer fw.w.Close()
	timer := time.NewTimer(reloadDebounce)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case ev, ok := <-fw.w.Events:
			if !ok {
				return
			}
			if !fw.relevant(ev.Name) {
				continue
			}
			fw.log.Debug("configuration directory changed", "event", ev.String())
			timer.Reset(reloadDebounce)
		case err, ok := <-fw.w.Errors:
			if !ok {
				return
			}
			// An overflow loses events: look at the files in any case.
			fw.log.Warn("watching the configuration files", "err", err)
			timer.Reset(reloadDebounce)
		case <-timer.C:
			select {
			case fw.changed <- struct{}{}:
			default: // a check is already pending
			}
		}
	}
}

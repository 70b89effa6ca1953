package daemon

import (
	"log/slog"
	"os"
	"strconv"
	"strings"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// maxStatus bounds a STATUS= line; systemctl status shows one line.
const maxStatus = 400

// notifier sends sd_notify messages to the service manager. Without
// NOTIFY_SOCKET every method does nothing.
type notifier struct {
	enabled bool
	log     *slog.Logger
}

func newNotifier(log *slog.Logger) *notifier {
	return &notifier{enabled: os.Getenv("NOTIFY_SOCKET") != "", log: log}
}

func (n *notifier) send(fields ...string) {
	if !n.enabled {
		return
	}
	if _, err := sd.SdNotify(false, strings.Join(fields, "\n")); err != nil {
		n.log.Warn("sd_notify failed", "err", err, "message", fields[0])
	}
}

func (n *notifier) ready(status string) { n.send(sd.SdNotifyReady, statusField(status)) }

func (n *notifier) status(status string) { n.send(statusField(status)) }

func (n *notifier) stopping(status string) { n.send(sd.SdNotifyStopping, statusField(status)) }

func (n *notifier) watchdog() { n.send(sd.SdNotifyWatchdog) }

// reloading starts a reload. Type=notify-reload services must send the
// monotonic time with it so that systemd can tell this reload from an
// earlier one.
func (n *notifier) reloading() {
	n.send(sd.SdNotifyReloading, "MONOTONIC_USEC="+strconv.FormatInt(monotonicUsec(), 10), statusField("reloading"))
}

// statusField makes a one-line STATUS= field.
func statusField(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxStatus {
		s = strings.ToValidUTF8(s[:maxStatus-3], "") + "..."
	}
	return "STATUS=" + s
}

// monotonicUsec reads CLOCK_MONOTONIC, the clock systemd compares
// MONOTONIC_USEC against (Go's monotonic clock readings are not exposed).
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1000
}

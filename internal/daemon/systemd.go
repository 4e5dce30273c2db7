package daemon

import (
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
)

// Systemd is the Notifier for a process started by systemd (Type=notify).
// Outside systemd ($NOTIFY_SOCKET unset) every call is a no-op.
type Systemd struct{}

// Notify sends one state string over $NOTIFY_SOCKET.
func (Systemd) Notify(state string) error {
	_, err := sd.SdNotify(false, state)
	return err
}

// WatchdogInterval is WatchdogSec when systemd enabled the watchdog for
// this process, else 0.
func (Systemd) WatchdogInterval() time.Duration {
	d, err := sd.SdWatchdogEnabled(false)
	if err != nil {
		return 0
	}
	return d
}

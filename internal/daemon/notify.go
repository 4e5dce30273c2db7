package daemon

import (
	"context"

	"go.uber.org/zap"

	"github.com/backupd/backupd/internal/notify"
	"github.com/backupd/backupd/internal/policy"
)

// startNotify starts the notifier of the notify: section (doing nothing
// until a reload adds one when it is absent). Its pending deliveries live
// in a bbolt file next to the journal (docs/journal.md, "The notify
// store"), created only when notify is configured: at the start, or at
// the first delivery after a reload added the section. A store that cannot be opened is logged and replaced by one in
// memory: notifications are never a reason not to back up. The returned
// stop must run after the engine has stopped, so its last events are
// saved.
func (d *Daemon) startNotify(cfg *policy.Config, log *zap.Logger) func() {
	log = log.Named("notify")
	store := notify.NewMemoryStore()
	switch {
	case cfg.State.Path != "" && cfg.Notify == nil:
		// No notify: section: no file until a reload adds one and
		// something is to be delivered.
		store = notify.LazyStore(notify.StorePath(cfg.State.Path), func(w string) { log.Warn(w) })
	case cfg.State.Path != "":
		s, warning, err := notify.OpenStore(notify.StorePath(cfg.State.Path))
		switch {
		case err != nil:
			log.Error("cannot open the notify store; pending notifications are kept in memory only", zap.Error(err))
		default:
			store = s
			if warning != "" {
				log.Warn(warning)
			}
		}
	}
	d.notifier = notify.New(notify.Config{
		Clock: d.clk, Store: store, Logger: log, Registerer: d.metrics.Registry(), Transport: d.opts.NotifyTransport,
	}, cfg.Notify)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.notifier.Run(ctx) }()
	return func() {
		cancel()
		<-done
		if err := store.Close(); err != nil {
			log.Error("closing the notify store", zap.Error(err))
		}
	}
}

// Package logging builds backupd's zap logger from the log: section of the
// config and turns run events into log lines. Every line about a run carries
// the same fields (policy, project, cluster, run and the Atlas ids that are
// known), so one grep finds a run's whole story; only those run fields are
// ever logged from a run, so nothing else (credentials included) can leak
// through this path.
package logging

import (
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/backupd/backupd/internal/run"
)

// Levels and formats accepted by New, as written in the config.
var (
	levels  = map[string]zapcore.Level{"debug": zapcore.DebugLevel, "info": zapcore.InfoLevel, "warn": zapcore.WarnLevel, "error": zapcore.ErrorLevel}
	formats = map[string]bool{"json": true, "console": true}
)

// New returns a logger writing to w at the given level ("debug", "info",
// "warn", "error") in the given format ("json" for machines, "console" for
// humans), with ISO8601 timestamps. An empty level means info and an empty
// format json. opts are passed to zap (tests pass zap.WithClock).
func New(level, format string, w zapcore.WriteSyncer, opts ...zap.Option) (*zap.Logger, error) {
	if level == "" {
		level = "info"
	}
	if format == "" {
		format = "json"
	}
	lvl, ok := levels[level]
	if !ok {
		return nil, fmt.Errorf("log.level %q: want one of debug, info, warn, error", level)
	}
	if !formats[format] {
		return nil, fmt.Errorf("log.format %q: want json or console", format)
	}
	var enc zapcore.Encoder
	if format == "json" {
		cfg := zap.NewProductionEncoderConfig()
		cfg.TimeKey = "time"
		cfg.EncodeTime = zapcore.ISO8601TimeEncoder
		cfg.EncodeDuration = zapcore.StringDurationEncoder
		enc = zapcore.NewJSONEncoder(cfg)
	} else {
		cfg := zap.NewDevelopmentEncoderConfig()
		cfg.EncodeTime = zapcore.ISO8601TimeEncoder
		cfg.EncodeDuration = zapcore.StringDurationEncoder
		enc = zapcore.NewConsoleEncoder(cfg)
	}
	lw := zapcore.Lock(w)
	core := zapcore.NewCore(enc, lw, lvl)
	base := []zap.Option{zap.ErrorOutput(lw), zap.AddCaller()}
	return zap.New(core, append(base, opts...)...), nil
}

// RunFields are the standard fields of every log line about a run: policy,
// action, project, cluster, run, stage, and — only when set — manual,
// catchUp, reason, detail and the Atlas ids. The engine adds them to its own
// lines about a run.
func RunFields(r run.Run) []zap.Field {
	fs := []zap.Field{
		zap.String("policy", r.Policy),
		zap.String("action", string(r.Action)),
		zap.String("project", r.Target.ProjectID),
		zap.String("cluster", r.Target.Cluster),
		zap.String("run", string(r.ID)),
		zap.String("stage", string(r.Stage)),
	}
	if r.Manual {
		fs = append(fs, zap.Bool("manual", true))
	}
	if r.CatchUp {
		fs = append(fs, zap.Bool("catchUp", true))
	}
	for _, f := range []struct{ key, val string }{
		{"reason", r.Reason},
		{"detail", r.Detail},
		{"snapshotID", r.SnapshotID},
		{"exportBucketID", r.ExportBucketID},
		{"exportJobID", r.ExportJobID},
		{"flexSnapshotID", r.FlexSnapshotID},
		{"restoreJobID", r.RestoreJobID},
	} {
		if f.val != "" {
			fs = append(fs, zap.String(f.key, f.val))
		}
	}
	return fs
}

// RunObserver logs one line per run event: "run stage changed" for a
// transition (Warn when the run failed, Info otherwise) with RunFields plus
// from and stageDuration when the run left a stage, and "run progress" at
// Debug with RunFields plus note for progress notes.
func RunObserver(l *zap.Logger) run.Observer {
	return run.ObserverFunc(func(e run.Event) {
		fs := RunFields(e.Run)
		if e.Note != "" {
			l.Debug("run progress", append(fs, zap.String("note", e.Note))...)
			return
		}
		if e.From != "" {
			fs = append(fs, zap.String("from", string(e.From)), zap.Duration("stageDuration", e.StageDuration))
		}
		if e.Run.Stage == run.StageFailed {
			l.Warn("run stage changed", fs...)
			return
		}
		l.Info("run stage changed", fs...)
	})
}

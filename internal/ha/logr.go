package ha

import (
	"github.com/go-logr/logr"
	"go.uber.org/zap"
)

// newLogr routes client-go's structured logs (klog, through the context)
// into backupd's logger instead of klog's default of stderr. client-go's
// informational messages go to debug; its errors are failed lease calls the
// elector retries, so they are warnings.
func newLogr(l *zap.Logger) logr.Logger {
	return logr.New(&zapSink{l: l.WithOptions(zap.AddCallerSkip(1))})
}

type zapSink struct {
	l *zap.Logger
}

func (s *zapSink) Init(logr.RuntimeInfo) {}

// Enabled passes only V(0) messages: higher verbosities log every renewal.
func (s *zapSink) Enabled(level int) bool { return level == 0 }

func (s *zapSink) Info(_ int, msg string, kv ...any) {
	s.l.Debug(msg, fields(kv)...)
}

func (s *zapSink) Error(err error, msg string, kv ...any) {
	s.l.Warn(msg, append(fields(kv), zap.Error(err))...)
}

func (s *zapSink) WithValues(kv ...any) logr.LogSink {
	return &zapSink{l: s.l.With(fields(kv)...)}
}

func (s *zapSink) WithName(name string) logr.LogSink {
	return &zapSink{l: s.l.Named(name)}
}

func fields(kv []any) []zap.Field {
	out := make([]zap.Field, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			k = "key"
		}
		out = append(out, zap.Any(k, kv[i+1]))
	}
	return out
}

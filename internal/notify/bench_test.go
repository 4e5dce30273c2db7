package notify

import (
	"testing"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/run"
)

// BenchmarkObserve is the cost a run event pays in the engine's path with
// two webhooks (json and slack) and a ping subscribed: three payloads
// rendered and queued. The worker is not running, so the queue stays full
// and every event also drops the three oldest: the worst case.
func BenchmarkObserve(b *testing.B) {
	cfg := notifyCfg([]policy.Webhook{
		{Name: "ops", URL: policy.NewSecret("https://example.com/a"), Format: policy.FormatJSON, Events: []string{policy.EventFailed}},
		{Name: "chat", URL: policy.NewSecret("https://example.com/b"), Format: policy.FormatSlack, Events: []string{policy.EventFailed}},
	}, []policy.Ping{{Policy: "nightly", URL: policy.NewSecret("https://example.com/c"), Fail: "/fail", Send: []string{policy.PingFail}, Method: "POST"}})
	cfg.QueueSize = policy.DefaultNotifyQueueSize
	n := New(Config{Clock: clock.NewFake(t0)}, cfg)
	e := ended(testRun("nightly", run.StageFailed))
	b.ReportAllocs()
	for b.Loop() {
		n.Observe(e)
	}
}

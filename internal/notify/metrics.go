package notify

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a delivery ends without being delivered: label values of
// backupd_notify_failed_total and backupd_notify_dropped_total.
const (
	ReasonRejected    = "rejected"     // the receiver answered 3xx or 4xx (other than 408 and 429): retrying would not help
	ReasonExhausted   = "exhausted"    // every attempt failed (no answer, a timeout, 5xx, 408, 429)
	ReasonQueueFull   = "queue_full"   // the queue was full: the oldest delivery made room
	ReasonSinkRemoved = "sink_removed" // a reload removed its webhook or ping
	ReasonEncode      = "encode_error" // the payload could not be encoded
)

// Metrics names every series of the package, for the checks of the alert
// rules and docs (deploy/deploy_test.go).
func Metrics() []string {
	return []string{"backupd_notify_delivered_total", "backupd_notify_failed_total", "backupd_notify_retries_total",
		"backupd_notify_dropped_total", "backupd_notify_queue_depth"}
}

// metrics are the notify series (docs/metrics.md, "Notifications"). The
// labels are the kind and the configured name of a sink, never its URL.
type metrics struct {
	delivered *prometheus.CounterVec
	failed    *prometheus.CounterVec
	retries   *prometheus.CounterVec
	dropped   *prometheus.CounterVec
	depth     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backupd_notify_delivered_total", Help: "Notifications the receiver accepted (2xx), by sink.",
		}, []string{"kind", "sink"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backupd_notify_failed_total", Help: "Notifications given up: rejected by the receiver or out of attempts.",
		}, []string{"kind", "sink", "reason"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backupd_notify_retries_total", Help: "Delivery attempts that failed and will be retried.",
		}, []string{"kind", "sink"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backupd_notify_dropped_total", Help: "Notifications dropped before delivery: queue full, sink removed, payload not encodable.",
		}, []string{"reason"}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "backupd_notify_queue_depth", Help: "Notifications waiting to be delivered (including those being sent).",
		}),
	}
	for _, r := range []string{ReasonQueueFull, ReasonSinkRemoved, ReasonEncode} {
		m.dropped.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.delivered, m.failed, m.retries, m.dropped, m.depth)
	}
	return m
}

// sinks makes every configured sink's series exist at 0 (so increase()
// sees the first failure) and removes those of sinks no longer configured.
func (m *metrics) sinks(now, before map[sinkKey]bool) {
	for k := range before {
		if !now[k] {
			m.delivered.DeleteLabelValues(k.kind, k.name)
			m.retries.DeleteLabelValues(k.kind, k.name)
			m.failed.DeleteLabelValues(k.kind, k.name, ReasonRejected)
			m.failed.DeleteLabelValues(k.kind, k.name, ReasonExhausted)
		}
	}
	for k := range now {
		m.delivered.WithLabelValues(k.kind, k.name)
		m.retries.WithLabelValues(k.kind, k.name)
		m.failed.WithLabelValues(k.kind, k.name, ReasonRejected)
		m.failed.WithLabelValues(k.kind, k.name, ReasonExhausted)
	}
}

package engine

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the engine's Prometheus collectors, registered on an injected
// registry (never the global one).
type Metrics struct {
	Receipts           *prometheus.CounterVec
	AuthFailures       *prometheus.CounterVec
	AuthSuppressed     prometheus.Counter
	DenialsSuppressed  prometheus.Counter
	Checkpoints        prometheus.Counter
	LogSize            prometheus.Gauge
	CommitBatchOps     prometheus.Histogram
	CommitBatchSeconds prometheus.Histogram
	Unavailable        prometheus.Counter
}

// NewMetrics creates the engine's collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Receipts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_receipts_written_total", Help: "Receipts written by this process, by scroll.",
		}, []string{"scroll"}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_auth_failures_total", Help: "Refused requests, by HTTP status.",
		}, []string{"status"}),
		AuthSuppressed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "warden_auth_failure_receipts_suppressed_total", Help: "Auth failures counted but not individually receipted (rate limit).",
		}),
		DenialsSuppressed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "warden_denial_receipts_suppressed_total", Help: "Denials counted but not individually receipted (per-principal rate limit).",
		}),
		Checkpoints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "warden_checkpoints_signed_total", Help: "Checkpoints signed by this process.",
		}),
		LogSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "warden_log_size", Help: "Receipts in the log at the latest checkpoint.",
		}),
		CommitBatchOps: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "warden_store_commit_batch_operations", Help: "Operations sharing one durable commit (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		CommitBatchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "warden_store_commit_seconds", Help: "Duration of one group commit, fsync included.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
		}),
		Unavailable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "warden_writes_unavailable_total", Help: "Writes refused as unavailable (storage full).",
		}),
	}
	reg.MustRegister(m.Receipts, m.AuthFailures, m.AuthSuppressed, m.DenialsSuppressed, m.Checkpoints, m.LogSize, m.CommitBatchOps, m.CommitBatchSeconds, m.Unavailable)
	return m
}

func (e *Core) countReceipt(scroll string) {
	if e.metrics != nil {
		e.metrics.Receipts.WithLabelValues(scroll).Inc()
	}
}

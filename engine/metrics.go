package engine

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	warden "github.com/warden-sh/warden"
)

// Metrics are the engine's Prometheus collectors, registered on an injected
// registry (never the global one). Counters are maintained as the events
// happen; the core's state gauges (registered when a Core is built on
// these Metrics) read its memory at scrape time, never the store.
type Metrics struct {
	// Receipts counts every receipt a committed Update wrote, a denial's
	// included (op.go countReceipts): its sum grows exactly as the log
	// does through this process.
	Receipts           *prometheus.CounterVec
	AuthFailures       *prometheus.CounterVec
	AuthSuppressed     prometheus.Counter
	DenialsSuppressed  prometheus.Counter
	Checkpoints        prometheus.Counter
	LogSize            prometheus.Gauge
	CommitBatchOps     prometheus.Histogram
	CommitBatchSeconds prometheus.Histogram
	Unavailable        prometheus.Counter

	reg prometheus.Registerer
}

// NewMetrics creates the engine's collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reg: reg,
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

// ledgerStates are the values of warden_ledger_verification_state's label.
var ledgerStates = []string{warden.LedgerUnchecked, warden.LedgerVerifying, warden.LedgerVerified, warden.LedgerTampered, warden.LedgerAccepted}

// bind registers the gauges of e's own state on m's registry: the startup
// verification (Core.Ledger) and storage degradation. They read memory at
// scrape time, so a scrape costs no store read. A Metrics binds one Core.
func (m *Metrics) bind(e *Core) error {
	var cs []prometheus.Collector
	for _, st := range ledgerStates {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "warden_ledger_verification_state", ConstLabels: prometheus.Labels{"state": st},
			Help: "The startup verification of the log and state tables: 1 for the state it is in (unchecked, verifying, verified, tampered: writes refused, accepted: an operator accepted a failure), 0 for the others.",
		}, func() float64 { return b2f(e.Ledger().State == st) }))
	}
	cs = append(cs,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "warden_ledger_verification_checked_receipts", Help: "Receipts the startup verification has checked so far (of warden_ledger_verification_total_receipts).",
		}, func() float64 { return float64(e.Ledger().Checked) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "warden_ledger_verification_total_receipts", Help: "Receipts the startup verification has to check.",
		}, func() float64 { return float64(e.Ledger().Total) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "warden_storage_degraded", Help: "1 while writes are refused for lack of storage (from the first refusal until a probe commits again; /health is 503 meanwhile), else 0.",
		}, func() float64 { return b2f(e.storage.current() != nil) }),
	)
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return fmt.Errorf("engine metrics: %w", err)
		}
	}
	return nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

package recorder

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	warden "github.com/warden-sh/warden"
)

// Containment outcomes, the values of warden_containment_actions_total's
// outcome label.
const (
	outcomeSuccess = "success"
	outcomeFailure = "failure"
	outcomeDryRun  = "dry_run" // drill mode: recorded, not run
)

// metrics are the recorder's Prometheus collectors.
//
//   - warden_containment_actions_total is a counter maintained on write:
//     each action's outcome is counted once its results are committed.
//   - The incident and webhook gauges need a store read. A scrape never
//     makes one: they hold what RefreshMetrics last read, and servers call
//     it periodically (cli/loops.go, every --metrics-interval). Each
//     refresh costs one snapshot whose reads grow with the open incidents
//     and the pending deliveries (warden.IncidentReader's CountOpenIncidents
//     and CountPendingDeliveries), never with everything stored.
type metrics struct {
	containment *prometheus.CounterVec
	open        *prometheus.GaugeVec
	latched     *prometheus.GaugeVec
	pending     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		containment: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_containment_actions_total",
			Help: "Containment actions whose outcome was recorded, by action and outcome (success, failure, dry_run in drill mode).",
		}, []string{"action", "outcome"}),
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "warden_incidents_open",
			Help: "Open incidents (open, contained, containment_failed) by class and severity; refreshed every --metrics-interval.",
		}, []string{"class", "severity"}),
		latched: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "warden_incidents_latched",
			Help: "Open incidents whose recovery ceremony is incomplete (they cannot be acknowledged or resolved yet), by class and severity; refreshed every --metrics-interval.",
		}, []string{"class", "severity"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "warden_webhook_deliveries_pending",
			Help: "Webhook deliveries in the outbox not yet delivered or given up (the backlog); refreshed every --metrics-interval.",
		}),
	}
	for _, c := range []prometheus.Collector{m.containment, m.open, m.latched, m.pending} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("recorder metrics: %w", err)
		}
	}
	// Every series exists from the start, at zero, so a graph or a rate
	// has a baseline before the first incident.
	for _, a := range warden.ContainmentActions {
		for _, o := range []string{outcomeSuccess, outcomeFailure, outcomeDryRun} {
			m.containment.WithLabelValues(a, o)
		}
	}
	m.setIncidents(nil)
	return m, nil
}

// countContainment counts committed containment results.
func (rec *Recorder) countContainment(results []warden.ContainmentResult) {
	if rec.metrics == nil {
		return
	}
	for _, r := range results {
		outcome := outcomeSuccess
		switch {
		case !r.Success:
			outcome = outcomeFailure
		case r.DryRun:
			outcome = outcomeDryRun
		}
		rec.metrics.containment.WithLabelValues(r.Action, outcome).Inc()
	}
}

// setIncidents sets every class and severity's gauges, those without an
// open incident to zero (each series is set once: a scrape never sees a
// reset in between).
func (m *metrics) setIncidents(counts []warden.OpenIncidentCount) {
	type key struct {
		class string
		sev   warden.Severity
	}
	open, latched := map[key]int64{}, map[key]int64{}
	for _, class := range warden.IncidentClasses {
		for _, sev := range warden.Severities {
			open[key{class, sev}], latched[key{class, sev}] = 0, 0
		}
	}
	for _, c := range counts {
		open[key{c.Class, c.Severity}], latched[key{c.Class, c.Severity}] = c.Open, c.Latched
	}
	for k, n := range open {
		m.open.WithLabelValues(k.class, string(k.sev)).Set(float64(n))
		m.latched.WithLabelValues(k.class, string(k.sev)).Set(float64(latched[k]))
	}
}

// RefreshMetrics re-reads, in one snapshot, what the incident gauges show
// (open and latched incidents by class and severity, the webhook backlog)
// and sets them. Servers call it periodically; without a registry
// (Options.Registry) it does nothing.
func (rec *Recorder) RefreshMetrics(ctx context.Context) error {
	if rec.metrics == nil {
		return nil
	}
	var counts []warden.OpenIncidentCount
	var pending int64
	if err := rec.core.View(ctx, "recorder.RefreshMetrics", func(tx warden.ReadTx) (err error) {
		if counts, err = tx.CountOpenIncidents(); err != nil {
			return err
		}
		pending, err = tx.CountPendingDeliveries()
		return err
	}); err != nil {
		return err
	}
	rec.metrics.setIncidents(counts)
	rec.metrics.pending.Set(float64(pending))
	return nil
}

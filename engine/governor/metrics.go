package governor

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	warden "github.com/warden-sh/warden"
)

// metrics are the governor's Prometheus gauges. They need a store read,
// which a scrape never makes: they hold what RefreshMetrics last read, and
// servers call it periodically (cli/loops.go, every --metrics-interval).
// Each refresh is one snapshot: the active escalations counted through
// their index (CountActiveEscalations: the cost grows with the active
// ones, never with the de-escalated history), and every budget read, one
// series each.
type metrics struct {
	escalations *prometheus.GaugeVec
	remaining   *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		escalations: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "warden_escalations_active",
			Help: "Active escalations by the profile they raise to; refreshed every --metrics-interval.",
		}, []string{"profile"}),
		remaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "warden_budget_remaining",
			Help: "What a budget may still debit (allocated + credited - spent), in its currency; refreshed every --metrics-interval.",
		}, []string{"budget", "currency"}),
	}
	for _, c := range []prometheus.Collector{m.escalations, m.remaining} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("governor metrics: %w", err)
		}
	}
	for _, p := range warden.Profiles {
		m.escalations.WithLabelValues(string(p))
	}
	return m, nil
}

// RefreshMetrics re-reads, in one snapshot, what the governance gauges
// show (active escalations by profile, every budget's remainder) and sets
// them. Servers call it periodically; without a registry
// (Options.Registry) it does nothing.
func (g *Governor) RefreshMetrics(ctx context.Context) error {
	if g.metrics == nil {
		return nil
	}
	var active map[warden.Profile]int64
	var budgets []*warden.Budget
	if err := g.core.View(ctx, "governor.RefreshMetrics", func(tx warden.ReadTx) (err error) {
		if active, err = tx.CountActiveEscalations(); err != nil {
			return err
		}
		budgets, err = tx.Budgets()
		return err
	}); err != nil {
		return err
	}
	for _, p := range warden.Profiles {
		g.metrics.escalations.WithLabelValues(string(p)).Set(float64(active[p]))
	}
	// Budgets are never deleted, so every series set stays current.
	for _, b := range budgets {
		g.metrics.remaining.WithLabelValues(b.BudgetID, b.Currency).Set(float64(b.Balance()))
	}
	return nil
}

package governor

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	warden "github.com/warden-sh/warden"
)

// metrics are the governor's Prometheus gauges. They need a store read,
// which a scrape never makes: they hold what RefreshMetrics last read, and
// servers call it periodically (cli/loops.go, every --metrics-interval).
// Each refresh is one snapshot: the active escalations counted through
// their index (CountActiveEscalations: the cost grows with the active
// ones, never with the de-escalated history), and the budgets summed by
// currency. /metrics needs no credential, so no budget is named there
// (its balance is treasury_balance's, for a caller with a credential), and
// the series are bounded: MaxBudgetCurrencies currencies, the rest as
// currency "other", since any agent may create a budget in a currency of
// its choosing.
type metrics struct {
	escalations *prometheus.GaugeVec
	remaining   *prometheus.GaugeVec
	budgets     *prometheus.GaugeVec
	currencies  map[string]bool // the currency series set by the last refresh
}

// MaxBudgetCurrencies bounds the currency series of the budget gauges:
// the currencies with the most budgets, the rest summed as "other".
const MaxBudgetCurrencies = 16

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		escalations: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "warden_escalations_active",
			Help: "Active escalations by the profile they raise to; refreshed every --metrics-interval.",
		}, []string{"profile"}),
		remaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "warden_budget_remaining",
			Help: "What the budgets of a currency may still debit together (allocated + credited - spent); refreshed every --metrics-interval.",
		}, []string{"currency"}),
		budgets: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "warden_budgets",
			Help: "Budgets by currency; refreshed every --metrics-interval.",
		}, []string{"currency"}),
		currencies: map[string]bool{},
	}
	for _, c := range []prometheus.Collector{m.escalations, m.remaining, m.budgets} {
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
	g.metrics.setBudgets(budgets)
	return nil
}

// setBudgets sets the budget gauges by currency (see metrics) and removes
// the series of currencies no longer shown.
func (m *metrics) setBudgets(budgets []*warden.Budget) {
	type sum struct {
		remaining float64
		n         int
	}
	by := map[string]*sum{}
	for _, b := range budgets {
		s := by[b.Currency]
		if s == nil {
			s = &sum{}
			by[b.Currency] = s
		}
		s.remaining += float64(b.Balance())
		s.n++
	}
	names := make([]string, 0, len(by))
	for c := range by {
		names = append(names, c)
	}
	slices.SortFunc(names, func(a, b string) int { // most budgets first, then by name
		return cmp.Or(cmp.Compare(by[b].n, by[a].n), cmp.Compare(a, b))
	})
	shown := map[string]*sum{}
	for i, c := range names {
		label := c
		if i >= MaxBudgetCurrencies {
			label = "other"
		}
		if shown[label] == nil {
			shown[label] = &sum{}
		}
		shown[label].remaining += by[c].remaining
		shown[label].n += by[c].n
	}
	for c := range m.currencies {
		if shown[c] == nil {
			m.remaining.DeleteLabelValues(c)
			m.budgets.DeleteLabelValues(c)
			delete(m.currencies, c)
		}
	}
	for c, s := range shown {
		m.remaining.WithLabelValues(c).Set(s.remaining)
		m.budgets.WithLabelValues(c).Set(float64(s.n))
		m.currencies[c] = true
	}
}

package engine

import (
	"context"

	warden "github.com/warden-sh/warden"
)

// Health is the /health answer: the seed's fields plus the log size.
type Health struct {
	Status         string `json:"status"`
	OpenIncidents  int64  `json:"open_incidents"`
	TotalIncidents int64  `json:"total_incidents"`
	Receipts       uint64 `json:"receipts"`
	Dev            bool   `json:"dev,omitempty"`
	Drill          bool   `json:"drill_mode,omitempty"`
}

// Health reports whether the store answers, with incident and receipt counts.
func (e *Engine) Health(ctx context.Context) (*Health, error) {
	h := &Health{Status: "ok", Dev: e.dev, Drill: e.drill}
	err := e.store.View(ctx, func(tx warden.ReadTx) error {
		head, err := tx.Head()
		if err != nil {
			return err
		}
		h.Receipts = head.Size
		st, err := tx.IncidentStats()
		if err != nil {
			return err
		}
		h.OpenIncidents, h.TotalIncidents = st.OpenIncidents, st.TotalIncidents
		return nil
	})
	if err != nil {
		return nil, err
	}
	return h, nil
}

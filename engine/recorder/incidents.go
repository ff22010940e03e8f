package recorder

import (
	"context"

	warden "github.com/warden-sh/warden"
)

// Incident returns one incident. ENOTFOUND if unknown.
func (rec *Recorder) Incident(ctx context.Context, id string) (*warden.Incident, error) {
	if id == "" {
		return nil, warden.Errorf(warden.EINVALID, "id is required: /api/v1/incidents/get?id=INC-….")
	}
	var inc *warden.Incident
	err := rec.core.View(ctx, "recorder.Incident", func(tx warden.ReadTx) (err error) {
		inc, err = tx.Incident(id)
		return err
	})
	if warden.ErrorCode(err) == warden.ENOTFOUND {
		return nil, warden.Errorf(warden.ENOTFOUND, "Incident %q not found.", truncate(id, 64))
	}
	return inc, err
}

// Incidents streams incidents matching f (critical first, newest first).
func (rec *Recorder) Incidents(ctx context.Context, f warden.IncidentFilter, fn func(*warden.Incident) error) error {
	if f.Class != "" {
		if err := warden.ValidateClass(f.Class); err != nil {
			return err
		}
	}
	if f.State != "" {
		if _, err := warden.ParseIncidentState(string(f.State)); err != nil {
			return err
		}
	}
	if f.Severity != "" {
		if _, err := warden.ParseSeverity(string(f.Severity)); err != nil {
			return err
		}
	}
	// One snapshot, so every incident appears once and in order even while
	// severities and states change; held while the client reads, so a
	// Stream.
	return rec.core.Stream(ctx, "recorder.Incidents", func(tx warden.ReadTx) error { return tx.Incidents(f, fn) })
}

// Stats returns the incident counters.
func (rec *Recorder) Stats(ctx context.Context) (*warden.IncidentStats, error) {
	var s *warden.IncidentStats
	err := rec.core.View(ctx, "recorder.Stats", func(tx warden.ReadTx) (err error) {
		s, err = tx.IncidentStats()
		return err
	})
	return s, err
}

// PendingRecoveries lists the incomplete recovery requirements.
func (rec *Recorder) PendingRecoveries(ctx context.Context) ([]*warden.RecoveryRequirement, error) {
	out := []*warden.RecoveryRequirement{}
	err := rec.core.View(ctx, "recorder.PendingRecoveries", func(tx warden.ReadTx) error {
		return tx.Requirements(true, func(r *warden.RecoveryRequirement) error {
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// Health reports whether the store answers, with incident and receipt
// counts from the store's memory (Core.Totals: no table read per call,
// so a load balancer's probes cost nothing); Status is "degraded", with the causes, while the core is
// (Core.Degraded: writes failing for lack of storage, or a failed startup
// check; then the counts may be unreadable, and the causes say why).
func (rec *Recorder) Health(ctx context.Context) (*warden.Health, error) {
	h := &warden.Health{Status: "ok", Dev: rec.core.Dev(), Drill: rec.core.Drill()}
	if c := rec.core.Ledger(); c.State != warden.LedgerUnchecked {
		h.Ledger = &c
	}
	h.Degraded = rec.core.Degraded()
	if len(h.Degraded) > 0 {
		h.Status = "degraded"
	}
	t, err := rec.core.Totals(ctx, "recorder.Health")
	if err != nil {
		if h.Status == "ok" {
			return nil, err
		}
		return h, nil
	}
	h.Receipts, h.OpenIncidents, h.TotalIncidents = t.Receipts, t.OpenIncidents, t.TotalIncidents
	return h, nil
}

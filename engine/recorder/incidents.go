package recorder

import (
	"context"
	"encoding/json"

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
	if err := checkIncidentFilter(f); err != nil {
		return err
	}
	// One snapshot, so every incident appears once and in order even while
	// severities and states change; held while the client reads, so a
	// Stream.
	return rec.core.Stream(ctx, "recorder.Incidents", func(tx warden.ReadTx) error { return tx.Incidents(f, fn) })
}

// IncidentPage is a page of the incident listing: each item an incident's
// record as stored (warden.IncidentRecord), sent without decoding.
type IncidentPage = warden.Page[json.RawMessage, warden.IncidentCursor]

// ListIncidents returns a page of the incidents matching f (critical
// first, newest first): at most limit (1 to warden.MaxPageSize; f.Limit is
// ignored) after f.After, the cursor of the next page if there is one, and
// the number of incidents matching f, all from one snapshot. The total
// comes from the stats counters when f filters by nothing, by class alone
// or by state resolved alone; otherwise it is counted over the index the
// filter uses, a cost that grows with the incidents matching (about 5 ms
// per 50,000). EINVALID for an unknown class, state or
// severity, or a limit out of range.
func (rec *Recorder) ListIncidents(ctx context.Context, f warden.IncidentFilter, limit int) (*IncidentPage, error) {
	if err := checkIncidentFilter(f); err != nil {
		return nil, err
	}
	if err := warden.CheckPageLimit(limit); err != nil {
		return nil, err
	}
	f.Limit = limit + 1 // one more says whether a next page exists
	page := &IncidentPage{Items: make([]json.RawMessage, 0, min(limit, 128))}
	var last warden.IncidentCursor
	// A stream: listing reads use the store's stream connections, never
	// the ones authentication and writes need; the snapshot ends before
	// the answer is written.
	err := rec.core.Stream(ctx, "recorder.ListIncidents", func(tx warden.ReadTx) error {
		total, err := incidentTotal(tx, f)
		if err != nil {
			return err
		}
		page.Total = &total
		return tx.IncidentRecords(f, func(r warden.IncidentRecord) error {
			if len(page.Items) == limit {
				page.Next = &last // there is one more: the next page starts after the last
				return nil
			}
			page.Items = append(page.Items, r.JSON)
			last = r.Cursor
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}

// incidentTotal counts the incidents matching f's filters: from the stats
// counters where they hold that number, else over an index.
func incidentTotal(tx warden.ReadTx, f warden.IncidentFilter) (int64, error) {
	if f.Severity == "" && (f.Class == "" || f.State == "") && (f.State == "" || f.State == warden.StateResolved) {
		st, err := tx.IncidentStats()
		if err != nil {
			return 0, err
		}
		switch {
		case f.Class == "" && f.State == "":
			return st.TotalIncidents, nil
		case f.Class != "":
			return st.ByClass[f.Class], nil
		default:
			return st.ResolvedCount, nil
		}
	}
	return tx.CountIncidents(f)
}

// checkIncidentFilter refuses unknown classes, states and severities.
func checkIncidentFilter(f warden.IncidentFilter) error {
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
	return nil
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

// RecoveryPage is a page of the pending recovery requirements.
type RecoveryPage = warden.Page[*warden.RecoveryRequirement, warden.RequirementCursor]

// PendingRecoveries returns a page of the incomplete recovery
// requirements, oldest first: at most limit (1 to warden.MaxPageSize)
// after the cursor, the next page's cursor if there is one, and how many
// are pending (counted over an index: the cost grows with them), from one
// snapshot.
func (rec *Recorder) PendingRecoveries(ctx context.Context, after *warden.RequirementCursor, limit int) (*RecoveryPage, error) {
	if err := warden.CheckPageLimit(limit); err != nil {
		return nil, err
	}
	page := &RecoveryPage{}
	err := rec.core.View(ctx, "recorder.PendingRecoveries", func(tx warden.ReadTx) error {
		total, err := tx.CountPendingRequirements()
		if err != nil {
			return err
		}
		page.Total = &total
		page.Items, err = tx.PendingRequirements(after, limit+1)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(page.Items) > limit {
		page.Items = page.Items[:limit]
		if page.Next, err = page.Items[limit-1].CursorOf(); err != nil {
			return nil, err
		}
	}
	return page, nil
}

// Health reports whether the store answers, with incident and receipt
// counts from the store's memory (Core.Totals: no table read per call; an
// idle store refreshes them with one read per warden.TotalsMaxAge); Status is "degraded", with the causes, while the core is
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

package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
)

// incidentID is the id of the incident numbered n.
func incidentID(n int) string { return sprintf("INC-%05d", n) }

// incident returns a valid incident numbered n, created at(n).
func incident(n int, class string, sev warden.Severity, state warden.IncidentState) *warden.Incident {
	return &warden.Incident{
		ID:                 incidentID(n),
		CreatedAt:          warden.FormatTime(at(n)),
		Class:              class,
		Severity:           sev,
		State:              state,
		Source:             sprintf("sensor-%d", n%3),
		Description:        sprintf("incident %d", n),
		Evidence:           map[string]string{"n": fmt.Sprint(n)},
		ContainmentActions: []string{warden.ActionLogAlert},
		ContainmentResults: []warden.ContainmentResult{},
		Number:             uint64(n),
		ReportedBy:         "reporter",
	}
}

// fullIncident returns an incident with every field set, so that a round
// trip that drops one shows.
func fullIncident(n int) *warden.Incident {
	i := incident(n, warden.ClassIntegrityViolation, warden.SeverityCritical, warden.StateContainmentFailed)
	i.Evidence = map[string]string{"path": "/etc/passwd", "sha256": "ab12", "empty": ""}
	i.ContainmentActions = []string{warden.ActionFreezeAgent, warden.ActionLogAlert}
	i.ContainmentResults = []warden.ContainmentResult{
		{Action: warden.ActionFreezeAgent, Success: false, Error: "timeout", CompletedAt: warden.FormatTime(at(n + 1)), Attempts: 3},
		{Action: warden.ActionLogAlert, Success: true, CompletedAt: warden.FormatTime(at(n + 2)), DryRun: true, Attempts: 1},
	}
	i.ResolvedAt = warden.FormatTime(at(n + 5))
	i.AckedAt, i.AckedBy = warden.FormatTime(at(n+3)), "Ops Person"
	i.AcknowledgedAt, i.AcknowledgedBy = warden.FormatTime(at(n+4)), "operator"
	i.ResolvedBy = "admin"
	i.ContainmentPending = true
	i.EscalatedFrom = warden.SeverityHigh
	i.AutoContained = true
	i.Drill = true
	return i
}

// cloneIncident returns a deep copy of i.
func cloneIncident(i *warden.Incident) *warden.Incident {
	c := *i
	c.Evidence = maps.Clone(i.Evidence)
	c.ContainmentActions = slices.Clone(i.ContainmentActions)
	c.ContainmentResults = slices.Clone(i.ContainmentResults)
	return &c
}

// createIncidents stores is in one Update.
func createIncidents(tb testing.TB, s warden.Store, is ...*warden.Incident) {
	tb.Helper()
	MustUpdate(tb, s, func(tx warden.Tx) error {
		for _, i := range is {
			if err := tx.CreateIncident(i); err != nil {
				return fmt.Errorf("CreateIncident(%s): %w", i.ID, err)
			}
		}
		return nil
	})
}

// updateIncidents replaces is in one Update.
func updateIncidents(tb testing.TB, s warden.Store, is ...*warden.Incident) {
	tb.Helper()
	MustUpdate(tb, s, func(tx warden.Tx) error {
		for _, i := range is {
			if err := tx.UpdateIncident(i); err != nil {
				return fmt.Errorf("UpdateIncident(%s): %w", i.ID, err)
			}
		}
		return nil
	})
}

// collectIncidents returns what Incidents(f) streams.
// Every listing is read both ways, decoded (Incidents) and as stored
// (IncidentRecords), and the two must agree: the same incidents in the same
// order, each record decoding to its incident, each cursor its position.
func collectIncidents(tx warden.ReadTx, f warden.IncidentFilter) ([]*warden.Incident, error) {
	out := []*warden.Incident{}
	err := tx.Incidents(f, func(i *warden.Incident) error {
		out = append(out, i)
		return nil
	})
	if err != nil {
		return out, err
	}
	n := 0
	err = tx.IncidentRecords(f, func(r warden.IncidentRecord) error {
		if n >= len(out) {
			return fmt.Errorf("IncidentRecords(%+v) gives more than the %d incidents Incidents gives", f, len(out))
		}
		var got warden.Incident
		if err := json.Unmarshal(r.JSON, &got); err != nil {
			return fmt.Errorf("IncidentRecords(%+v): record %d is not an incident: %v", f, n, err)
		}
		want := out[n]
		if diff := cmp.Diff(want, &got); diff != "" {
			return fmt.Errorf("IncidentRecords(%+v): record %d differs from Incidents' (-Incidents +record):\n%s", f, n, diff)
		}
		// As JSON values too: a listing sends the record itself, so it
		// must hold every member today's encoding has.
		var raw, enc any
		b, err := json.Marshal(want)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(r.JSON, &raw); err != nil {
			return err
		}
		if err := json.Unmarshal(b, &enc); err != nil {
			return err
		}
		if diff := cmp.Diff(enc, raw); diff != "" {
			return fmt.Errorf("IncidentRecords(%+v): record %d is not the incident's encoding (-encoding +record):\n%s", f, n, diff)
		}
		if c := (warden.IncidentCursor{Rank: want.Severity.Rank(), Number: want.Number}); r.Cursor != c {
			return fmt.Errorf("IncidentRecords(%+v): record %d has cursor %+v, want %+v", f, n, r.Cursor, c)
		}
		n++
		return nil
	})
	if err == nil && n != len(out) {
		err = fmt.Errorf("IncidentRecords(%+v) gives %d records, Incidents %d incidents", f, n, len(out))
	}
	return out, err
}

// MustIncidents returns the committed incidents matching f.
func MustIncidents(tb testing.TB, s warden.Store, f warden.IncidentFilter) []*warden.Incident {
	tb.Helper()
	var out []*warden.Incident
	MustView(tb, s, func(tx warden.ReadTx) (err error) {
		out, err = collectIncidents(tx, f)
		return err
	})
	return out
}

func incidentIDs(is []*warden.Incident) []string {
	out := make([]string, len(is))
	for k, i := range is {
		out[k] = i.ID
	}
	return out
}

// wantIncidents lists the incidents of all matching f the slow way, in the
// listing order: severity rank descending, then number descending.
func wantIncidents(all []*warden.Incident, f warden.IncidentFilter) []*warden.Incident {
	out := []*warden.Incident{}
	for _, i := range all {
		if (f.Class != "" && i.Class != f.Class) || (f.State != "" && i.State != f.State) ||
			(f.Severity != "" && i.Severity != f.Severity) {
			continue
		}
		if c := f.After; c != nil {
			r := i.Severity.Rank()
			if r > c.Rank || (r == c.Rank && i.Number >= c.Number) {
				continue
			}
		}
		out = append(out, i)
	}
	slices.SortFunc(out, func(a, b *warden.Incident) int {
		if ra, rb := a.Severity.Rank(), b.Severity.Rank(); ra != rb {
			return rb - ra
		}
		switch {
		case a.Number > b.Number:
			return -1
		case a.Number < b.Number:
			return 1
		}
		return 0
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out
}

// recountStats computes the incident counters from the incidents
// themselves, as StatsDelta maintains them.
func recountStats(is []*warden.Incident) *warden.IncidentStats {
	c := map[string]int64{}
	for _, i := range is {
		for k, v := range warden.StatsDelta(nil, i) {
			c[k] += v
		}
	}
	return warden.StatsFromCounters(c)
}

// checkStats compares the committed IncidentStats with a recount of the
// committed incidents and, unless want is nil, with want.
func checkStats(t *testing.T, s warden.Store, when string, want *warden.IncidentStats) {
	t.Helper()
	MustView(t, s, func(tx warden.ReadTx) error {
		got, err := tx.IncidentStats()
		if err != nil {
			return err
		}
		all, err := collectIncidents(tx, warden.IncidentFilter{})
		if err != nil {
			return err
		}
		if diff := cmp.Diff(recountStats(all), got); diff != "" {
			t.Errorf("IncidentStats %s differ from a recount of the incidents (-recount +got):\n%s", when, diff)
		}
		if want != nil {
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("IncidentStats %s (-want +got):\n%s", when, diff)
			}
		}
		head, err := tx.Head()
		if err != nil {
			return err
		}
		checkTotals(t, s, when, warden.Totals{Receipts: head.Size, TotalIncidents: got.TotalIncidents, OpenIncidents: got.OpenIncidents})
		return nil
	})
}

// counterValue returns the committed value of a counter.
func counterValue(tb testing.TB, s warden.Store, name string) uint64 {
	tb.Helper()
	var v uint64
	MustView(tb, s, func(tx warden.ReadTx) (err error) {
		v, err = tx.Counter(name)
		return err
	})
	return v
}

func requirement(n int, created int, ack, reattest bool) *warden.RecoveryRequirement {
	return &warden.RecoveryRequirement{
		IncidentID: incidentID(n), RequireAck: ack, RequireReattest: reattest,
		CreatedAt: warden.FormatTime(at(created)),
	}
}

func collectRequirements(tx warden.ReadTx, pendingOnly bool) ([]*warden.RecoveryRequirement, error) {
	out := []*warden.RecoveryRequirement{}
	err := tx.Requirements(pendingOnly, func(r *warden.RecoveryRequirement) error {
		out = append(out, r)
		return nil
	})
	return out, err
}

func collectPending(tx warden.ReadTx) ([]*warden.Incident, error) {
	out := []*warden.Incident{}
	err := tx.PendingContainment(func(i *warden.Incident) error {
		out = append(out, i)
		return nil
	})
	return out, err
}

// delivery returns a pending delivery for incident inc, due at(next).
func delivery(inc, url string, next int) *warden.Delivery {
	return &warden.Delivery{
		Event: warden.EventContainment, URL: url, IncidentID: inc, Status: warden.DeliveryPending,
		Payload:       json.RawMessage(sprintf(`{"event":"containment","incident":%q}`, inc)),
		NextAttemptAt: at(next), CreatedAt: at(next),
	}
}

func enqueue(tb testing.TB, s warden.Store, ds ...*warden.Delivery) {
	tb.Helper()
	MustUpdate(tb, s, func(tx warden.Tx) error {
		for _, d := range ds {
			if err := tx.EnqueueDelivery(d); err != nil {
				return err
			}
		}
		return nil
	})
}

func deliveryIDs(ds []*warden.Delivery) []uint64 {
	out := make([]uint64, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

// incidentSnapshot is everything the incident recorder stores, as its
// readers return it.
type incidentSnapshot struct {
	Incidents    []*warden.Incident
	Stats        *warden.IncidentStats
	Counters     map[string]uint64
	Requirements []*warden.RecoveryRequirement
	Pending      []*warden.Incident
	Baseline     *warden.IntegrityBaseline
	Deliveries   []*warden.Delivery
	Due          []*warden.Delivery
}

// readIncidentSnapshot reads everything; counters names the counters to
// read and due is the time DueDeliveries is asked about.
func readIncidentSnapshot(tx warden.ReadTx, due time.Time, counters ...string) (*incidentSnapshot, error) {
	var snap incidentSnapshot
	var err error
	if snap.Incidents, err = collectIncidents(tx, warden.IncidentFilter{}); err != nil {
		return nil, err
	}
	if snap.Stats, err = tx.IncidentStats(); err != nil {
		return nil, err
	}
	snap.Counters = map[string]uint64{}
	for _, name := range counters {
		if snap.Counters[name], err = tx.Counter(name); err != nil {
			return nil, err
		}
	}
	if snap.Requirements, err = collectRequirements(tx, false); err != nil {
		return nil, err
	}
	if snap.Pending, err = collectPending(tx); err != nil {
		return nil, err
	}
	if snap.Baseline, err = tx.IntegrityBaseline(); warden.ErrorCode(err) == warden.ENOTFOUND {
		snap.Baseline = nil
	} else if err != nil {
		return nil, err
	}
	if snap.Deliveries, err = tx.Deliveries(warden.DeliveryFilter{Limit: 1000}); err != nil {
		return nil, err
	}
	if snap.Due, err = collectDue(tx, due); err != nil {
		return nil, err
	}
	return &snap, nil
}

// collectDue returns every delivery due at now, destination by destination.
func collectDue(tx warden.ReadTx, now time.Time) ([]*warden.Delivery, error) {
	dests, err := tx.DueDestinations(now, 1000)
	if err != nil {
		return nil, err
	}
	out := []*warden.Delivery{}
	for _, dest := range dests {
		due, err := tx.DueDeliveries(now, dest, 1000)
		if err != nil {
			return nil, err
		}
		out = append(out, due...)
	}
	return out, nil
}

func mustIncidentSnapshot(tb testing.TB, s warden.Store, due time.Time, counters ...string) *incidentSnapshot {
	tb.Helper()
	var snap *incidentSnapshot
	MustView(tb, s, func(tx warden.ReadTx) (err error) {
		snap, err = readIncidentSnapshot(tx, due, counters...)
		return err
	})
	return snap
}

// checkCode reports an err whose code is not code without stopping the
// test: it is safe inside an Update's fn, which a backend may run on a
// goroutine of its own (t.Fatal there would kill the backend's writer).
func checkCode(tb testing.TB, what string, err error, code string) {
	tb.Helper()
	if got := warden.ErrorCode(err); got != code {
		tb.Errorf("%s: error code = %q (%v), want %q", what, got, err, code)
	}
}

func testCounters(t *testing.T, h Harness) {
	s := h.New(t)
	if got := counterValue(t, s, "incident"); got != 0 {
		t.Errorf("Counter on an empty store = %d, want 0", got)
	}
	MustUpdate(t, s, func(tx warden.Tx) error {
		for want := uint64(1); want <= 3; want++ {
			got, err := tx.NextCounter("incident")
			if err != nil {
				return err
			}
			if got != want {
				t.Errorf("NextCounter(incident) = %d, want %d", got, want)
			}
			// The Update reads its own increments.
			if c, err := tx.Counter("incident"); err != nil || c != want {
				t.Errorf("Counter(incident) inside the Update = %d, %v; want %d", c, err, want)
			}
		}
		// Counters are independent of each other.
		if got, err := tx.NextCounter("generation:alice"); err != nil || got != 1 {
			t.Errorf("first NextCounter(generation:alice) = %d, %v; want 1", got, err)
		}
		return nil
	})
	MustUpdate(t, s, func(tx warden.Tx) error {
		if got, err := tx.NextCounter("incident"); err != nil || got != 4 {
			t.Errorf("NextCounter(incident) in a later Update = %d, %v; want 4", got, err)
		}
		return nil
	})
	for name, want := range map[string]uint64{"incident": 4, "generation:alice": 1, "unused": 0} {
		if got := counterValue(t, s, name); got != want {
			t.Errorf("Counter(%s) = %d, want %d", name, got, want)
		}
	}

	// A failed Update keeps none of its increments.
	err := s.Update(t.Context(), func(tx warden.Tx) error {
		for _, name := range []string{"incident", "generation:alice", "new"} {
			if _, err := tx.NextCounter(name); err != nil {
				return err
			}
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	for name, want := range map[string]uint64{"incident": 4, "generation:alice": 1, "new": 0} {
		if got := counterValue(t, s, name); got != want {
			t.Errorf("Counter(%s) after a failed Update = %d, want %d", name, got, want)
		}
	}

	if h.Reopen == nil {
		return
	}
	s = h.Reopen(t, s)
	if got := counterValue(t, s, "incident"); got != 4 {
		t.Errorf("Counter(incident) after reopen = %d, want 4", got)
	}
	MustUpdate(t, s, func(tx warden.Tx) error {
		if got, err := tx.NextCounter("incident"); err != nil || got != 5 {
			t.Errorf("NextCounter(incident) after reopen = %d, %v; want 5", got, err)
		}
		return nil
	})
}

func testIncidentRecords(t *testing.T, h Harness) {
	s := h.New(t)
	MustView(t, s, func(tx warden.ReadTx) error {
		_, err := tx.Incident(incidentID(1))
		wantCode(t, err, warden.ENOTFOUND)
		if err := tx.Incidents(warden.IncidentFilter{}, func(i *warden.Incident) error {
			t.Errorf("Incidents on an empty store called fn with %s", i.ID)
			return nil
		}); err != nil {
			return err
		}
		stats, err := tx.IncidentStats()
		if err != nil {
			return err
		}
		if diff := cmp.Diff(warden.StatsFromCounters(nil), stats); diff != "" {
			t.Errorf("IncidentStats on an empty store (-want +got):\n%s", diff)
		}
		return nil
	})

	full := fullIncident(7)
	plain := incident(3, warden.ClassPromptInjection, warden.SeverityLow, warden.StateOpen)
	plain.Evidence, plain.ContainmentActions, plain.ContainmentResults = nil, nil, nil
	MustUpdate(t, s, func(tx warden.Tx) error {
		for _, i := range []*warden.Incident{full, plain} {
			if err := tx.CreateIncident(i); err != nil {
				return err
			}
		}
		// The Update reads its own writes.
		got, err := tx.Incident(full.ID)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(full, got); diff != "" {
			t.Errorf("Incident inside the Update (-want +got):\n%s", diff)
		}
		// And a second create of the same id conflicts within it.
		checkCode(t, "second CreateIncident in one Update", tx.CreateIncident(cloneIncident(plain)), warden.ECONFLICT)
		return nil
	})
	MustView(t, s, func(tx warden.ReadTx) error {
		for _, want := range []*warden.Incident{full, plain} {
			got, err := tx.Incident(want.ID)
			if err != nil {
				return err
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Incident(%s) (-want +got):\n%s", want.ID, diff)
			}
		}
		return nil
	})

	sameID := incident(9, warden.ClassToolCallBurst, warden.SeverityHigh, warden.StateOpen)
	sameID.ID = full.ID
	sameNumber := incident(7, warden.ClassToolCallBurst, warden.SeverityHigh, warden.StateOpen)
	sameNumber.ID = "INC-other"
	with := func(n int, edit func(i *warden.Incident)) *warden.Incident {
		i := incident(n, warden.ClassToolCallBurst, warden.SeverityHigh, warden.StateOpen)
		edit(i)
		return i
	}
	for _, tt := range []struct {
		name string
		i    *warden.Incident
		code string
	}{
		{"duplicate id", sameID, warden.ECONFLICT},
		{"duplicate number", sameNumber, warden.ECONFLICT},
		{"nil", nil, warden.EINVALID},
		{"no id", with(20, func(i *warden.Incident) { i.ID = "" }), warden.EINVALID},
		{"no number", with(21, func(i *warden.Incident) { i.Number = 0 }), warden.EINVALID},
		{"unknown class", with(22, func(i *warden.Incident) { i.Class = "solar_flare" }), warden.EINVALID},
		{"no severity", with(23, func(i *warden.Incident) { i.Severity = "" }), warden.EINVALID},
		{"unknown severity", with(24, func(i *warden.Incident) { i.Severity = "apocalyptic" }), warden.EINVALID},
		{"unknown state", with(25, func(i *warden.Incident) { i.State = "closed" }), warden.EINVALID},
		{"created_at not RFC 3339", with(26, func(i *warden.Incident) { i.CreatedAt = "yesterday" }), warden.EINVALID},
	} {
		err := s.Update(t.Context(), func(tx warden.Tx) error { return tx.CreateIncident(tt.i) })
		if warden.ErrorCode(err) != tt.code {
			t.Errorf("%s: CreateIncident returned %v, want code %s", tt.name, err, tt.code)
		}
	}
	if got := incidentIDs(MustIncidents(t, s, warden.IncidentFilter{})); !slices.Equal(got, []string{full.ID, plain.ID}) {
		t.Errorf("incidents after the refused creates = %v, want [%s %s]", got, full.ID, plain.ID)
	}
	checkStats(t, s, "after the refused creates", nil)

	// UpdateIncident replaces the whole record.
	upd := cloneIncident(plain)
	upd.Severity, upd.EscalatedFrom = warden.SeverityHigh, warden.SeverityLow
	upd.State, upd.ResolvedAt, upd.ResolvedBy = warden.StateResolved, warden.FormatTime(at(50)), "admin"
	upd.Evidence = map[string]string{"k": "v"}
	upd.ContainmentResults = []warden.ContainmentResult{{Action: warden.ActionLogAlert, Success: true, CompletedAt: warden.FormatTime(at(40))}}
	upd.ContainmentPending, upd.AutoContained, upd.Drill = true, true, true
	full2 := cloneIncident(full)
	full2.Evidence, full2.ContainmentResults, full2.ContainmentPending, full2.Drill = nil, nil, false, false
	MustUpdate(t, s, func(tx warden.Tx) error {
		for _, i := range []*warden.Incident{upd, full2} {
			if err := tx.UpdateIncident(i); err != nil {
				return err
			}
		}
		got, err := tx.Incident(upd.ID)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(upd, got); diff != "" {
			t.Errorf("Incident after UpdateIncident, inside the Update (-want +got):\n%s", diff)
		}
		return nil
	})

	// The number, class and creation time of an incident never change
	// (the SQLite adapter's rule; CountIncidentsIn indexes them).
	edit := func(base *warden.Incident, fn func(i *warden.Incident)) *warden.Incident {
		i := cloneIncident(base)
		fn(i)
		return i
	}
	for _, tt := range []struct {
		name string
		i    *warden.Incident
		code string
	}{
		{"unknown id", incident(99, warden.ClassPromptInjection, warden.SeverityLow, warden.StateOpen), warden.ENOTFOUND},
		{"nil", nil, warden.EINVALID},
		{"no id", edit(upd, func(i *warden.Incident) { i.ID = "" }), warden.EINVALID},
		{"unknown state", edit(upd, func(i *warden.Incident) { i.State = "closed" }), warden.EINVALID},
		{"unknown severity", edit(upd, func(i *warden.Incident) { i.Severity = "huge" }), warden.EINVALID},
		{"unknown class", edit(upd, func(i *warden.Incident) { i.Class = "solar_flare" }), warden.EINVALID},
		{"class changed", edit(upd, func(i *warden.Incident) { i.Class = warden.ClassToolCallBurst }), warden.EINVALID},
		{"number changed", edit(upd, func(i *warden.Incident) { i.Number = 77 }), warden.EINVALID},
		{"created_at changed", edit(upd, func(i *warden.Incident) { i.CreatedAt = warden.FormatTime(at(1)) }), warden.EINVALID},
	} {
		err := s.Update(t.Context(), func(tx warden.Tx) error { return tx.UpdateIncident(tt.i) })
		if warden.ErrorCode(err) != tt.code {
			t.Errorf("%s: UpdateIncident returned %v, want code %s", tt.name, err, tt.code)
		}
	}
	MustView(t, s, func(tx warden.ReadTx) error {
		for _, want := range []*warden.Incident{full2, upd} {
			got, err := tx.Incident(want.ID)
			if err != nil {
				return err
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Incident(%s) after updates (-want +got):\n%s", want.ID, diff)
			}
		}
		_, err := tx.Incident(incidentID(99))
		wantCode(t, err, warden.ENOTFOUND)
		return nil
	})
	checkStats(t, s, "after the refused updates", nil)
}

// listingTable is a mix of classes, severities and states whose numbers,
// creation times and insertion order all disagree with the listing order.
func listingTable() []*warden.Incident {
	rows := []struct {
		n     int
		class string
		sev   warden.Severity
		state warden.IncidentState
	}{
		{1, warden.ClassPromptInjection, warden.SeverityLow, warden.StateOpen},
		{2, warden.ClassIntegrityViolation, warden.SeverityCritical, warden.StateContained},
		{3, warden.ClassToolCallBurst, warden.SeverityHigh, warden.StateResolved},
		{4, warden.ClassPromptInjection, warden.SeverityCritical, warden.StateAcknowledged},
		{5, warden.ClassToolCallBurst, warden.SeverityMedium, warden.StateOpen},
		{6, warden.ClassPromptInjection, warden.SeverityHigh, warden.StateOpen},
		{7, warden.ClassIntegrityViolation, warden.SeverityLow, warden.StateResolved},
		{8, warden.ClassUnauthorizedAccess, warden.SeverityCritical, warden.StateContainmentFailed},
		{9, warden.ClassPromptInjection, warden.SeverityMedium, warden.StateResolved},
		{10, warden.ClassToolCallBurst, warden.SeverityHigh, warden.StateOpen},
		{11, warden.ClassIntegrityViolation, warden.SeverityMedium, warden.StateContained},
		{12, warden.ClassPromptInjection, warden.SeverityLow, warden.StateOpen},
		{13, warden.ClassUnauthorizedAccess, warden.SeverityHigh, warden.StateAcknowledged},
		{14, warden.ClassToolCallBurst, warden.SeverityCritical, warden.StateOpen},
	}
	out := make([]*warden.Incident, len(rows))
	for k, r := range rows {
		out[k] = incident(r.n, r.class, r.sev, r.state)
		// Newer numbers are stamped earlier: the order is by number.
		out[k].CreatedAt = warden.FormatTime(at(100 - r.n))
	}
	return out
}

func testIncidentListing(t *testing.T, h Harness) {
	s := h.New(t)
	all := listingTable()
	byN := func(ns ...int) []*warden.Incident {
		out := make([]*warden.Incident, len(ns))
		for k, n := range ns {
			out[k] = all[n-1]
		}
		return out
	}
	// Stored in three Updates, out of every order.
	createIncidents(t, s, byN(7, 2, 12, 14, 1)...)
	createIncidents(t, s, byN(9, 4, 11, 3)...)
	createIncidents(t, s, byN(8, 13, 5, 6, 10)...)

	critical, high := warden.SeverityCritical.Rank(), warden.SeverityHigh.Rank()
	tests := []struct {
		name string
		f    warden.IncidentFilter
		want []int
	}{
		{"all", warden.IncidentFilter{}, []int{14, 8, 4, 2, 13, 10, 6, 3, 11, 9, 5, 12, 7, 1}},
		{"class", warden.IncidentFilter{Class: warden.ClassPromptInjection}, []int{4, 6, 9, 12, 1}},
		{"state open", warden.IncidentFilter{State: warden.StateOpen}, []int{14, 10, 6, 5, 12, 1}},
		{"state acknowledged", warden.IncidentFilter{State: warden.StateAcknowledged}, []int{4, 13}},
		{"state containment_failed", warden.IncidentFilter{State: warden.StateContainmentFailed}, []int{8}},
		{"severity", warden.IncidentFilter{Severity: warden.SeverityHigh}, []int{13, 10, 6, 3}},
		{"class and state", warden.IncidentFilter{Class: warden.ClassToolCallBurst, State: warden.StateOpen}, []int{14, 10, 5}},
		{"class and severity", warden.IncidentFilter{Class: warden.ClassPromptInjection, Severity: warden.SeverityLow}, []int{12, 1}},
		{"class, state and severity", warden.IncidentFilter{Class: warden.ClassToolCallBurst, State: warden.StateResolved, Severity: warden.SeverityHigh}, []int{3}},
		{"no match", warden.IncidentFilter{Class: warden.ClassForbiddenAirlockRequest}, []int{}},
		{"no match of three", warden.IncidentFilter{Class: warden.ClassPromptInjection, State: warden.StateContained, Severity: warden.SeverityLow}, []int{}},
		{"limit", warden.IncidentFilter{Limit: 5}, []int{14, 8, 4, 2, 13}},
		{"limit beyond", warden.IncidentFilter{Limit: 50}, []int{14, 8, 4, 2, 13, 10, 6, 3, 11, 9, 5, 12, 7, 1}},
		{"state and limit", warden.IncidentFilter{State: warden.StateOpen, Limit: 2}, []int{14, 10}},
		{"after a listed incident", warden.IncidentFilter{After: &warden.IncidentCursor{Rank: critical, Number: 4}}, []int{2, 13, 10, 6, 3, 11, 9, 5, 12, 7, 1}},
		{"after a position between incidents", warden.IncidentFilter{After: &warden.IncidentCursor{Rank: high, Number: 7}}, []int{6, 3, 11, 9, 5, 12, 7, 1}},
		{"after, state and limit", warden.IncidentFilter{State: warden.StateOpen, Limit: 2, After: &warden.IncidentCursor{Rank: high, Number: 10}}, []int{6, 5}},
		{"after the last", warden.IncidentFilter{After: &warden.IncidentCursor{Rank: 1, Number: 1}}, []int{}},
	}
	MustView(t, s, func(tx warden.ReadTx) error {
		for _, tt := range tests {
			got, err := collectIncidents(tx, tt.f)
			if err != nil {
				return err
			}
			want := byN(tt.want...)
			if diff := cmp.Diff(incidentIDs(want), incidentIDs(got)); diff != "" {
				t.Errorf("%s: Incidents ids (-want +got):\n%s", tt.name, diff)
			} else if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s: Incidents records (-want +got):\n%s", tt.name, diff)
			}
			if diff := cmp.Diff(incidentIDs(want), incidentIDs(wantIncidents(all, tt.f))); diff != "" {
				t.Fatalf("%s: the test's model disagrees with its table (-table +model):\n%s", tt.name, diff)
			}
			// CountIncidents counts what the filters match, whatever the
			// page's cursor and limit.
			filters := warden.IncidentFilter{Class: tt.f.Class, State: tt.f.State, Severity: tt.f.Severity}
			n, err := tx.CountIncidents(tt.f)
			if err != nil {
				return err
			}
			if want := len(wantIncidents(all, filters)); n != int64(want) {
				t.Errorf("%s: CountIncidents = %d, want %d", tt.name, n, want)
			}
		}
		// Incidents stops at fn's first error and returns it.
		calls := 0
		err := tx.Incidents(warden.IncidentFilter{}, func(*warden.Incident) error {
			if calls++; calls == 3 {
				return errBoom
			}
			return nil
		})
		if !errors.Is(err, errBoom) || calls != 3 {
			t.Errorf("Incidents with fn failing on the 3rd call: %v after %d calls; want fn's error after 3", err, calls)
		}
		return nil
	})

	// Inside an Update the listing shows its own writes, and a listing fn
	// stopped early leaves the Update usable.
	newest := incident(15, warden.ClassModelBehaviorAnomaly, warden.SeverityLow, warden.StateOpen)
	raised := cloneIncident(all[0]) // number 1: low → critical
	raised.Severity, raised.EscalatedFrom = warden.SeverityCritical, warden.SeverityLow
	MustUpdate(t, s, func(tx warden.Tx) error {
		err := tx.Incidents(warden.IncidentFilter{}, func(*warden.Incident) error { return errBoom })
		if !errors.Is(err, errBoom) {
			t.Errorf("Incidents with a failing fn inside an Update returned %v, want fn's error", err)
		}
		if err := tx.CreateIncident(newest); err != nil {
			return err
		}
		if err := tx.UpdateIncident(raised); err != nil {
			return err
		}
		got, err := collectIncidents(tx, warden.IncidentFilter{})
		if err != nil {
			return err
		}
		want := []string{incidentID(14), incidentID(8), incidentID(4), incidentID(2), incidentID(1)}
		if diff := cmp.Diff(want, incidentIDs(got)[:min(5, len(got))]); diff != "" {
			t.Errorf("Incidents inside the Update, first five (-want +got):\n%s", diff)
		}
		got, err = collectIncidents(tx, warden.IncidentFilter{Severity: warden.SeverityLow})
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]string{incidentID(15), incidentID(12), incidentID(7)}, incidentIDs(got)); diff != "" {
			t.Errorf("low incidents inside the Update (-want +got):\n%s", diff)
		}
		return nil
	})
	all = append(all, newest)
	all[0] = raised
	if diff := cmp.Diff(wantIncidents(all, warden.IncidentFilter{}), MustIncidents(t, s, warden.IncidentFilter{})); diff != "" {
		t.Errorf("Incidents after the Update (-want +got):\n%s", diff)
	}
}

// pagedIncidents returns n incidents numbered from first, whose severity,
// state and class cycle.
func pagedIncidents(first, n int) []*warden.Incident {
	out := make([]*warden.Incident, n)
	for k := range n {
		num := first + k
		out[k] = incident(num, warden.IncidentClasses[num%len(warden.IncidentClasses)],
			warden.Severities[num%len(warden.Severities)], warden.IncidentStates[num%len(warden.IncidentStates)])
	}
	return out
}

// createInChunks stores is in Updates of at most 250 incidents.
func createInChunks(tb testing.TB, s warden.Store, is []*warden.Incident) {
	tb.Helper()
	for c := range slices.Chunk(is, 250) {
		createIncidents(tb, s, c...)
	}
}

// testIncidentPaging lists more incidents than a backend would sensibly
// hold in one page, so that every page boundary is crossed.
func testIncidentPaging(t *testing.T, h Harness) {
	s := h.New(t)
	all := pagedIncidents(1, 1234)
	// Stored in an order unrelated to the listing order.
	shuffled := slices.Clone(all)
	for k := range shuffled {
		j := (k * 7919) % len(shuffled)
		shuffled[k], shuffled[j] = shuffled[j], shuffled[k]
	}
	createInChunks(t, s, shuffled)

	MustView(t, s, func(tx warden.ReadTx) error {
		for _, f := range []warden.IncidentFilter{
			{},
			{Limit: 777},
			{Limit: 500},
			{Limit: 501},
			{Severity: warden.SeverityHigh},
			{State: warden.StateOpen, Limit: 200},
			{Class: warden.ClassToolCallBurst},
			{After: &warden.IncidentCursor{Rank: warden.SeverityHigh.Rank(), Number: 611}, Limit: 600},
		} {
			got, err := collectIncidents(tx, f)
			if err != nil {
				return err
			}
			want := wantIncidents(all, f)
			if diff := cmp.Diff(incidentIDs(want), incidentIDs(got)); diff != "" {
				t.Errorf("Incidents(%+v) ids (-want +got):\n%s", f, diff)
			} else if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Incidents(%+v) records (-want +got):\n%s", f, diff)
			}
		}

		// fn may read through the same transaction while it streams.
		seen := 0
		if err := tx.Incidents(warden.IncidentFilter{}, func(i *warden.Incident) error {
			seen++
			again, err := tx.Incident(i.ID)
			if err != nil {
				return fmt.Errorf("Incident(%s) inside fn: %w", i.ID, err)
			}
			if again.Number != i.Number {
				return fmt.Errorf("Incident(%s) inside fn has number %d, want %d", i.ID, again.Number, i.Number)
			}
			if seen%300 == 0 {
				if _, err := tx.IncidentStats(); err != nil {
					return fmt.Errorf("IncidentStats inside fn: %w", err)
				}
			}
			return nil
		}); err != nil {
			return err
		}
		if seen != len(all) {
			t.Errorf("Incidents with nested reads called fn %d times, want %d", seen, len(all))
		}

		calls := 0
		err := tx.Incidents(warden.IncidentFilter{}, func(*warden.Incident) error {
			if calls++; calls == 600 {
				return errBoom
			}
			return nil
		})
		if !errors.Is(err, errBoom) || calls != 600 {
			t.Errorf("Incidents with fn failing on the 600th call: %v after %d calls; want fn's error after 600", err, calls)
		}
		return nil
	})
}

// testIncidentsViewSnapshot streams a listing of several pages while
// another Update commits changes to every part of it.
func testIncidentsViewSnapshot(t *testing.T, h Harness) {
	s := h.New(t)
	all := pagedIncidents(101, 1100)
	createInChunks(t, s, all)
	MustUpdate(t, s, func(tx warden.Tx) error {
		_, err := tx.NextCounter("incident")
		return err
	})
	before := mustIncidentSnapshot(t, s, at(0), "incident")

	// Incident 104 is low (104 % 4 == 0) and lists near the end.
	late := cloneIncident(all[104-101])
	if late.Severity != warden.SeverityLow {
		t.Fatalf("incident 104 is %s, want low", late.Severity)
	}
	late.Severity, late.State = warden.SeverityCritical, warden.StateResolved
	first := incident(1, warden.ClassToolCallBurst, warden.SeverityLow, warden.StateOpen)       // lists last
	top := incident(5000, warden.ClassToolCallBurst, warden.SeverityCritical, warden.StateOpen) // lists first
	calls := 0
	MustView(t, s, func(tx warden.ReadTx) error {
		got := []*warden.Incident{}
		if err := tx.Incidents(warden.IncidentFilter{}, func(i *warden.Incident) error {
			if calls++; calls == 1 {
				MustUpdate(t, s, func(tx warden.Tx) error {
					if _, err := tx.NextCounter("incident"); err != nil {
						return err
					}
					for _, i := range []*warden.Incident{first, top} {
						if err := tx.CreateIncident(i); err != nil {
							return err
						}
					}
					return tx.UpdateIncident(late)
				})
			}
			got = append(got, i)
			return nil
		}); err != nil {
			return err
		}
		if diff := cmp.Diff(incidentIDs(before.Incidents), incidentIDs(got)); diff != "" {
			t.Errorf("a listing streamed while an Update committed (-before +streamed):\n%s", diff)
		} else if diff := cmp.Diff(before.Incidents, got); diff != "" {
			t.Errorf("records streamed while an Update committed (-before +streamed):\n%s", diff)
		}
		// The rest of the View sees the same snapshot.
		after, err := readIncidentSnapshot(tx, at(0), "incident")
		if err != nil {
			return err
		}
		if diff := cmp.Diff(before, after); diff != "" {
			t.Errorf("the View saw the concurrent commit (-before +later in the View):\n%s", diff)
		}
		n, err := tx.CountIncidentsIn(warden.ClassToolCallBurst, at(-1000), at(10_000), 10_000)
		if err != nil {
			return err
		}
		if want := len(wantIncidents(all, warden.IncidentFilter{Class: warden.ClassToolCallBurst})); n != want {
			t.Errorf("CountIncidentsIn in the View = %d, want %d (the concurrent commit's incident is invisible)", n, want)
		}
		return nil
	})
	if calls != len(all) {
		t.Errorf("the View's listing called fn %d times, want %d", calls, len(all))
	}
	all[104-101] = late
	all = append(all, first, top)
	if diff := cmp.Diff(incidentIDs(wantIncidents(all, warden.IncidentFilter{})), incidentIDs(MustIncidents(t, s, warden.IncidentFilter{}))); diff != "" {
		t.Errorf("a View after the commit (-want +got):\n%s", diff)
	}
	if got := counterValue(t, s, "incident"); got != 2 {
		t.Errorf("Counter after the commit = %d, want 2", got)
	}
	checkStats(t, s, "after the commit", nil)
}

func testCountIncidentsIn(t *testing.T, h Harness) {
	s := h.New(t)
	from, to := at(1000), at(2000)
	pi, tcb := warden.ClassPromptInjection, warden.ClassToolCallBurst
	stamped := func(n int, class string, created time.Time) *warden.Incident {
		i := incident(n, class, warden.SeverityMedium, warden.StateOpen)
		i.CreatedAt = warden.FormatTime(created)
		return i
	}
	// Numbers rise while stamps wander, as with a clock that steps back.
	createIncidents(t, s,
		stamped(1, pi, to.Add(time.Microsecond)),   // after to: not counted
		stamped(2, pi, from),                       // exactly from: not counted
		stamped(3, pi, at(1500)),                   // inside
		stamped(4, pi, at(500)),                    // before from
		stamped(5, pi, to),                         // exactly to: counted
		stamped(6, tcb, at(1200)),                  // inside, other class
		stamped(7, pi, from.Add(time.Microsecond)), // just after from: counted
		stamped(8, pi, at(3000)),                   // far after to
	)
	resolved := stamped(9, pi, at(1800)) // inside; the state does not matter
	resolved.State = warden.StateResolved
	createIncidents(t, s, resolved)

	count := func(tx warden.ReadTx, class string, from, to time.Time, limit int) int {
		t.Helper()
		n, err := tx.CountIncidentsIn(class, from, to, limit)
		if err != nil {
			t.Errorf("CountIncidentsIn(%s, %v, %v, %d): %v", class, from, to, limit, err)
			return -1
		}
		return n
	}
	tests := []struct {
		name     string
		class    string
		from, to time.Time
		limit    int
		want     int
	}{
		{"window", pi, from, to, 100, 4},
		{"limit at the count", pi, from, to, 4, 4},
		{"limit caps", pi, from, to, 3, 3},
		{"limit 1", pi, from, to, 1, 1},
		{"other class", tcb, from, to, 100, 1},
		{"class without incidents", warden.ClassManifestMismatch, from, to, 100, 0},
		{"empty window", pi, from, from, 100, 0},
		{"later window", pi, at(1500), at(3000), 100, 4},
		{"everything", pi, at(0), at(5000), 100, 8},
		{"everything, capped", pi, at(0), at(5000), 5, 5},
	}
	MustView(t, s, func(tx warden.ReadTx) error {
		for _, tt := range tests {
			if got := count(tx, tt.class, tt.from, tt.to, tt.limit); got != tt.want {
				t.Errorf("%s: CountIncidentsIn = %d, want %d", tt.name, got, tt.want)
			}
		}
		return nil
	})

	// An Update counts its own incidents; a failed one keeps none.
	err := s.Update(t.Context(), func(tx warden.Tx) error {
		if err := tx.CreateIncident(stamped(10, pi, at(1900))); err != nil {
			return err
		}
		if got := count(tx, pi, from, to, 100); got != 5 {
			t.Errorf("CountIncidentsIn inside the Update = %d, want 5", got)
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	MustView(t, s, func(tx warden.ReadTx) error {
		if got := count(tx, pi, from, to, 100); got != 4 {
			t.Errorf("CountIncidentsIn after a failed Update = %d, want 4", got)
		}
		return nil
	})
}

func testIncidentStats(t *testing.T, h Harness) {
	s := h.New(t)
	checkStats(t, s, "on an empty store", warden.StatsFromCounters(nil))

	pi, iv, tcb, ua := warden.ClassPromptInjection, warden.ClassIntegrityViolation, warden.ClassToolCallBurst, warden.ClassUnauthorizedAccess
	a := incident(1, pi, warden.SeverityHigh, warden.StateOpen)
	b := incident(2, iv, warden.SeverityCritical, warden.StateContained)
	b.AutoContained = true
	c := incident(3, tcb, warden.SeverityMedium, warden.StateOpen)
	c.AutoContained = true
	d := incident(4, ua, warden.SeverityLow, warden.StateResolved)
	step1 := &warden.IncidentStats{
		TotalIncidents: 4, OpenIncidents: 3, ContainedCount: 2, ResolvedCount: 1,
		ByClass:        map[string]int64{pi: 1, iv: 1, tcb: 1, ua: 1},
		OpenBySeverity: map[string]int64{"high": 1, "critical": 1, "medium": 1},
	}
	MustUpdate(t, s, func(tx warden.Tx) error {
		for _, i := range []*warden.Incident{a, b, c, d} {
			if err := tx.CreateIncident(i); err != nil {
				return err
			}
		}
		// The Update reads its own counters.
		got, err := tx.IncidentStats()
		if err != nil {
			return err
		}
		if diff := cmp.Diff(step1, got); diff != "" {
			t.Errorf("IncidentStats inside the Update (-want +got):\n%s", diff)
		}
		return nil
	})
	checkStats(t, s, "after creates", step1)

	// Several changes, some to the same incident within one Update.
	a1 := cloneIncident(a)
	a1.Severity, a1.EscalatedFrom = warden.SeverityCritical, warden.SeverityHigh
	a2 := cloneIncident(a1)
	a2.State = warden.StateContained
	b1 := cloneIncident(b)
	b1.State = warden.StateAcknowledged
	c1 := cloneIncident(c)
	c1.State = warden.StateResolved
	d1 := cloneIncident(d)
	d1.State, d1.AutoContained = warden.StateOpen, true
	step2 := &warden.IncidentStats{
		TotalIncidents: 4, OpenIncidents: 2, ContainedCount: 3, ResolvedCount: 1,
		ByClass:        map[string]int64{pi: 1, iv: 1, tcb: 1, ua: 1},
		OpenBySeverity: map[string]int64{"critical": 1, "low": 1},
	}
	updateIncidents(t, s, a1, a2, b1, c1, d1)
	checkStats(t, s, "after updates", step2)

	// Refused writes change no counter, even when fn carries on and the
	// Update commits.
	dupID := incident(9, iv, warden.SeverityCritical, warden.StateOpen)
	dupID.ID = a.ID
	dupNumber := incident(1, iv, warden.SeverityCritical, warden.StateOpen)
	dupNumber.ID = "INC-dup"
	classChanged := cloneIncident(b1)
	classChanged.Class, classChanged.State = tcb, warden.StateOpen
	MustUpdate(t, s, func(tx warden.Tx) error {
		checkCode(t, "CreateIncident, duplicate id", tx.CreateIncident(dupID), warden.ECONFLICT)
		checkCode(t, "CreateIncident, duplicate number", tx.CreateIncident(dupNumber), warden.ECONFLICT)
		checkCode(t, "UpdateIncident, unknown", tx.UpdateIncident(incident(8, pi, warden.SeverityCritical, warden.StateOpen)), warden.ENOTFOUND)
		checkCode(t, "UpdateIncident, class changed", tx.UpdateIncident(classChanged), warden.EINVALID)
		return nil
	})
	checkStats(t, s, "after refused writes", step2)

	// A failed Update changes no counter.
	err := s.Update(t.Context(), func(tx warden.Tx) error {
		if err := tx.CreateIncident(incident(5, pi, warden.SeverityLow, warden.StateOpen)); err != nil {
			return err
		}
		a3 := cloneIncident(a2)
		a3.State = warden.StateResolved
		if err := tx.UpdateIncident(a3); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	checkStats(t, s, "after a failed Update", step2)

	// Many incidents through every state.
	more := pagedIncidents(10, 60)
	for k, i := range more {
		i.AutoContained = k%3 == 0
	}
	createIncidents(t, s, more...)
	var changed []*warden.Incident
	for k, i := range more {
		if k%2 == 0 {
			continue
		}
		u := cloneIncident(i)
		u.State = warden.IncidentStates[(k/2)%len(warden.IncidentStates)]
		if u.Severity.Rank() < 4 {
			u.Severity = warden.Severities[u.Severity.Rank()]
		}
		u.AutoContained = !u.AutoContained
		changed = append(changed, u)
	}
	updateIncidents(t, s, changed...)
	checkStats(t, s, "after many changes", nil)
	var total int64
	MustView(t, s, func(tx warden.ReadTx) error {
		st, err := tx.IncidentStats()
		total = st.TotalIncidents
		return err
	})
	if total != 64 {
		t.Errorf("TotalIncidents = %d, want 64", total)
	}
}

func testRequirements(t *testing.T, h Harness) {
	s := h.New(t)
	createIncidents(t, s, pagedIncidents(1, 5)...)
	r1 := requirement(1, 30, true, true)
	r2 := requirement(2, 10, true, false)
	r2.AckedAt, r2.AckedBy, r2.AckedByPrincipal, r2.RecoveryComplete = warden.FormatTime(at(11)), "Ops", "operator", true
	r3 := requirement(3, 20, false, true)
	r3.ReAttestedAt, r3.ReAttestedByPrincipal = warden.FormatTime(at(21)), "attestor" // not yet settled
	// Stored newest first: the order comes from CreatedAt.
	MustUpdate(t, s, func(tx warden.Tx) error {
		for _, r := range []*warden.RecoveryRequirement{r1, r2, r3} {
			if err := tx.PutRequirement(r); err != nil {
				return err
			}
		}
		return nil
	})

	list := func(tx warden.ReadTx, pendingOnly bool, want ...*warden.RecoveryRequirement) {
		t.Helper()
		got, err := collectRequirements(tx, pendingOnly)
		if err != nil {
			t.Errorf("Requirements(%v): %v", pendingOnly, err)
			return
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Requirements(%v) (-want +got):\n%s", pendingOnly, diff)
		}
	}
	// pending pages through PendingRequirements one and two at a time,
	// from every position, and checks CountPendingRequirements.
	pending := func(tx warden.ReadTx, want ...*warden.RecoveryRequirement) {
		t.Helper()
		n, err := tx.CountPendingRequirements()
		if err != nil || n != int64(len(want)) {
			t.Errorf("CountPendingRequirements = %d, %v; want %d", n, err, len(want))
		}
		for _, limit := range []int{1, 2, len(want) + 1} {
			var got []*warden.RecoveryRequirement
			var after *warden.RequirementCursor
			for range len(want) + 2 {
				page, err := tx.PendingRequirements(after, limit)
				if err != nil {
					t.Errorf("PendingRequirements(%v, %d): %v", after, limit, err)
					return
				}
				if page == nil || len(page) > limit {
					t.Errorf("PendingRequirements(%v, %d) = %d requirements (nil: %v)", after, limit, len(page), page == nil)
					return
				}
				got = append(got, page...)
				if len(page) < limit {
					break
				}
				if after, err = page[len(page)-1].CursorOf(); err != nil {
					t.Error(err)
					return
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("PendingRequirements %d at a time (-want +got):\n%s", limit, diff)
			}
		}
	}
	MustView(t, s, func(tx warden.ReadTx) error {
		got, err := tx.Requirement(r1.IncidentID)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(r1, got); diff != "" {
			t.Errorf("Requirement (-want +got):\n%s", diff)
		}
		_, err = tx.Requirement(incidentID(4))
		wantCode(t, err, warden.ENOTFOUND)
		_, err = tx.Requirement("INC-none")
		wantCode(t, err, warden.ENOTFOUND)
		list(tx, false, r2, r3, r1)
		list(tx, true, r3, r1)
		pending(tx, r3, r1)
		calls := 0
		err = tx.Requirements(false, func(*warden.RecoveryRequirement) error {
			calls++
			return errBoom
		})
		if !errors.Is(err, errBoom) || calls != 1 {
			t.Errorf("Requirements with a failing fn: %v after %d calls; want fn's error after 1", err, calls)
		}
		return nil
	})

	for _, tt := range []struct {
		name string
		r    *warden.RecoveryRequirement
		code string
	}{
		{"nil", nil, warden.EINVALID},
		{"no incident id", &warden.RecoveryRequirement{RequireAck: true, CreatedAt: warden.FormatTime(at(1))}, warden.EINVALID},
		{"created_at not RFC 3339", &warden.RecoveryRequirement{IncidentID: incidentID(4), CreatedAt: "now"}, warden.EINVALID},
		{"unknown incident", requirement(99, 1, true, false), warden.ENOTFOUND},
	} {
		err := s.Update(t.Context(), func(tx warden.Tx) error { return tx.PutRequirement(tt.r) })
		if warden.ErrorCode(err) != tt.code {
			t.Errorf("%s: PutRequirement returned %v, want code %s", tt.name, err, tt.code)
		}
	}

	// PutRequirement replaces the record and everything listed by it: r1
	// completes, r2 reopens, r3 is re-created earlier than the others.
	r1done := *r1
	r1done.AckedAt, r1done.AckedBy, r1done.ReAttestedAt = warden.FormatTime(at(40)), "Ops", warden.FormatTime(at(41))
	r1done.Settle()
	r2open := *r2
	r2open.RequireReattest, r2open.RecoveryComplete = true, false
	r3new := requirement(3, 5, true, true)
	r4 := requirement(4, 50, true, false)
	MustUpdate(t, s, func(tx warden.Tx) error {
		for _, r := range []*warden.RecoveryRequirement{&r1done, &r2open, r3new, r4} {
			if err := tx.PutRequirement(r); err != nil {
				return err
			}
		}
		// The Update reads its own writes.
		list(tx, true, r3new, &r2open, r4)
		pending(tx, r3new, &r2open, r4)
		got, err := tx.Requirement(r4.IncidentID)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(r4, got); diff != "" {
			t.Errorf("Requirement inside the Update (-want +got):\n%s", diff)
		}
		return nil
	})
	MustView(t, s, func(tx warden.ReadTx) error {
		list(tx, false, r3new, &r2open, &r1done, r4)
		list(tx, true, r3new, &r2open, r4)
		pending(tx, r3new, &r2open, r4)
		got, err := tx.Requirement(r1.IncidentID)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(&r1done, got); diff != "" {
			t.Errorf("Requirement after replacement (-want +got):\n%s", diff)
		}
		return nil
	})
}

func testPendingContainment(t *testing.T, h Harness) {
	s := h.New(t)
	is := pagedIncidents(1, 5)
	for _, n := range []int{1, 3, 4} {
		is[n-1].ContainmentPending = true
	}
	createIncidents(t, s, is[3], is[0], is[4], is[2], is[1])
	check := func(when string, want ...int) {
		t.Helper()
		MustView(t, s, func(tx warden.ReadTx) error {
			got, err := collectPending(tx)
			if err != nil {
				return err
			}
			wantIs := make([]*warden.Incident, len(want))
			for k, n := range want {
				wantIs[k] = is[n-1]
			}
			if diff := cmp.Diff(wantIs, got); diff != "" {
				t.Errorf("PendingContainment %s (-want +got):\n%s", when, diff)
			}
			return nil
		})
	}
	check("after creates", 1, 3, 4)
	MustView(t, s, func(tx warden.ReadTx) error {
		calls := 0
		err := tx.PendingContainment(func(*warden.Incident) error {
			calls++
			return errBoom
		})
		if !errors.Is(err, errBoom) || calls != 1 {
			t.Errorf("PendingContainment with a failing fn: %v after %d calls; want fn's error after 1", err, calls)
		}
		return nil
	})

	// Recording containment takes an incident off; starting it again puts
	// it back.
	is[2] = cloneIncident(is[2])
	is[2].ContainmentPending, is[2].State = false, warden.StateContained
	is[1] = cloneIncident(is[1])
	is[1].ContainmentPending = true
	MustUpdate(t, s, func(tx warden.Tx) error {
		if err := tx.UpdateIncident(is[2]); err != nil {
			return err
		}
		if err := tx.UpdateIncident(is[1]); err != nil {
			return err
		}
		six := incident(6, warden.ClassPromptInjection, warden.SeverityHigh, warden.StateOpen)
		six.ContainmentPending = true
		if err := tx.CreateIncident(six); err != nil {
			return err
		}
		// The Update reads its own writes.
		got, err := collectPending(tx)
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]string{incidentID(1), incidentID(2), incidentID(4), incidentID(6)}, incidentIDs(got)); diff != "" {
			t.Errorf("PendingContainment inside the Update (-want +got):\n%s", diff)
		}
		is = append(is, six)
		return nil
	})
	check("after updates", 1, 2, 4, 6)
}

func testIntegrityBaseline(t *testing.T, h Harness) {
	s := h.New(t)
	MustView(t, s, func(tx warden.ReadTx) error {
		_, err := tx.IntegrityBaseline()
		wantCode(t, err, warden.ENOTFOUND)
		return nil
	})
	err := s.Update(t.Context(), func(tx warden.Tx) error { return tx.PutIntegrityBaseline(nil) })
	wantCode(t, err, warden.EINVALID)

	b1 := &warden.IntegrityBaseline{
		Roots: []string{"/etc", "/usr/bin/warden"},
		Files: []warden.BaselineFile{
			{Path: "/etc/hosts", SHA256: "aa", Size: 120},
			{Path: "/etc/passwd", SHA256: "bb", Size: 2048},
			{Path: "/usr/bin/warden", SHA256: "cc", Size: 1 << 33},
		},
		CreatedAt: warden.FormatTime(at(1)), CreatedBy: "admin",
	}
	b2 := &warden.IntegrityBaseline{
		Roots: []string{"/opt"}, Files: []warden.BaselineFile{},
		CreatedAt: warden.FormatTime(at(2)), CreatedBy: "operator",
	}
	get := func(tx warden.ReadTx, want *warden.IntegrityBaseline, when string) {
		t.Helper()
		got, err := tx.IntegrityBaseline()
		if err != nil {
			t.Errorf("IntegrityBaseline %s: %v", when, err)
			return
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("IntegrityBaseline %s (-want +got):\n%s", when, diff)
		}
	}
	MustUpdate(t, s, func(tx warden.Tx) error {
		if err := tx.PutIntegrityBaseline(b1); err != nil {
			return err
		}
		get(tx, b1, "inside the Update")
		return nil
	})
	MustView(t, s, func(tx warden.ReadTx) error {
		get(tx, b1, "after the first put")
		return nil
	})
	// A put replaces the baseline whole.
	MustUpdate(t, s, func(tx warden.Tx) error { return tx.PutIntegrityBaseline(b2) })
	MustView(t, s, func(tx warden.ReadTx) error {
		get(tx, b2, "after the replacement")
		return nil
	})
}

// testDeliveries covers the webhook outbox: enqueueing, outcomes, the
// listings, and the due reads by destination (DueDestinations, then
// DueDeliveries of one destination).
func testDeliveries(t *testing.T, h Harness) {
	s := h.New(t)
	// url1 and url1b are one destination (the URL without credentials,
	// query or fragment, scheme and host in lower case); url2 and url3 are
	// two more. url3's host sorts first, so an order by name would differ
	// from the longest waiting.
	const url1, url1b, url2, url3 = "https://hooks.example/a", "HTTPS://u:p@Hooks.Example/a?token=1", "https://other.example/b", "https://aaa.example/x"
	hooks, other, aaa := warden.Destination(url1), warden.Destination(url2), warden.Destination(url3)
	incA, incB := incidentID(1), incidentID(2)
	MustView(t, s, func(tx warden.ReadTx) error {
		for _, inc := range []string{"", incA} {
			got, err := tx.Deliveries(warden.DeliveryFilter{IncidentID: inc, Limit: 10})
			if err != nil {
				return err
			}
			if len(got) != 0 {
				t.Errorf("Deliveries(%q) on an empty store = %v", inc, deliveryIDs(got))
			}
		}
		dests, err := tx.DueDestinations(at(1_000_000), 10)
		if err != nil {
			return err
		}
		if dests == nil || len(dests) != 0 {
			t.Errorf("DueDestinations on an empty store = %#v, want an empty list", dests)
		}
		due, err := tx.DueDeliveries(at(1_000_000), hooks, 10)
		if err != nil {
			return err
		}
		if len(due) != 0 {
			t.Errorf("DueDeliveries on an empty store = %v", deliveryIDs(due))
		}
		return nil
	})

	d1, d2, d3 := delivery(incA, url1, 100), delivery(incB, url1b, 200), delivery(incA, url2, 300)
	d4, d5, d7 := delivery(incA, url1, 400), delivery(incB, url2, 500), delivery(incB, url3, 700)
	d4.Event = warden.EventRecovery
	enqueue(t, s, d1, d2, d3)
	enqueue(t, s, d4, d5, d7)
	all := []*warden.Delivery{d1, d2, d3, d4, d5, d7}
	ids := map[uint64]bool{}
	for _, d := range all {
		if d.ID == 0 || ids[d.ID] {
			t.Fatalf("EnqueueDelivery set ids %v: not distinct and non-zero", deliveryIDs(all))
		}
		ids[d.ID] = true
	}

	MustView(t, s, func(tx warden.ReadTx) error {
		for inc, want := range map[string]int64{"": 6, incA: 3, incB: 3, incidentID(3): 0} {
			if n, err := tx.CountDeliveries(inc); err != nil || n != want {
				t.Errorf("CountDeliveries(%q) = %d, %v; want %d", inc, n, err, want)
			}
		}
		return nil
	})

	type listing struct {
		name string
		get  func(tx warden.ReadTx) (any, error)
		want any
	}
	deliveries := func(inc string, limit int) func(tx warden.ReadTx) (any, error) {
		return func(tx warden.ReadTx) (any, error) {
			return tx.Deliveries(warden.DeliveryFilter{IncidentID: inc, Limit: limit})
		}
	}
	before := func(inc string, before uint64, limit int) func(tx warden.ReadTx) (any, error) {
		return func(tx warden.ReadTx) (any, error) {
			return tx.Deliveries(warden.DeliveryFilter{IncidentID: inc, Before: before, Limit: limit})
		}
	}
	due := func(now int, dest string, limit int) func(tx warden.ReadTx) (any, error) {
		return func(tx warden.ReadTx) (any, error) { return tx.DueDeliveries(at(now), dest, limit) }
	}
	dests := func(now, limit int) func(tx warden.ReadTx) (any, error) {
		return func(tx warden.ReadTx) (any, error) { return tx.DueDestinations(at(now), limit) }
	}
	check := func(when string, ls []listing) {
		t.Helper()
		MustView(t, s, func(tx warden.ReadTx) error {
			for _, l := range ls {
				got, err := l.get(tx)
				if err != nil {
					return fmt.Errorf("%s: %w", l.name, err)
				}
				if diff := cmp.Diff(l.want, got); diff != "" {
					t.Errorf("%s %s (-want +got):\n%s", l.name, when, diff)
				}
			}
			return nil
		})
	}
	none, noDest := []*warden.Delivery{}, []string{}
	check("after enqueueing", []listing{
		{"Deliveries(A)", deliveries(incA, 10), []*warden.Delivery{d4, d3, d1}},
		{"Deliveries(A), limit 2", deliveries(incA, 2), []*warden.Delivery{d4, d3}},
		{"Deliveries(B)", deliveries(incB, 10), []*warden.Delivery{d7, d5, d2}},
		{"Deliveries(all)", deliveries("", 10), []*warden.Delivery{d7, d5, d4, d3, d2, d1}},
		{"Deliveries(all), limit 3", deliveries("", 3), []*warden.Delivery{d7, d5, d4}},
		{"Deliveries(unknown)", deliveries(incidentID(3), 10), none},
		{"Deliveries(all) before d4", before("", d4.ID, 10), []*warden.Delivery{d3, d2, d1}},
		{"Deliveries(all) before d4, limit 2", before("", d4.ID, 2), []*warden.Delivery{d3, d2}},
		{"Deliveries(A) before d4", before(incA, d4.ID, 10), []*warden.Delivery{d3, d1}},
		{"Deliveries(B) before d7", before(incB, d7.ID, 10), []*warden.Delivery{d5, d2}},
		{"Deliveries(B) before d5", before(incB, d5.ID, 10), []*warden.Delivery{d2}},
		{"Deliveries(all) before d1", before("", d1.ID, 10), none},
		{"Deliveries(all) before far beyond", before("", 1<<63, 10), []*warden.Delivery{d7, d5, d4, d3, d2, d1}},
		{"Deliveries(all) before the maximum", before("", 1<<64-1, 10), []*warden.Delivery{d7, d5, d4, d3, d2, d1}},
		{"DueDestinations before the first", dests(99, 10), noDest},
		{"DueDestinations exactly at the first", dests(100, 10), []string{hooks}},
		{"DueDestinations at 350", dests(350, 10), []string{hooks, other}},
		{"DueDestinations at 1000", dests(1000, 10), []string{hooks, other, aaa}},
		{"DueDestinations at 1000, limit 2", dests(1000, 2), []string{hooks, other}},
		{"DueDeliveries(hooks) before the first", due(99, hooks, 10), none},
		{"DueDeliveries(hooks) exactly at the first", due(100, hooks, 10), []*warden.Delivery{d1}},
		{"DueDeliveries(hooks) at 350", due(350, hooks, 10), []*warden.Delivery{d1, d2}},
		{"DueDeliveries(hooks) at 1000", due(1000, hooks, 10), []*warden.Delivery{d1, d2, d4}},
		{"DueDeliveries(hooks) at 1000, limit 2", due(1000, hooks, 2), []*warden.Delivery{d1, d2}},
		{"DueDeliveries(other) at 350", due(350, other, 10), []*warden.Delivery{d3}},
		{"DueDeliveries(other) at 1000", due(1000, other, 10), []*warden.Delivery{d3, d5}},
		{"DueDeliveries(aaa) at 1000", due(1000, aaa, 10), []*warden.Delivery{d7}},
		{"DueDeliveries(a URL, not its destination)", due(1000, url1b, 10), none},
		{"DueDeliveries(unknown destination)", due(1000, "https://nowhere.example", 10), none},
	})

	// Recording outcomes: d1 failed and is retried at 600; d2 delivered; d3
	// gave up; d7 delivered, leaving aaa nothing pending.
	d1r, d2r, d3r, d7r := *d1, *d2, *d3, *d7
	d1r.Attempts, d1r.LastError, d1r.LastStatus, d1r.NextAttemptAt = 1, "HTTP 503", 503, at(600)
	d2r.Attempts, d2r.LastStatus, d2r.Status, d2r.DeliveredAt = 1, 200, warden.DeliveryDelivered, at(250)
	d3r.Attempts, d3r.LastError, d3r.Status = 8, "connection refused", warden.DeliveryFailed
	d7r.Attempts, d7r.LastStatus, d7r.Status, d7r.DeliveredAt = 1, 204, warden.DeliveryDelivered, at(700)
	MustUpdate(t, s, func(tx warden.Tx) error {
		for _, d := range []*warden.Delivery{&d1r, &d2r, &d3r, &d7r} {
			if err := tx.UpdateDelivery(d); err != nil {
				return err
			}
		}
		return nil
	})
	check("after recording outcomes", []listing{
		{"Deliveries(all)", deliveries("", 10), []*warden.Delivery{&d7r, d5, d4, &d3r, &d2r, &d1r}},
		{"Deliveries(A)", deliveries(incA, 10), []*warden.Delivery{d4, &d3r, &d1r}},
		{"DueDestinations at 350", dests(350, 10), noDest},
		{"DueDestinations at 450", dests(450, 10), []string{hooks}},
		{"DueDestinations at 599", dests(599, 10), []string{hooks, other}},
		{"DueDestinations at 1000", dests(1000, 10), []string{hooks, other}},
		{"DueDeliveries(hooks) at 350", due(350, hooks, 10), none},
		{"DueDeliveries(hooks) at 599", due(599, hooks, 10), []*warden.Delivery{d4}},
		{"DueDeliveries(hooks) at 600", due(600, hooks, 10), []*warden.Delivery{d4, &d1r}},
		{"DueDeliveries(other) at 1000", due(1000, other, 10), []*warden.Delivery{d5}},
		{"DueDeliveries(aaa) at 1000", due(1000, aaa, 10), none},
	})

	for _, tt := range []struct {
		name string
		edit func(d *warden.Delivery)
	}{
		{"unknown status", func(d *warden.Delivery) { d.Status = "sent" }},
		{"no status", func(d *warden.Delivery) { d.Status = "" }},
		{"no URL", func(d *warden.Delivery) { d.URL = "" }},
		{"no event", func(d *warden.Delivery) { d.Event = "" }},
		{"payload not JSON", func(d *warden.Delivery) { d.Payload = json.RawMessage("{not json") }},
		{"no payload", func(d *warden.Delivery) { d.Payload = nil }},
	} {
		bad := *d4
		tt.edit(&bad)
		err := s.Update(t.Context(), func(tx warden.Tx) error { return tx.UpdateDelivery(&bad) })
		if warden.ErrorCode(err) != warden.EINVALID {
			t.Errorf("%s: UpdateDelivery returned %v, want code %s", tt.name, err, warden.EINVALID)
		}
		bad.ID = 0
		err = s.Update(t.Context(), func(tx warden.Tx) error { return tx.EnqueueDelivery(&bad) })
		if warden.ErrorCode(err) != warden.EINVALID {
			t.Errorf("%s: EnqueueDelivery returned %v, want code %s", tt.name, err, warden.EINVALID)
		}
	}
	wantCode(t, s.Update(t.Context(), func(tx warden.Tx) error { return tx.EnqueueDelivery(nil) }), warden.EINVALID)
	wantCode(t, s.Update(t.Context(), func(tx warden.Tx) error { return tx.UpdateDelivery(nil) }), warden.EINVALID)
	unknown := *d4
	unknown.ID = d7.ID + 1000
	wantCode(t, s.Update(t.Context(), func(tx warden.Tx) error { return tx.UpdateDelivery(&unknown) }), warden.ENOTFOUND)

	// An Update reads its own outbox.
	d6 := delivery(incB, url1, 50)
	MustUpdate(t, s, func(tx warden.Tx) error {
		if err := tx.EnqueueDelivery(d6); err != nil {
			return err
		}
		got, err := tx.Deliveries(warden.DeliveryFilter{IncidentID: incB, Limit: 1})
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]*warden.Delivery{d6}, got); diff != "" {
			t.Errorf("Deliveries inside the Update (-want +got):\n%s", diff)
		}
		gotDests, err := tx.DueDestinations(at(50), 10)
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]string{hooks}, gotDests); diff != "" {
			t.Errorf("DueDestinations inside the Update (-want +got):\n%s", diff)
		}
		got, err = tx.DueDeliveries(at(50), hooks, 10)
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]*warden.Delivery{d6}, got); diff != "" {
			t.Errorf("DueDeliveries inside the Update (-want +got):\n%s", diff)
		}
		return nil
	})
	// The refused writes changed nothing.
	check("at the end", []listing{
		{"Deliveries(all)", deliveries("", 10), []*warden.Delivery{d6, &d7r, d5, d4, &d3r, &d2r, &d1r}},
		{"DueDestinations at 599", dests(599, 10), []string{hooks, other}},
		{"DueDeliveries(hooks) at 599", due(599, hooks, 10), []*warden.Delivery{d6, d4}},
	})

	// A delivery whose URL an outcome changes moves to the new destination.
	d5m := *d5
	d5m.URL = url3
	MustUpdate(t, s, func(tx warden.Tx) error { return tx.UpdateDelivery(&d5m) })
	check("after a delivery moved", []listing{
		{"DueDestinations at 599", dests(599, 10), []string{hooks, aaa}},
		{"DueDeliveries(other) at 1000", due(1000, other, 10), none},
		{"DueDeliveries(aaa) at 1000", due(1000, aaa, 10), []*warden.Delivery{&d5m}},
	})
}

// incidentWorld is one of everything the incident recorder stores.
type incidentWorld struct {
	incidents []*warden.Incident
	req       *warden.RecoveryRequirement
	baseline  *warden.IntegrityBaseline
	delivery  *warden.Delivery
}

func newIncidentWorld() *incidentWorld {
	one := incident(1, warden.ClassIntegrityViolation, warden.SeverityCritical, warden.StateOpen)
	one.ContainmentPending, one.AutoContained = true, true
	two := incident(2, warden.ClassPromptInjection, warden.SeverityMedium, warden.StateResolved)
	return &incidentWorld{
		incidents: []*warden.Incident{one, two},
		req:       requirement(1, 1, true, true),
		baseline: &warden.IntegrityBaseline{
			Roots: []string{"/etc"}, Files: []warden.BaselineFile{{Path: "/etc/hosts", SHA256: "aa", Size: 1}},
			CreatedAt: warden.FormatTime(at(1)), CreatedBy: "admin",
		},
		delivery: delivery(incidentID(1), "https://hooks.example/a", 10),
	}
}

// put stores the world, taking its incident numbers from the "incident"
// counter.
func (w *incidentWorld) put(tx warden.Tx) error {
	for _, i := range w.incidents {
		n, err := tx.NextCounter("incident")
		if err != nil {
			return err
		}
		if n != i.Number {
			return fmt.Errorf("NextCounter(incident) = %d, want %d", n, i.Number)
		}
		if err := tx.CreateIncident(i); err != nil {
			return err
		}
	}
	if err := tx.PutRequirement(w.req); err != nil {
		return err
	}
	if err := tx.PutIntegrityBaseline(w.baseline); err != nil {
		return err
	}
	return tx.EnqueueDelivery(w.delivery)
}

// testIncidentRollback checks that an Update whose fn fails keeps none of
// its incident recorder writes and leaves the ids and numbers it used free.
func testIncidentRollback(t *testing.T, h Harness) {
	for _, how := range []string{"error", "panic"} {
		t.Run(how, func(t *testing.T) {
			s := h.New(t)
			w := newIncidentWorld()
			MustUpdate(t, s, w.put)
			before := mustIncidentSnapshot(t, s, at(1000), "incident", "other")

			three := incident(3, warden.ClassUnauthorizedAccess, warden.SeverityCritical, warden.StateOpen)
			three.ContainmentPending = true
			err := s.Update(t.Context(), func(tx warden.Tx) error {
				if n, err := tx.NextCounter("incident"); err != nil || n != 3 {
					return fmt.Errorf("NextCounter = %d, %v; want 3", n, err)
				}
				if _, err := tx.NextCounter("other"); err != nil {
					return err
				}
				if err := tx.CreateIncident(three); err != nil {
					return err
				}
				one := cloneIncident(w.incidents[0])
				one.State, one.ContainmentPending, one.Severity = warden.StateResolved, false, warden.SeverityLow
				if err := tx.UpdateIncident(one); err != nil {
					return err
				}
				done := *w.req
				done.AckedAt, done.ReAttestedAt = warden.FormatTime(at(5)), warden.FormatTime(at(6))
				done.Settle()
				if err := tx.PutRequirement(&done); err != nil {
					return err
				}
				if err := tx.PutRequirement(requirement(3, 2, true, false)); err != nil {
					return err
				}
				if err := tx.PutIntegrityBaseline(&warden.IntegrityBaseline{Roots: []string{"/tmp"}, CreatedAt: warden.FormatTime(at(9))}); err != nil {
					return err
				}
				if err := tx.EnqueueDelivery(delivery(three.ID, "https://hooks.example/a", 5)); err != nil {
					return err
				}
				sent := *w.delivery
				sent.Status, sent.Attempts, sent.DeliveredAt = warden.DeliveryDelivered, 1, at(7)
				if err := tx.UpdateDelivery(&sent); err != nil {
					return err
				}
				if _, err := tx.Append(draft(1)); err != nil {
					return err
				}
				if how == "panic" {
					panic("fn panics")
				}
				return errBoom
			})
			if how == "error" && !errors.Is(err, errBoom) {
				t.Fatalf("Update returned %v, want fn's error", err)
			} else if how == "panic" {
				wantCode(t, err, warden.EINTERNAL)
			}
			after := mustIncidentSnapshot(t, s, at(1000), "incident", "other")
			if diff := cmp.Diff(before, after); diff != "" {
				t.Errorf("a failed Update changed the incident recorder (-before +after):\n%s", diff)
			}
			MustView(t, s, func(tx warden.ReadTx) error {
				_, err := tx.Incident(three.ID)
				wantCode(t, err, warden.ENOTFOUND)
				_, err = tx.Requirement(three.ID)
				wantCode(t, err, warden.ENOTFOUND)
				return nil
			})
			// The number and id the failed Update used are free.
			MustUpdate(t, s, func(tx warden.Tx) error {
				n, err := tx.NextCounter("incident")
				if err != nil {
					return err
				}
				if n != 3 {
					t.Errorf("NextCounter after the failed Update = %d, want 3", n)
				}
				return tx.CreateIncident(three)
			})
			checkStats(t, s, "after the failed Update and a create", nil)
		})
	}
}

// testIncidentsConcurrent runs Updates that each report an incident, some
// of them failing after all their writes: every committed incident has a
// number of its own, and the failures leave nothing behind.
func testIncidentsConcurrent(t *testing.T, h Harness) {
	const goroutines, each = 8, 15
	s := h.New(t)
	fails := func(g, i int) bool { return (g*each+i)%3 == 1 }
	var (
		mu      sync.Mutex
		numbers = map[uint64]int{} // committed number → g*each+i
		wg      sync.WaitGroup
		errs    = make(chan error, goroutines)
	)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				var n uint64
				err := s.Update(t.Context(), func(tx warden.Tx) error {
					var err error
					if n, err = tx.NextCounter("incident"); err != nil {
						return err
					}
					inc := incident(int(n), warden.IncidentClasses[g%len(warden.IncidentClasses)], warden.SeverityCritical, warden.StateOpen)
					inc.Source = sprintf("op-%d", g*each+i)
					if err := tx.CreateIncident(inc); err != nil {
						return err
					}
					if err := tx.PutRequirement(requirement(int(n), i, true, true)); err != nil {
						return err
					}
					if err := tx.EnqueueDelivery(delivery(inc.ID, "https://hooks.example/a", i)); err != nil {
						return err
					}
					if fails(g, i) {
						return errBoom
					}
					return nil
				})
				switch {
				case fails(g, i) && !errors.Is(err, errBoom):
					errs <- fmt.Errorf("op %d/%d: Update returned %v, want errBoom", g, i, err)
					return
				case !fails(g, i) && err != nil:
					errs <- fmt.Errorf("op %d/%d: Update: %v", g, i, err)
					return
				case err == nil:
					mu.Lock()
					if prev, dup := numbers[n]; dup {
						mu.Unlock()
						errs <- fmt.Errorf("number %d committed twice: ops %d and %d", n, prev, g*each+i)
						return
					}
					numbers[n] = g*each + i
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	want := 0
	for g := range goroutines {
		for i := range each {
			if !fails(g, i) {
				want++
			}
		}
	}
	snap := mustIncidentSnapshot(t, s, at(1000), "incident")
	if len(numbers) != want || len(snap.Incidents) != want || snap.Stats.TotalIncidents != int64(want) {
		t.Fatalf("%d Updates succeeded, %d incidents stored, stats total %d; want %d each",
			len(numbers), len(snap.Incidents), snap.Stats.TotalIncidents, want)
	}
	if snap.Counters["incident"] != uint64(want) {
		t.Errorf("Counter(incident) = %d, want %d (one per committed increment)", snap.Counters["incident"], want)
	}
	for _, i := range snap.Incidents {
		op, ok := numbers[i.Number]
		if !ok || i.Source != sprintf("op-%d", op) {
			t.Errorf("stored incident %s (%s) was not committed as number %d", i.ID, i.Source, i.Number)
		}
	}
	if diff := cmp.Diff(recountStats(snap.Incidents), snap.Stats); diff != "" {
		t.Errorf("IncidentStats differ from a recount (-recount +got):\n%s", diff)
	}
	if len(snap.Requirements) != want || len(snap.Deliveries) != want {
		t.Errorf("%d requirements and %d deliveries stored, want %d each", len(snap.Requirements), len(snap.Deliveries), want)
	}
}

func testIncidentReopen(t *testing.T, h Harness) {
	if h.Reopen == nil {
		t.Skip("the harness cannot reopen a store")
	}
	s := h.New(t)
	w := newIncidentWorld()
	MustUpdate(t, s, w.put)
	sent := *w.delivery
	sent.Status, sent.Attempts, sent.LastStatus, sent.DeliveredAt = warden.DeliveryDelivered, 1, 204, at(20)
	second := delivery(incidentID(2), "https://hooks.example/b", 30)
	MustUpdate(t, s, func(tx warden.Tx) error {
		if err := tx.UpdateDelivery(&sent); err != nil {
			return err
		}
		return tx.EnqueueDelivery(second)
	})
	before := mustIncidentSnapshot(t, s, at(1000), "incident")

	s = h.Reopen(t, s)
	if diff := cmp.Diff(before, mustIncidentSnapshot(t, s, at(1000), "incident")); diff != "" {
		t.Errorf("incident recorder after reopen (-before +after):\n%s", diff)
	}
	// Uniqueness and counters carry on where they were.
	dupNumber := incident(2, warden.ClassToolCallBurst, warden.SeverityLow, warden.StateOpen)
	dupNumber.ID = "INC-other"
	for _, i := range []*warden.Incident{w.incidents[0], dupNumber} {
		err := s.Update(t.Context(), func(tx warden.Tx) error { return tx.CreateIncident(i) })
		wantCode(t, err, warden.ECONFLICT)
	}
	three := incident(3, warden.ClassToolCallBurst, warden.SeverityHigh, warden.StateOpen)
	third := delivery(three.ID, "https://hooks.example/a", 40)
	upd := cloneIncident(w.incidents[0])
	upd.State, upd.ContainmentPending = warden.StateContained, false
	MustUpdate(t, s, func(tx warden.Tx) error {
		n, err := tx.NextCounter("incident")
		if err != nil {
			return err
		}
		if n != 3 {
			t.Errorf("NextCounter after reopen = %d, want 3", n)
		}
		if err := tx.CreateIncident(three); err != nil {
			return err
		}
		if err := tx.UpdateIncident(upd); err != nil {
			return err
		}
		return tx.EnqueueDelivery(third)
	})
	for _, d := range before.Deliveries {
		if d.ID == third.ID {
			t.Errorf("a delivery enqueued after reopen got id %d, which delivery %s already has", third.ID, d.URL)
		}
	}
	checkStats(t, s, "after reopen and more writes", &warden.IncidentStats{
		TotalIncidents: 3, OpenIncidents: 2, ContainedCount: 1, ResolvedCount: 1,
		ByClass: map[string]int64{
			warden.ClassIntegrityViolation: 1, warden.ClassPromptInjection: 1, warden.ClassToolCallBurst: 1,
		},
		OpenBySeverity: map[string]int64{"critical": 1, "high": 1},
	})
}

// checkTotals checks that Store.Totals, asked while no Update runs, gives
// want (read from the tables).
func checkTotals(t *testing.T, s warden.Store, when string, want warden.Totals) {
	t.Helper()
	got, err := s.Totals(t.Context())
	if err != nil {
		t.Fatalf("Totals %s: %v", when, err)
	}
	if got != want {
		t.Errorf("Totals %s = %+v, the tables say %+v", when, got, want)
	}
}

// tablesTotals reads what Totals must give from the tables.
func tablesTotals(t *testing.T, s warden.Store) warden.Totals {
	t.Helper()
	var want warden.Totals
	MustView(t, s, func(tx warden.ReadTx) error {
		head, err := tx.Head()
		if err != nil {
			return err
		}
		st, err := tx.IncidentStats()
		if err != nil {
			return err
		}
		want = warden.Totals{Receipts: head.Size, TotalIncidents: st.TotalIncidents, OpenIncidents: st.OpenIncidents}
		return nil
	})
	return want
}

// testTotals: Totals follows every commit, including ops that share a
// commit with failed ones (whose writes are undone) and state changes
// within one Update, and starts from the stored values after a reopen.
func testTotals(t *testing.T, h Harness) {
	s := h.New(t)
	checkTotals(t, s, "on an empty store", warden.Totals{})

	const goroutines, each = 16, 12
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				n := 1 + g*each + i
				err := s.Update(t.Context(), func(tx warden.Tx) error {
					inc := incident(n, warden.ClassToolCallBurst, warden.SeverityHigh, warden.StateOpen)
					if err := tx.CreateIncident(inc); err != nil {
						return err
					}
					if _, err := tx.Append(draft(n)); err != nil {
						return err
					}
					if n%3 == 0 { // resolved within the same Update
						done := cloneIncident(inc)
						done.State = warden.StateResolved
						if err := tx.UpdateIncident(done); err != nil {
							return err
						}
					}
					if n%4 == 0 {
						return errors.New("refused after writing")
					}
					return nil
				})
				if (n%4 == 0) != (err != nil) {
					t.Errorf("Update %d: %v", n, err)
				}
			}
		}()
	}
	wg.Wait()
	want := tablesTotals(t, s)
	n := goroutines * each
	if kept := int64(n - n/4); want.TotalIncidents != kept || want.Receipts != uint64(kept) {
		t.Fatalf("tables hold %+v, want %d incidents and receipts", want, kept)
	}
	checkTotals(t, s, "after concurrent Updates, a quarter refused", want)

	if h.Reopen == nil {
		return
	}
	s = h.Reopen(t, s)
	checkTotals(t, s, "after reopening", want)
	MustUpdate(t, s, func(tx warden.Tx) error {
		_, err := tx.Append(draft(n + 1))
		return err
	})
	want.Receipts++
	checkTotals(t, s, "after reopening and one commit", want)
}

// testCountersConcurrent: Updates that share commits, a third failing
// after taking a number, leave the successful ones a dense run of numbers
// and the counter at its last.
func testCountersConcurrent(t *testing.T, h Harness) {
	s := h.New(t)
	const goroutines, each = 16, 20
	var mu sync.Mutex
	var got []uint64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				var n uint64
				err := s.Update(t.Context(), func(tx warden.Tx) (err error) {
					if n, err = tx.NextCounter("incident"); err != nil {
						return err
					}
					if (g*each+i)%3 == 0 {
						return errBoom
					}
					return nil
				})
				if err == nil {
					mu.Lock()
					got = append(got, n)
					mu.Unlock()
				} else if !errors.Is(err, errBoom) {
					t.Errorf("Update: %v", err)
				}
			}
		})
	}
	wg.Wait()
	slices.Sort(got)
	for k, n := range got {
		if n != uint64(k+1) {
			t.Fatalf("the successful Updates took numbers %v, want 1..%d each once", got, len(got))
		}
	}
	if c := counterValue(t, s, "incident"); c != uint64(len(got)) {
		t.Errorf("Counter(incident) = %d after %d successful increments", c, len(got))
	}
}

// testIncidentStatsConcurrent: an Update reads the counters as its own
// changes and every committed Update before it left them, even when they
// share a commit: concurrent Updates that each create an incident, a third
// of them failing afterwards, see the committed ones' totals 1..N.
func testIncidentStatsConcurrent(t *testing.T, h Harness) {
	s := h.New(t)
	const goroutines, each = 16, 15
	var mu sync.Mutex
	var seen []int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				n := 1 + g*each + i
				var total int64
				err := s.Update(t.Context(), func(tx warden.Tx) error {
					if err := tx.CreateIncident(incident(n, warden.ClassToolCallBurst, warden.SeverityHigh, warden.StateOpen)); err != nil {
						return err
					}
					st, err := tx.IncidentStats()
					if err != nil {
						return err
					}
					total = st.TotalIncidents
					if n%3 == 0 {
						return errBoom
					}
					return nil
				})
				if err == nil {
					mu.Lock()
					seen = append(seen, total)
					mu.Unlock()
				} else if !errors.Is(err, errBoom) {
					t.Errorf("Update: %v", err)
				}
			}
		})
	}
	wg.Wait()
	slices.Sort(seen)
	for k, n := range seen {
		if n != int64(k+1) {
			t.Fatalf("the committed Updates saw totals %v, want 1..%d each once", seen, len(seen))
		}
	}
	checkStats(t, s, "after concurrent creates", nil)
}

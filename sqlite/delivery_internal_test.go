package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/contain"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/stack"
	"github.com/warden-sh/warden/storetest"
)

// TestDueDeliveryQueryPlans checks that the outbox's reads seek the
// destination index and never scan the table: finding the destinations
// with something due MUST NOT cost more with a dead receiver's backlog,
// one destination's due deliveries come in index order, and the backlog
// count reads pending entries only.
func TestDueDeliveryQueryPlans(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "w.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tt := range []struct {
		name      string
		query     string
		args      []any
		tempOrder bool // may sort its (few) result rows
	}{
		{"DueDestinations", dueDestinationsSQL, []any{int64(0), 10}, true},
		{"DueDeliveries", dueDeliveriesSQL, []any{"https://hooks.example", int64(0), 10}, false},
		{"CountPendingDeliveries", countPendingDeliveriesSQL, nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			plan := queryPlan(t, db, tt.query, tt.args...)
			searches := 0
			for _, step := range plan {
				switch {
				case strings.Contains(step, "webhook_deliveries") && !strings.Contains(step, "INDEX webhook_deliveries_destination "):
					t.Errorf("plan step %q reads webhook_deliveries without the destination index", step)
				case strings.HasPrefix(step, "SEARCH webhook_deliveries"):
					searches++
				case strings.Contains(step, "TEMP B-TREE") && !tt.tempOrder:
					t.Errorf("plan step %q sorts: the index order is not used", step)
				}
			}
			if searches == 0 {
				t.Errorf("no step seeks webhook_deliveries; plan:\n%s", strings.Join(plan, "\n"))
			}
			if t.Failed() {
				t.Logf("plan:\n%s", strings.Join(plan, "\n"))
			}
		})
	}
}

// queryPlan returns the steps of EXPLAIN QUERY PLAN for query.
func queryPlan(t *testing.T, db *DB, query string, args ...any) []string {
	t.Helper()
	var plan []string
	storetest.MustView(t, db, func(tx warden.ReadTx) error {
		rows, err := tx.(*viewTx).q.query("EXPLAIN QUERY PLAN "+query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				return err
			}
			plan = append(plan, detail)
		}
		return rows.Err()
	})
	return plan
}

// mustSchemaAt creates a database at path with the migrations up to
// version applied, as a release of that version left it.
func mustSchemaAt(t *testing.T, path string, version int) *sql.DB {
	t.Helper()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	ms = slices.DeleteFunc(ms, func(m migration) bool { return m.version > version })
	raw, err := sql.Open("sqlite", dsn(path, "", "busy_timeout(10000)"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	conn, err := raw.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := applyMigrations(t.Context(), conn, ms); err != nil {
		t.Fatal(err)
	}
	return raw
}

// insertOldDelivery writes d as a schema-6 store did: no destination.
func insertOldDelivery(t *testing.T, raw *sql.Tx, d *warden.Delivery) {
	t.Helper()
	res, err := raw.Exec(`INSERT INTO webhook_deliveries (incident_id, status, next_attempt_ns, record) VALUES (?, ?, ?, '{}')`,
		d.IncidentID, d.Status, d.NextAttemptAt.UnixNano())
	if err != nil {
		t.Fatal(err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		t.Fatal(err)
	}
	d.ID = uint64(id)
	rec, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec("UPDATE webhook_deliveries SET record = ? WHERE id = ?", string(rec), id); err != nil {
		t.Fatal(err)
	}
}

// Deliveries written before migration 7 get their destination when it is
// applied, pending ones at least, and are sent in their own lanes: a
// hanging receiver's old backlog, longer than a lane, does not hold up
// another receiver's old delivery.
func TestMigrationBackfillsDestinations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.db")
	raw := mustSchemaAt(t, path, 6)

	release := make(chan struct{})
	var hung atomic.Int64
	stuck := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		hung.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(stuck.Close)
	got := make(chan string, 1)
	live := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get(contain.HeaderDelivery)
	}))
	t.Cleanup(live.Close)
	t.Cleanup(func() { close(release) }) // runs first: lets the hung handlers return

	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	old := func(url, status string, i int) *warden.Delivery {
		return &warden.Delivery{Event: warden.EventContainment, URL: url, Payload: json.RawMessage(`{"event":"containment"}`),
			IncidentID: "INC-1", Status: status, NextAttemptAt: now.Add(time.Duration(i-10_000) * time.Second), CreatedAt: now}
	}
	// More than two backfill batches of the hanging receiver's, then one
	// pending and one delivered to the live receiver.
	tx, err := raw.Begin()
	if err != nil {
		t.Fatal(err)
	}
	var stuckDs []*warden.Delivery
	for i := range 2*backfillBatch + 40 {
		d := old(stuck.URL+"/audit", warden.DeliveryPending, i)
		insertOldDelivery(t, tx, d)
		stuckDs = append(stuckDs, d)
	}
	liveD := old(live.URL+"/oncall", warden.DeliveryPending, 2*backfillBatch+50)
	insertOldDelivery(t, tx, liveD)
	done := old(live.URL+"/oncall", warden.DeliveryDelivered, 2*backfillBatch+51)
	insertOldDelivery(t, tx, done)
	if err := errors.Join(tx.Commit(), raw.Close()); err != nil {
		t.Fatal(err)
	}

	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dests := map[uint64]string{}
	storetest.MustView(t, db, func(tx warden.ReadTx) error {
		rows, err := tx.(*viewTx).q.query("SELECT id, destination FROM webhook_deliveries")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id uint64
			var dest string
			if err := rows.Scan(&id, &dest); err != nil {
				return err
			}
			dests[id] = dest
		}
		return rows.Err()
	})
	stuckDest, liveDest := warden.Destination(stuckDs[0].URL), warden.Destination(liveD.URL)
	for _, d := range stuckDs {
		if dests[d.ID] != stuckDest {
			t.Fatalf("pending delivery %d to %s has destination %q after the migration", d.ID, d.URL, dests[d.ID])
		}
	}
	if dests[liveD.ID] != liveDest {
		t.Fatalf("pending delivery %d to %s has destination %q after the migration", liveD.ID, liveD.URL, dests[liveD.ID])
	}
	if dests[done.ID] != "" {
		t.Errorf("delivered delivery %d got destination %q; finished rows are left as they were", done.ID, dests[done.ID])
	}
	storetest.MustView(t, db, func(tx warden.ReadTx) error {
		gotDests, err := tx.DueDestinations(now, 10)
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]string{stuckDest, liveDest}, gotDests); diff != "" {
			t.Errorf("DueDestinations after the migration (-want +got):\n%s", diff)
		}
		due, err := tx.DueDeliveries(now, liveDest, 10)
		if err != nil {
			return err
		}
		if len(due) != 1 || due[0].ID != liveD.ID {
			t.Errorf("DueDeliveries(%s) after the migration = %d deliveries, want delivery %d", liveDest, len(due), liveD.ID)
		}
		return nil
	})

	st, err := stack.New(stack.Config{Core: engine.Options{Store: db, Clock: func() time.Time { return now }}})
	if err != nil {
		t.Fatal(err)
	}
	sender := &contain.WebhookSender{Outbox: st.Recorder, Clock: func() time.Time { return now }, Timeout: time.Hour, PollInterval: 10 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan error, 1)
	go func() { stopped <- sender.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	select {
	case id := <-got:
		if want := strconv.FormatUint(liveD.ID, 10); id != want {
			t.Errorf("live receiver got delivery %s, want %s", id, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the live receiver's old delivery was not sent (the hanging receiver got %d requests)", hung.Load())
	}
}

// Incidents stored before migration 8 are counted into its open-by-class
// counters when it is applied: the metrics and the replay then agree with
// the incidents.
func TestMigrationCountsOpenIncidentsByClass(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.db")
	raw := mustSchemaAt(t, path, 7)
	incs := []*warden.Incident{
		{ID: "INC-1", Number: 1, Class: warden.ClassToolCallBurst, Severity: warden.SeverityHigh, State: warden.StateOpen},
		{ID: "INC-2", Number: 2, Class: warden.ClassToolCallBurst, Severity: warden.SeverityHigh, State: warden.StateContained},
		{ID: "INC-3", Number: 3, Class: warden.ClassToolCallBurst, Severity: warden.SeverityLow, State: warden.StateContainmentFailed},
		{ID: "INC-4", Number: 4, Class: warden.ClassPromptInjection, Severity: warden.SeverityCritical, State: warden.StateResolved},
		{ID: "INC-5", Number: 5, Class: warden.ClassPromptInjection, Severity: warden.SeverityCritical, State: warden.StateAcknowledged},
	}
	for _, i := range incs {
		i.CreatedAt, i.Source, i.Description, i.ReportedBy = warden.FormatTime(time.Unix(int64(i.Number), 0)), "s", "d", "r"
		i.Evidence, i.ContainmentActions, i.ContainmentResults = map[string]string{}, []string{}, []warden.ContainmentResult{}
		rec, err := json.Marshal(i)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.Exec(`INSERT INTO incidents (id, number, class, severity_rank, state, created_ns, containment_pending, record) VALUES (?, ?, ?, ?, ?, ?, 0, ?)`,
			i.ID, i.Number, i.Class, i.Severity.Rank(), string(i.State), int64(i.Number)*1e9, string(rec)); err != nil {
			t.Fatal(err)
		}
	}
	raw.Close()
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got []warden.OpenIncidentCount
	storetest.MustView(t, db, func(tx warden.ReadTx) (err error) {
		got, err = tx.CountOpenIncidents()
		return err
	})
	want := []warden.OpenIncidentCount{
		{Class: warden.ClassToolCallBurst, Severity: warden.SeverityLow, Open: 1},
		{Class: warden.ClassToolCallBurst, Severity: warden.SeverityHigh, Open: 2},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CountOpenIncidents after the migration (-want +got):\n%s", diff)
	}
}

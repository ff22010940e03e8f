package contain_test

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/recorder"
	"github.com/warden-sh/warden/engine/stack"
	"github.com/warden-sh/warden/sqlite"
)

func mustStore(t testing.TB) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "warden.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// mustOutbox is the recorder over db, as a server wires the sender to it:
// outcomes go through the rules.
func mustOutbox(t testing.TB, db warden.Store, clock *testClock) *recorder.Recorder {
	t.Helper()
	return mustOutboxAt(t, db, clock.Now)
}

// mustOutboxAt is mustOutbox on any clock.
func mustOutboxAt(t testing.TB, db warden.Store, clock warden.Clock) *recorder.Recorder {
	t.Helper()
	st, err := stack.New(stack.Config{Core: engine.Options{Store: db, Clock: clock}})
	if err != nil {
		t.Fatal(err)
	}
	return st.Recorder
}

// failureReceipts returns the delivery ids of the webhook_delivery_failed
// receipts, oldest first.
func failureReceipts(t *testing.T, db warden.Store) []uint64 {
	t.Helper()
	var out []uint64
	err := db.View(context.Background(), func(tx warden.ReadTx) error {
		rs, err := tx.Receipts(warden.ReceiptFilter{Type: warden.ReceiptWebhookFailed, Limit: warden.MaxPageSize})
		for _, r := range rs {
			var b struct {
				DeliveryID uint64 `json:"delivery_id"`
			}
			if err := json.Unmarshal(r.Body, &b); err != nil {
				return err
			}
			out = append(out, b.DeliveryID)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustEnqueue(t *testing.T, db warden.Store, d *warden.Delivery) *warden.Delivery {
	t.Helper()
	if err := db.Update(context.Background(), func(tx warden.Tx) error { return tx.EnqueueDelivery(d) }); err != nil {
		t.Fatal(err)
	}
	return d
}

func mustDeliveries(t *testing.T, db warden.Store) map[uint64]*warden.Delivery {
	t.Helper()
	out := map[uint64]*warden.Delivery{}
	err := db.View(context.Background(), func(tx warden.ReadTx) error {
		ds, err := tx.Deliveries(warden.DeliveryFilter{Limit: 1000})
		for _, d := range ds {
			out[d.ID] = d
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRunOnceRecordsOutcomes(t *testing.T) {
	db := mustStore(t)
	ok := newTarget(t, nil)
	down := newTarget(t, status(http.StatusServiceUnavailable))
	clock := newClock()
	s := newSender(clock)
	s.Outbox = mustOutbox(t, db, clock)
	s.MaxAttempts = 2

	good := testDelivery(ok.URL)
	good.NextAttemptAt = clock.Now()
	mustEnqueue(t, db, good)
	bad := testDelivery(down.URL)
	bad.NextAttemptAt = clock.Now()
	mustEnqueue(t, db, bad)
	later := testDelivery(ok.URL)
	later.NextAttemptAt = clock.Now().Add(time.Minute)
	mustEnqueue(t, db, later)

	n, err := s.RunOnce(context.Background())
	if err != nil || n != 2 {
		t.Fatalf("RunOnce = %d, %v; want the 2 due deliveries", n, err)
	}
	got := mustDeliveries(t, db)
	if d := got[good.ID]; d.Status != warden.DeliveryDelivered || d.Attempts != 1 || !d.DeliveredAt.Equal(clock.Now()) {
		t.Errorf("good delivery = %+v", d)
	}
	if d := got[bad.ID]; d.Status != warden.DeliveryPending || d.Attempts != 1 || d.LastStatus != 503 || !d.NextAttemptAt.Equal(clock.Now().Add(time.Second)) {
		t.Errorf("bad delivery = %+v", d)
	}
	if d := got[later.ID]; d.Status != warden.DeliveryPending || d.Attempts != 0 {
		t.Errorf("not-yet-due delivery = %+v", d)
	}

	// Nothing is due until the backoff has passed.
	if n, err := s.RunOnce(context.Background()); n != 0 || err != nil {
		t.Errorf("RunOnce before the backoff = %d, %v", n, err)
	}
	clock.Advance(time.Second)
	if n, err := s.RunOnce(context.Background()); n != 1 || err != nil {
		t.Errorf("RunOnce after the backoff = %d, %v", n, err)
	}
	if d := mustDeliveries(t, db)[bad.ID]; d.Status != warden.DeliveryFailed || d.Attempts != 2 {
		t.Errorf("after MaxAttempts: %+v", d)
	}
	if finals := failureReceipts(t, db); len(finals) != 1 || finals[0] != bad.ID {
		t.Errorf("webhook_delivery_failed receipts for deliveries %v, want [%d]", finals, bad.ID)
	}
	if n := len(down.requests()); n != 2 {
		t.Errorf("failing receiver got %d requests, want 2", n)
	}
	if n := len(ok.requests()); n != 1 {
		t.Errorf("good receiver got %d requests, want 1", n)
	}
}

func TestRunSendsOnWake(t *testing.T) {
	db := mustStore(t)
	got := make(chan string, 10)
	rx := newTarget(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("X-Warden-Delivery")
	})
	clock := newClock()
	s := newSender(clock)
	s.Outbox = mustOutbox(t, db, clock)
	s.PollInterval = time.Hour // only Wake can make it look again

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	for i := range 3 {
		d := testDelivery(rx.URL)
		d.NextAttemptAt = clock.Now()
		mustEnqueue(t, db, d)
		s.Wake()
		select {
		case id := <-got:
			if id != strconv.FormatUint(d.ID, 10) {
				t.Errorf("round %d: receiver got delivery %s, want %d", i, id, d.ID)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: Wake did not make Run send", i)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop when its context ended")
	}
}

// A send cut short by shutdown is not counted as the receiver's failure.
func TestRunOnceCanceledSendIsNotRecorded(t *testing.T) {
	db := mustStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rx := newTarget(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		cancel()
		<-r.Context().Done()
	})
	clock := newClock()
	s := newSender(clock)
	s.Outbox = mustOutbox(t, db, clock)
	d := testDelivery(rx.URL)
	d.NextAttemptAt = clock.Now()
	mustEnqueue(t, db, d)
	if n, _ := s.RunOnce(ctx); n != 0 {
		t.Errorf("RunOnce counted %d sends", n)
	}
	if got := mustDeliveries(t, db)[d.ID]; got.Attempts != 0 || got.Status != warden.DeliveryPending {
		t.Errorf("delivery = %+v, want untouched", got)
	}
}

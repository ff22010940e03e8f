package contain_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/contain"
)

// prompt bounds, in real time, how long a healthy receiver may wait.
const prompt = 2 * time.Second

// stuckReceiver is a receiver that hangs every request until the client
// gives up, counting requests per delivery and how many overlap.
type stuckReceiver struct {
	*target
	mu       sync.Mutex
	inFlight map[string]int // by X-Warden-Delivery
	total    int            // requests in flight
	peak     int            // most requests in flight at once
	overlaps []string       // deliveries received while already in flight
}

func newStuckReceiver(t *testing.T) *stuckReceiver {
	t.Helper()
	sr := &stuckReceiver{inFlight: map[string]int{}}
	sr.target = newTarget(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(contain.HeaderDelivery)
		sr.mu.Lock()
		if sr.inFlight[id] > 0 {
			sr.overlaps = append(sr.overlaps, id)
		}
		sr.inFlight[id]++
		sr.total++
		sr.peak = max(sr.peak, sr.total)
		sr.mu.Unlock()
		<-r.Context().Done()
		sr.mu.Lock()
		sr.inFlight[id]--
		sr.total--
		sr.mu.Unlock()
	})
	return sr
}

func (sr *stuckReceiver) state() (total, peak int, overlaps []string) {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	return sr.total, sr.peak, slices.Clone(sr.overlaps)
}

// perDelivery counts the requests a target received by X-Warden-Delivery.
func perDelivery(tg *target) map[string]int {
	out := map[string]int{}
	for _, r := range tg.requests() {
		out[r.Header.Get(contain.HeaderDelivery)]++
	}
	return out
}

// mustEnqueueN enqueues n deliveries to url, due now, in one transaction.
func mustEnqueueN(t *testing.T, db warden.Store, clock *testClock, url string, n int) []*warden.Delivery {
	t.Helper()
	ds := make([]*warden.Delivery, n)
	err := db.Update(context.Background(), func(tx warden.Tx) error {
		for i := range ds {
			ds[i] = testDelivery(url)
			ds[i].NextAttemptAt = clock.Now()
			if err := tx.EnqueueDelivery(ds[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// startRun runs s until the returned stop is called (or the test ends);
// stop cancels Run and fails the test unless it returns within prompt.
func startRun(t *testing.T, s *contain.WebhookSender) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		t.Helper()
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v", err)
				}
			case <-time.After(prompt):
				t.Errorf("Run did not return within %s of its context ending", prompt)
			}
		})
	}
	t.Cleanup(stop) // before the targets close: they wait for their requests
	return stop
}

// waitFor polls cond until it holds or within passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// allDelivered reports whether every delivery of ds is delivered in db.
func allDelivered(t *testing.T, db warden.Store, ds []*warden.Delivery) bool {
	got := mustDeliveries(t, db)
	for _, d := range ds {
		if got[d.ID].Status != warden.DeliveryDelivered {
			return false
		}
	}
	return true
}

// A receiver that hangs holds up only its own deliveries: those to another
// receiver arrive promptly, also when the hanging one's backlog is older
// and longer than a batch, and also for deliveries enqueued while it hangs.
// Its deliveries are each sent once at a time, a few at once, and on
// shutdown they are abandoned unrecorded, to be sent again later.
func TestRunHangingReceiverDoesNotDelayOthers(t *testing.T) {
	db := mustStore(t)
	stuck := newStuckReceiver(t)
	healthy := newTarget(t, nil)
	clock := newClock()
	s := newSender(clock)
	s.Outbox = mustOutbox(t, db, clock)
	s.Timeout = time.Hour // it hangs for the whole test
	s.PollInterval = 10 * time.Millisecond

	stuckDs := mustEnqueueN(t, db, clock, stuck.URL+"/audit", contain.WebhookBatch+50)
	first := mustEnqueueN(t, db, clock, healthy.URL+"/oncall", 10)
	stop := startRun(t, s)

	waitFor(t, prompt, "the healthy receiver's deliveries are not all delivered", func() bool {
		return allDelivered(t, db, first)
	})
	waitFor(t, prompt, "the hanging receiver got no request", func() bool {
		total, _, _ := stuck.state()
		return total > 0
	})

	// While it still hangs, newer deliveries elsewhere go through too.
	clock.Advance(time.Second)
	second := mustEnqueueN(t, db, clock, healthy.URL+"/oncall", 10)
	s.Wake()
	waitFor(t, prompt, "deliveries enqueued while a receiver hangs are not all delivered", func() bool {
		return allDelivered(t, db, second)
	})
	for id, n := range perDelivery(healthy) {
		if n != 1 {
			t.Errorf("healthy receiver got delivery %s %d times", id, n)
		}
	}

	total, peak, overlaps := stuck.state()
	if total == 0 {
		t.Fatal("the hanging receiver is no longer hanging; the test proves nothing")
	}
	if len(overlaps) > 0 {
		t.Errorf("deliveries sent again while their first send hung: %v", overlaps)
	}
	if peak > 4 {
		t.Errorf("the hanging receiver had %d requests at once, want at most 4", peak)
	}
	for id, n := range perDelivery(stuck.target) {
		if n != 1 {
			t.Errorf("hanging receiver got delivery %s %d times", id, n)
		}
	}

	stop()
	got := mustDeliveries(t, db)
	for _, d := range stuckDs {
		if g := got[d.ID]; g.Status != warden.DeliveryPending || g.Attempts != 0 || !g.NextAttemptAt.Equal(d.NextAttemptAt) {
			t.Fatalf("after shutdown, hanging delivery = %+v; want pending, untouched", g)
		}
	}
}

// A receiver that hangs past the timeout is a failing destination: the
// first round of sends times out (each recorded, with the delivery's own
// backoff), then its breaker lets one probe go at each retry time (1 s,
// then 2 s later). The probes take the deliveries never tried, so none is
// tried twice, and a delivery is never sent while its previous send is in
// flight.
func TestRunHangingReceiverIsProbedPerBreaker(t *testing.T) {
	db := mustStore(t)
	stuck := newStuckReceiver(t)
	clock := newClock()
	co := newCountingOutbox(mustOutbox(t, db, clock))
	s := newSender(clock)
	s.Outbox = co
	s.Timeout = 100 * time.Millisecond
	s.PollInterval = 10 * time.Millisecond
	ds := mustEnqueueN(t, db, clock, stuck.URL, 6)
	startRun(t, s)

	round := quiet(t, co, stuck.target, 1)
	if round == 0 || round > contain.LaneParallel {
		t.Fatalf("the hanging receiver got %d requests before its breaker opened, want 1 to %d", round, contain.LaneParallel)
	}
	got := mustDeliveries(t, db)
	for _, d := range ds {
		g := got[d.ID]
		if g.Attempts == 0 {
			continue
		}
		if g.Status != warden.DeliveryPending || g.Attempts != 1 || !g.NextAttemptAt.Equal(clock.Now().Add(time.Second)) || !strings.Contains(g.LastError, "timed out") {
			t.Errorf("after the first round: delivery = %+v; want pending, timed out, next attempt in 1s", g)
		}
	}
	step := func(d time.Duration, want int, what string) {
		t.Helper()
		clock.Advance(d)
		s.Wake()
		if n := quiet(t, co, stuck.target, want); n != want {
			t.Fatalf("%s: receiver got %d requests in all, want %d", what, n, want)
		}
	}
	step(time.Second-time.Millisecond, round, "just before the retry time")
	step(time.Millisecond, round+1, "at the retry time (one probe)")
	step(time.Second, round+1, "1 s after the failed probe")
	step(time.Second, round+2, "2 s after the failed probe (a second probe)")

	if _, _, overlaps := stuck.state(); len(overlaps) > 0 {
		t.Errorf("deliveries sent while already in flight: %v", overlaps)
	}
	for id, n := range perDelivery(stuck.target) {
		if n != 1 {
			t.Errorf("delivery %s sent %d times; the probes should take those never tried", id, n)
		}
	}
}

// A send abandoned at shutdown is sent again by the next Run.
func TestRunResendsAbandonedSendAfterRestart(t *testing.T) {
	db := mustStore(t)
	got := make(chan struct{}, 1)
	rx := newTarget(t, func(n int, _ http.ResponseWriter, r *http.Request) {
		if n == 1 {
			got <- struct{}{}
			<-r.Context().Done()
		}
	})
	clock := newClock()
	newRun := func() *contain.WebhookSender {
		s := newSender(clock)
		s.Outbox = mustOutbox(t, db, clock)
		s.Timeout = time.Hour
		s.PollInterval = 10 * time.Millisecond
		return s
	}
	d := mustEnqueueN(t, db, clock, rx.URL, 1)[0]
	stop := startRun(t, newRun())
	select {
	case <-got:
	case <-time.After(prompt):
		t.Fatal("the delivery was not sent")
	}
	stop()
	if g := mustDeliveries(t, db)[d.ID]; g.Status != warden.DeliveryPending || g.Attempts != 0 {
		t.Fatalf("after shutdown: %+v; want pending, untouched", g)
	}
	startRun(t, newRun())
	waitFor(t, prompt, "the abandoned delivery was not sent again", func() bool {
		return allDelivered(t, db, []*warden.Delivery{d})
	})
	if g := mustDeliveries(t, db)[d.ID]; g.Attempts != 1 || len(rx.requests()) != 2 {
		t.Errorf("delivery = %+v after %d requests; want 1 recorded attempt, 2 requests", g, len(rx.requests()))
	}
}

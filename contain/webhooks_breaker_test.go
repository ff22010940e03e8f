package contain_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/contain"
)

// countingOutbox is the recorder as the sender sees it, counting what the
// sender asks of it: scans (DueDestinations calls), the rows DueDeliveries
// returns and the outcomes recorded, by destination.
type countingOutbox struct {
	warden.WebhookOutbox
	mu      sync.Mutex
	scans   int
	rows    map[string]int
	maxRead int // most rows one DueDeliveries call returned
	records map[string]int
}

func newCountingOutbox(inner warden.WebhookOutbox) *countingOutbox {
	return &countingOutbox{WebhookOutbox: inner, rows: map[string]int{}, records: map[string]int{}}
}

func (c *countingOutbox) DueDestinations(ctx context.Context, now time.Time, limit int) ([]string, error) {
	dests, err := c.WebhookOutbox.DueDestinations(ctx, now, limit)
	c.mu.Lock()
	c.scans++
	c.mu.Unlock()
	return dests, err
}

func (c *countingOutbox) DueDeliveries(ctx context.Context, now time.Time, dest string, limit int) ([]*warden.Delivery, error) {
	due, err := c.WebhookOutbox.DueDeliveries(ctx, now, dest, limit)
	c.mu.Lock()
	c.rows[dest] += len(due)
	c.maxRead = max(c.maxRead, len(due))
	c.mu.Unlock()
	return due, err
}

func (c *countingOutbox) RecordDelivery(ctx context.Context, d *warden.Delivery) error {
	err := c.WebhookOutbox.RecordDelivery(ctx, d)
	c.mu.Lock()
	c.records[warden.Destination(d.URL)]++
	c.mu.Unlock()
	return err
}

// rowsRead returns how many deliveries DueDeliveries returned in all.
func (c *countingOutbox) rowsRead() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, k := range c.rows {
		n += k
	}
	return n
}

// recorded returns how many outcomes were recorded for url's destination
// and the destinations beneath it (a receiver's base URL counts all its
// paths).
func (c *countingOutbox) recorded(url string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	base, n := warden.Destination(url), 0
	for dest, k := range c.records {
		if dest == base || strings.HasPrefix(dest, strings.TrimSuffix(base, "/")+"/") {
			n += k
		}
	}
	return n
}

func (c *countingOutbox) scanCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.scans
}

// waitScans waits until the sender has begun n more scans, so one scan
// begun after the call has finished.
func (c *countingOutbox) waitScans(t *testing.T, n int) {
	t.Helper()
	start := c.scanCount()
	waitFor(t, 10*time.Second, "the sender stopped scanning", func() bool { return c.scanCount() >= start+n })
}

// refusedURL returns a URL on 127.0.0.1 where nothing listens: connections
// to it are refused at once.
func refusedURL(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		tb.Fatal(err)
	}
	return "http://" + addr + "/hook"
}

// attemptsTo sums the recorded attempts of the deliveries to url's
// destination, and counts those still pending.
func attemptsTo(t *testing.T, db warden.Store, url string) (attempts, pending int) {
	t.Helper()
	dest := warden.Destination(url)
	err := db.View(context.Background(), func(tx warden.ReadTx) error {
		ds, err := tx.Deliveries(warden.DeliveryFilter{Limit: 100_000})
		for _, d := range ds {
			if warden.Destination(d.URL) == dest {
				attempts += d.Attempts
				if d.Status == warden.DeliveryPending {
					pending++
				}
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return attempts, pending
}

// quiet waits until tg has had at least atLeast requests, then no new one
// and every one's outcome recorded across a few of the sender's scans; it
// returns how many requests tg got.
func quiet(t *testing.T, co *countingOutbox, tg *target, atLeast int) int {
	t.Helper()
	waitFor(t, 10*time.Second, "the receiver did not get the requests expected", func() bool {
		return len(tg.requests()) >= atLeast
	})
	var n int
	waitFor(t, 10*time.Second, "the sender kept sending", func() bool {
		n = len(tg.requests())
		co.waitScans(t, 3)
		return len(tg.requests()) == n && co.recorded(tg.URL) == n
	})
	return n
}

// A dead receiver's backlog of 10,000 due deliveries, older than a live
// receiver's, neither delays the live one nor costs a read or a recorded
// attempt per delivery: the dead destination gets one round of sends,
// then its breaker holds the rest (the clock does not move, so no probe
// is due), and the sender never reads more of it than one lane holds.
func TestRunDeadBacklogDoesNotDelayLive(t *testing.T) {
	const backlog = 10_000
	db := mustStore(t)
	dead := refusedURL(t)
	live := newTarget(t, nil)
	clock := newClock()
	co := newCountingOutbox(mustOutbox(t, db, clock))
	s := newSender(clock)
	s.Outbox = co
	s.PollInterval = 10 * time.Millisecond

	mustEnqueueN(t, db, clock, dead, backlog)
	first := mustEnqueueN(t, db, clock, live.URL+"/oncall", 10)
	startRun(t, s)
	waitFor(t, 10*time.Second, "the live receiver's deliveries are not all delivered", func() bool {
		return allDelivered(t, db, first)
	})
	// Later alerts go out as promptly, while the backlog is still there.
	second := mustEnqueueN(t, db, clock, live.URL+"/oncall", 10)
	s.Wake()
	waitFor(t, 10*time.Second, "deliveries enqueued behind the backlog are not all delivered", func() bool {
		return allDelivered(t, db, second)
	})
	quiet(t, co, live, len(first)+len(second))
	for id, n := range perDelivery(live) {
		if n != 1 {
			t.Errorf("live receiver got delivery %s %d times", id, n)
		}
	}

	attempts, pending := attemptsTo(t, db, dead)
	deadDest := warden.Destination(dead)
	co.mu.Lock()
	defer co.mu.Unlock()
	if attempts == 0 || attempts > contain.LaneParallel {
		t.Errorf("%d attempts recorded to the dead receiver, want 1 to %d (one round, then its breaker holds)", attempts, contain.LaneParallel)
	}
	if pending != backlog {
		t.Errorf("%d of the dead receiver's %d deliveries pending, want all", pending, backlog)
	}
	if n := co.records[deadDest]; n != attempts {
		t.Errorf("%d outcomes recorded for the dead receiver, want %d (one per attempt)", n, attempts)
	}
	if n := co.rows[deadDest]; n > contain.LaneDepth {
		t.Errorf("the sender read %d of the dead receiver's deliveries over %d scans, want at most a lane's depth (%d)", n, co.scans, contain.LaneDepth)
	}
	if co.maxRead > contain.LaneDepth {
		t.Errorf("one read returned %d deliveries, want at most a lane's depth (%d)", co.maxRead, contain.LaneDepth)
	}
}

// flakyReceiver answers 503 until healthy is set; then it answers 200,
// holding every request after the first until LaneParallel are in flight
// at once (or a deadline passes), so a lane back at full parallelism shows.
type flakyReceiver struct {
	*target
	healthy  atomic.Bool
	mu       sync.Mutex
	served   int // healthy requests
	inFlight int
	peak     int
	full     chan struct{} // closed once LaneParallel were in flight
}

func newFlakyReceiver(t *testing.T) *flakyReceiver {
	t.Helper()
	fr := &flakyReceiver{full: make(chan struct{})}
	fr.target = newTarget(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		if !fr.healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fr.mu.Lock()
		fr.served++
		first := fr.served == 1
		fr.inFlight++
		if fr.peak = max(fr.peak, fr.inFlight); fr.peak == contain.LaneParallel {
			select {
			case <-fr.full:
			default:
				close(fr.full)
			}
		}
		fr.mu.Unlock()
		if !first {
			select {
			case <-fr.full:
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		}
		fr.mu.Lock()
		fr.inFlight--
		fr.mu.Unlock()
	})
	return fr
}

// A failing receiver opens its lane's breaker: after the first round of
// sends fails, nothing more is sent to it until the retry time (1 s on the
// sender's clock), then one probe; a failed probe doubles the wait. Once a
// probe succeeds the lane is back to full parallelism and the backlog
// drains, each delivery having spent no attempts while the breaker held it.
func TestRunBreakerProbesAndRecovers(t *testing.T) {
	const n = 20
	db := mustStore(t)
	rx := newFlakyReceiver(t)
	clock := newClock()
	co := newCountingOutbox(mustOutbox(t, db, clock))
	s := newSender(clock)
	s.Outbox = co
	s.PollInterval = 10 * time.Millisecond
	ds := mustEnqueueN(t, db, clock, rx.URL, n)
	startRun(t, s)

	round := quiet(t, co, rx.target, 1)
	if round == 0 || round > contain.LaneParallel {
		t.Fatalf("the failing receiver got %d requests before its breaker opened, want 1 to %d", round, contain.LaneParallel)
	}
	step := func(d time.Duration, want int, what string) {
		t.Helper()
		clock.Advance(d)
		s.Wake()
		if got := quiet(t, co, rx.target, want); got != want {
			t.Fatalf("%s: receiver got %d requests in all, want %d", what, got, want)
		}
	}
	step(time.Second-time.Millisecond, round, "just before the retry time")
	step(time.Millisecond, round+1, "at the retry time (one probe)")
	step(time.Second, round+1, "1 s after a failed probe (the wait doubled)")

	rx.healthy.Store(true)
	clock.Advance(time.Second)
	s.Wake()
	waitFor(t, 10*time.Second, "the backlog did not drain once the receiver recovered", func() bool {
		return allDelivered(t, db, ds)
	})
	rx.mu.Lock()
	peak := rx.peak
	rx.mu.Unlock()
	if peak != contain.LaneParallel {
		t.Errorf("after recovery the receiver had at most %d requests at once, want %d (full parallelism)", peak, contain.LaneParallel)
	}
	if attempts, _ := attemptsTo(t, db, rx.URL); attempts != n+round+1 {
		t.Errorf("%d attempts recorded, want %d: one per delivery plus the %d failed ones", attempts, n+round+1, round+1)
	}
	for id, k := range perDelivery(rx.target) {
		if k > 2 {
			t.Errorf("delivery %s sent %d times", id, k)
		}
	}
}

// Only the destination's failures open its breaker: no answer, a 5xx or a
// 429. A 4xx is the delivery's own problem; the others to that receiver
// are still all sent.
func TestRunBreakerOpensOnDestinationFailuresOnly(t *testing.T) {
	const n = 12
	for _, tt := range []struct {
		code  int
		trips bool
	}{
		{http.StatusBadRequest, false},
		{http.StatusNotFound, false},
		{http.StatusUnprocessableEntity, false},
		{http.StatusTooManyRequests, true},
		{http.StatusInternalServerError, true},
		{http.StatusServiceUnavailable, true},
	} {
		t.Run(http.StatusText(tt.code), func(t *testing.T) {
			db := mustStore(t)
			rx := newTarget(t, status(tt.code))
			clock := newClock()
			co := newCountingOutbox(mustOutbox(t, db, clock))
			s := newSender(clock)
			s.Outbox = co
			s.PollInterval = 10 * time.Millisecond
			mustEnqueueN(t, db, clock, rx.URL, n)
			startRun(t, s)
			got := quiet(t, co, rx, 1)
			if tt.trips && (got == 0 || got > contain.LaneParallel) {
				t.Errorf("HTTP %d: %d of %d deliveries sent; want the breaker to open after the first round (at most %d)", tt.code, got, n, contain.LaneParallel)
			}
			if !tt.trips && got != n {
				t.Errorf("HTTP %d: %d of %d deliveries sent; want all (a 4xx does not open the breaker)", tt.code, got, n)
			}
		})
	}
}

// One URL's failures do not hold back another URL on the same host (a
// chat service's webhooks fail and rate-limit one URL at a time): a
// destination is the URL, not the host.
func TestRunBreakerIsPerURL(t *testing.T) {
	db := mustStore(t)
	tg := newTarget(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, `{"ok":true}`)
	})
	clock := newClock()
	s := newSender(clock)
	s.Outbox = mustOutbox(t, db, clock)
	s.PollInterval = 10 * time.Millisecond
	mustEnqueueN(t, db, clock, tg.URL+"/bad", 40)
	good := mustEnqueueN(t, db, clock, tg.URL+"/good", 5)
	startRun(t, s)
	waitFor(t, 10*time.Second, "the good URL's deliveries are held by the bad URL's breaker", func() bool {
		return allDelivered(t, db, good)
	})
}

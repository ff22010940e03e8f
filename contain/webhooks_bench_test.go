package contain_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/contain"
)

// BenchmarkWebhookLiveBehindDeadBacklog measures how long an alert to a
// live receiver takes to arrive while 10,000 due deliveries to a receiver
// that refuses connections sit ahead of it in a real SQLite outbox, on the
// system clock. Each iteration enqueues one delivery to a loopback
// receiver, Wakes the sender and waits until the receiver has it. It
// reports the latency (p50, p99, max in ms), the outcomes recorded per
// second for the dead destination while it ran (each one a write
// transaction competing with reports), the delivery rows the sender read
// per second, and how many of the dead destination's it read in all.
func BenchmarkWebhookLiveBehindDeadBacklog(b *testing.B) {
	const backlog = 10_000
	db := mustStore(b)
	dead := refusedURL(b)
	got := make(chan string, 16)
	live := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get(contain.HeaderDelivery)
	}))
	b.Cleanup(live.Close)
	co := newCountingOutbox(mustOutboxAt(b, db, warden.SystemClock))
	s := &contain.WebhookSender{Outbox: co, HMACKey: hookKey, Logger: slog.New(slog.DiscardHandler)}

	enqueue := func(url string, n int) uint64 {
		var id uint64
		err := db.Update(context.Background(), func(tx warden.Tx) error {
			for range n {
				d := testDelivery(url)
				d.NextAttemptAt = time.Now()
				if err := tx.EnqueueDelivery(d); err != nil {
					return err
				}
				id = d.ID
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		return id
	}
	enqueue(dead, backlog)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("Run: %v", err)
		}
	})
	deadDest := warden.Destination(dead)
	// Measure from the dead receiver's first failure on: the backlog is
	// then what it is in steady state.
	deadline := time.Now().Add(10 * time.Second)
	for co.recorded(dead) == 0 {
		if time.Now().After(deadline) {
			b.Fatal("the dead receiver was never attempted")
		}
		time.Sleep(time.Millisecond)
	}

	var lat []time.Duration
	deadBefore, rowsBefore, start := co.recorded(dead), co.rowsRead(), time.Now()
	for b.Loop() {
		t0 := time.Now()
		want := strconv.FormatUint(enqueue(live.URL+"/oncall", 1), 10)
		s.Wake()
		for id := range got {
			if id == want {
				break
			}
		}
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	deadRecords, rows := co.recorded(dead)-deadBefore, co.rowsRead()-rowsBefore

	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[(len(lat)*99)/100]), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(float64(deadRecords)/elapsed.Seconds(), "dead-records/s")
	b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows-read/s")
	co.mu.Lock()
	b.ReportMetric(float64(co.rows[deadDest]), "dead-rows-read")
	co.mu.Unlock()
}

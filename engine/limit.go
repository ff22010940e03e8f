package engine

import (
	"context"
	"sync"
	"time"

	warden "github.com/warden-sh/warden"
	"golang.org/x/time/rate"
)

// floodLimiter bounds how many refusal receipts one source can cause per
// second, so a flood of bad requests cannot fill the disk; what it drops it
// counts, per source, and the count rides on that source's next receipt or
// on a flush (FlushSuppressed): nothing is dropped without being accounted
// for. Sources are principals, or "" for refusals without a trusted one
// (401s), so one principal's flood never silences another's.
type floodLimiter struct {
	mu    sync.Mutex
	rate  rate.Limit
	burst int
	now   warden.Clock
	by    map[string]*floodBucket
}

type floodBucket struct {
	lim        *rate.Limiter
	suppressed uint64
	used       time.Time
}

// maxIdleBuckets bounds the limiter's memory: past it, buckets with nothing
// suppressed and idle for a minute are forgotten (a forgotten bucket is a
// full one, which is what an idle bucket refills to anyway).
const maxIdleBuckets = 10_000

func newFloodLimiter(r float64, burst int, now warden.Clock) *floodLimiter {
	if r <= 0 {
		r = 20
	}
	if burst <= 0 {
		burst = 100
	}
	return &floodLimiter{rate: rate.Limit(r), burst: burst, now: now, by: map[string]*floodBucket{}}
}

// take reports whether a receipt from who may be written now and, if so,
// how many were suppressed before it (the caller records the count, or
// restores it when the receipt fails).
func (l *floodLimiter) take(who string) (bool, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.by[who]
	if b == nil {
		if len(l.by) >= maxIdleBuckets {
			l.prune(now)
		}
		b = &floodBucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.by[who] = b
	}
	b.used = now
	if !b.lim.AllowN(now, 1) {
		b.suppressed++
		return false, 0
	}
	n := b.suppressed
	b.suppressed = 0
	return true, n
}

// restore gives back a count that could not be receipted.
func (l *floodLimiter) restore(who string, n uint64) {
	if n == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.by[who]
	if b == nil {
		b = &floodBucket{lim: rate.NewLimiter(l.rate, l.burst), used: l.now()}
		l.by[who] = b
	}
	b.suppressed += n
}

// drain returns and zeroes every source's suppressed count.
func (l *floodLimiter) drain() map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]uint64{}
	for who, b := range l.by {
		if b.suppressed > 0 {
			out[who], b.suppressed = b.suppressed, 0
		}
	}
	return out
}

func (l *floodLimiter) prune(now time.Time) {
	for who, b := range l.by {
		if b.suppressed == 0 && now.Sub(b.used) > time.Minute {
			delete(l.by, who)
		}
	}
}

// FlushSuppressed receipts the counts of refusals not receipted one by one
// (auth failures, and each principal's denials), so a flood that stops is
// still fully accounted for. Servers call it periodically and at shutdown.
func (e *Core) FlushSuppressed(ctx context.Context) error {
	for who, n := range e.authFail.drain() {
		body := map[string]any{"suppressed": n, "reason": "auth_failure receipts rate-limited; this receipt accounts for them"}
		if who != "" {
			body["principal"] = who
		}
		if err := e.Update(ctx, "engine.FlushSuppressed", func(tx warden.Tx) error {
			_, err := tx.Append(e.Draft(warden.ReceiptAuthFailuresSuppressed, body, "auth"))
			return err
		}); err != nil {
			e.authFail.restore(who, n)
			return err
		}
	}
	drained := e.denials.drain()
	for _, who := range SortedKeys(drained) {
		n := drained[who]
		body := map[string]any{"principal": who, "suppressed": n, "reason": "denial receipts of this principal rate-limited; this receipt accounts for them"}
		if err := e.Update(ctx, "engine.FlushSuppressed", func(tx warden.Tx) error {
			_, err := tx.Append(e.Draft(warden.ReceiptDenialsSuppressed, body, "denied"))
			return err
		}); err != nil {
			for w, n := range drained {
				if w >= who {
					e.denials.restore(w, n)
				}
			}
			return err
		}
	}
	return nil
}

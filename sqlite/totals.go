package sqlite

import (
	"context"
	"fmt"
	"sync"
	"time"

	warden "github.com/warden-sh/warden"
)

// totals is the in-memory copy of the log size and the incident counters
// behind Totals. The writer moves it on at every commit by the deltas of
// the batch's ops; a batch whose transaction finds the log longer than the
// copy knows (another process committed) reads the counters afresh inside
// its transaction instead. Every change to the counters is made with a
// receipt, so an unchanged log size means unchanged counters.
type totals struct {
	mu      sync.Mutex
	known   bool
	t       warden.Totals
	checked time.Time // when t was last known to be current

	refresh sync.Mutex // one read at a time refreshes a stale copy
}

// counterDelta is what a transaction's incident writes add to the totals.
type counterDelta struct{ total, open int64 }

func (d *counterDelta) add(m map[string]int64) {
	d.total += m["total"]
	d.open += m["open"]
}

// current reports whether the copy is known to reflect a log of size.
func (c *totals) current(size uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.known && c.t.Receipts == size
}

// committed records a commit that took the log from loaded to size. fresh,
// when set, are the counters read inside the committed transaction; else d
// is applied to a copy that reflected loaded.
func (c *totals) committed(loaded, size uint64, d counterDelta, fresh *warden.Totals, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case fresh != nil:
		c.t, c.known = *fresh, true
	case c.known && c.t.Receipts == loaded:
		c.t.Receipts = size
		c.t.TotalIncidents += d.total
		c.t.OpenIncidents += d.open
	case c.known && c.t.Receipts == size:
		// A read between COMMIT and here already saw this commit.
	default:
		c.known = false // the next Totals reads them
		return
	}
	c.checked = now
}

// observed records counters read in a snapshot, unless the copy is newer
// (a snapshot that started before a commit the copy has). At an equal log
// size the read wins: it is at least as new, and it corrects a copy that
// anything outside the rules changed without a receipt.
func (c *totals) observed(t warden.Totals, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.known && c.t.Receipts > t.Receipts {
		return
	}
	c.t, c.known, c.checked = t, true, now
}

// get returns the copy and whether it is fresh enough to answer with.
func (c *totals) get(now time.Time, maxAge time.Duration) (warden.Totals, bool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t, c.known, c.known && now.Sub(c.checked) < maxAge
}

// Totals returns the log size and the incident counters from memory (see
// warden.Store.Totals). A copy older than Options.TotalsMaxAge is
// refreshed by one read; calls that meanwhile find a read under way answer
// with the copy they have.
func (db *DB) Totals(ctx context.Context) (warden.Totals, error) {
	c := &db.totals
	t, known, fresh := c.get(time.Now(), db.opts.TotalsMaxAge)
	if fresh {
		return t, nil
	}
	if known {
		if !c.refresh.TryLock() {
			return t, nil
		}
	} else {
		c.refresh.Lock()
	}
	defer c.refresh.Unlock()
	if t, _, fresh := c.get(time.Now(), db.opts.TotalsMaxAge); fresh {
		return t, nil
	}
	var read warden.Totals
	err := db.View(ctx, func(tx warden.ReadTx) error {
		var err error
		read, err = readTotals(tx.(*viewTx).q)
		return err
	})
	if err != nil {
		return warden.Totals{}, err
	}
	c.observed(read, time.Now())
	t, _, _ = c.get(time.Now(), db.opts.TotalsMaxAge)
	return t, nil
}

// sqlTotals reads what Totals keeps.
const sqlTotals = `SELECT (SELECT size FROM ledger_head WHERE id = 1),
	coalesce((SELECT n FROM incident_stats WHERE key = 'total'), 0),
	coalesce((SELECT n FROM incident_stats WHERE key = 'open'), 0)`

func readTotals(q querier) (warden.Totals, error) {
	var t warden.Totals
	var size int64
	if err := q.queryRow(sqlTotals).Scan(&size, &t.TotalIncidents, &t.OpenIncidents); err != nil {
		return t, fmt.Errorf("sqlite.Totals: %w", err)
	}
	t.Receipts = uint64(size)
	return t, nil
}

package engine

import (
	"context"
	"sync"
	"time"

	warden "github.com/warden-sh/warden"
)

// storageHealth remembers an outage of storage: from the first write
// refused as unavailable until ProbeStorage commits again.
type storageHealth struct {
	mu   sync.Mutex
	down *warden.Degradation // nil while writes work
}

// failed counts a write refused with err (EUNAVAILABLE) at now.
func (s *storageHealth) failed(err error, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down == nil {
		s.down = &warden.Degradation{Cause: warden.CauseStorageUnavailable, Message: warden.ErrorMessage(err), Since: warden.FormatTime(now)}
	}
	s.down.FailedWrites++
}

// current returns a copy of the outage, or nil.
func (s *storageHealth) current() *warden.Degradation {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down == nil {
		return nil
	}
	d := *s.down
	return &d
}

func (s *storageHealth) clear() {
	s.mu.Lock()
	s.down = nil
	s.mu.Unlock()
}

// Degraded lists what keeps the server from doing all it should (nil when
// nothing does): a startup check that found tampering (until an operator
// decides), and writes refused because storage is full, from the first
// refusal until ProbeStorage finds that writes work again.
func (e *Core) Degraded() []warden.Degradation {
	var out []warden.Degradation
	if c := e.Ledger(); c.Refuses() {
		d := warden.Degradation{Cause: warden.CauseLedgerTampered, Message: warden.ErrorMessage(e.refuseWrites())}
		if since := e.tamperedSince.Load(); since != nil {
			d.Since = *since
		}
		out = append(out, d)
	}
	if d := e.storage.current(); d != nil {
		out = append(out, *d)
	}
	return out
}

// StorageRecovered is the body of a storage_recovered receipt: the outage
// that ended, and how many writes it refused.
type StorageRecovered struct {
	Cause        string `json:"cause"`
	Message      string `json:"message"`
	Since        string `json:"since"`
	FailedWrites uint64 `json:"failed_writes"`
}

// ProbeStorage finds out whether writes work again after storage became
// unavailable: it appends a storage_recovered receipt describing the
// outage, and once that commits the core is no longer degraded. While
// writes work it does nothing and reports false. A failed probe is not
// counted as a refused write; its error (EUNAVAILABLE while storage is
// still full) is returned. Servers call it every second or so; the
// containment whose outcome could not be recorded waits for it.
func (e *Core) ProbeStorage(ctx context.Context) (recovered bool, err error) {
	d := e.storage.current()
	if d == nil {
		return false, nil
	}
	if err := e.refuseWrites(); err != nil {
		return false, err // nothing is written on a tampered log, this either
	}
	body := StorageRecovered{Cause: d.Cause, Message: d.Message, Since: d.Since, FailedWrites: d.FailedWrites}
	err = e.update(ctx, "engine.ProbeStorage", func(tx warden.Tx) error {
		_, err := tx.Append(e.Draft(warden.ReceiptStorageRecovered, body, "storage"))
		return err
	})
	if err != nil {
		return false, err
	}
	e.storage.clear()
	e.log.Warn("storage writes work again", "cause", d.Cause, "since", d.Since, "failed_writes", d.FailedWrites)
	return true, nil
}

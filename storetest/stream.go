package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
)

// testStreamSnapshot: a Stream is one snapshot, like a View.
func testStreamSnapshot(t *testing.T, h Harness) {
	s := h.New(t)
	MustAppend(t, s, draft(0))
	err := s.Stream(t.Context(), func(tx warden.ReadTx) error {
		before, err := tx.Head()
		if err != nil {
			return err
		}
		MustAppend(t, s, draft(1))
		after, err := tx.Head()
		if err != nil {
			return err
		}
		if diff := cmp.Diff(before, after); diff != "" {
			t.Errorf("head changed within one Stream (-first +second):\n%s", diff)
		}
		_, err = tx.Receipt(1)
		wantCode(t, err, warden.ENOTFOUND)
		return nil
	})
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if got := MustHead(t, s).Size; got != 2 {
		t.Errorf("after the Stream the size is %d, want 2", got)
	}
}

// streamsHeld is how many Streams testStreamsNeverHoldViews holds open at
// once: more than any pool a backend would size by default.
const streamsHeld = 64

// liveness bounds how long a View or Update may take while Streams are
// held: generous, a liveness check and not a benchmark.
const liveness = 5 * time.Second

// testStreamsNeverHoldViews: while many Streams are open (or waiting for
// capacity of their own), Views and Updates still complete; a Stream
// waiting for capacity returns its context's error when it ends.
func testStreamsNeverHoldViews(t *testing.T, h Harness) {
	s := h.New(t)
	MustAppend(t, s, draft(0))
	ctx, cancel := context.WithCancel(t.Context())
	release := make(chan struct{})
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { cancel(); close(release) }) }
	defer stop() // a failing check must not leave Streams blocked
	var opened sync.WaitGroup
	opened.Add(1)
	var once sync.Once
	errs := make(chan error, streamsHeld)
	var wg sync.WaitGroup
	for range streamsHeld {
		wg.Go(func() {
			errs <- s.Stream(ctx, func(tx warden.ReadTx) error {
				if _, err := tx.Head(); err != nil {
					return err
				}
				once.Do(opened.Done)
				<-release
				return nil
			})
		})
	}
	opened.Wait() // at least one Stream holds a snapshot

	done := make(chan error, 1)
	for i := range 20 {
		go func() {
			if i%2 == 0 {
				done <- s.View(context.Background(), func(tx warden.ReadTx) error { _, err := tx.Head(); return err })
			} else {
				done <- s.Update(context.Background(), func(tx warden.Tx) error { _, err := tx.Append(draft(i)); return err })
			}
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("call %d while Streams are held: %v", i, err)
			}
		case <-time.After(liveness):
			t.Fatalf("call %d (a View or an Update) did not complete within %s while %d Streams were held", i, liveness, streamsHeld)
		}
	}

	// Streams still waiting for capacity give up with their context.
	stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Stream: %v, want nil or context.Canceled", err)
		}
	}
}

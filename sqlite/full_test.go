package sqlite_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/sqlite"
	"github.com/warden-sh/warden/storetest"
	"github.com/warden-sh/warden/wardentest"
)

// TestFullDiskIsUnavailable runs the store on a real 4 MiB tmpfs and fills
// it: every Update that cannot be written, alone or in a batch, fails with
// EUNAVAILABLE and a sentence saying storage is full (a client may retry),
// not EINTERNAL; nothing of it is kept; and once space is freed the same
// store commits again, its log intact.
func TestFullDiskIsUnavailable(t *testing.T) {
	dir := wardentest.MustSmallFS(t, 4<<20)
	db := MustOpen(t, filepath.Join(dir, "warden.db"), sqlite.Options{})
	pad := strings.Repeat("x", 2000)
	draft := func(n int) warden.Draft {
		return warden.Draft{Type: "full_disk", Scroll: warden.ScrollSystem, Time: time.Unix(int64(n), 0), Body: map[string]any{"n": n, "pad": pad}}
	}
	before := len(storetest.MustAppend(t, db, draft(0), draft(1)))

	fill := wardentest.MustFill(t, dir)
	checkFull := func(err error) {
		t.Helper()
		if warden.ErrorCode(err) != warden.EUNAVAILABLE || !strings.Contains(warden.ErrorMessage(err), "Storage is full") {
			t.Fatalf("write on a full disk: %v; want code %s saying storage is full", err, warden.EUNAVAILABLE)
		}
	}
	// The WAL may still have room for a few pages; it cannot have room
	// for 64 appends of 2 KB.
	var failed error
	for n := 2; n < 66 && failed == nil; n++ {
		failed = db.Update(context.Background(), func(tx warden.Tx) error { _, err := tx.Append(draft(n)); return err })
	}
	checkFull(failed)
	// A batch of concurrent Updates: each gets the same answer.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			errs[i] = db.Update(context.Background(), func(tx warden.Tx) error { _, err := tx.Append(draft(100 + i)); return err })
		})
	}
	wg.Wait()
	for _, err := range errs {
		checkFull(err)
	}
	kept := len(storetest.CheckLog(t, db))

	fill.Free()
	if got := len(storetest.MustAppend(t, db, draft(200))); got != 1 {
		t.Fatalf("after freeing space: %d receipts appended", got)
	}
	log := storetest.CheckLog(t, db)
	if len(log) != kept+1 || kept < before {
		t.Fatalf("log of %d receipts (%d before filling, %d while full); want one more than while full", len(log), before, kept)
	}
}

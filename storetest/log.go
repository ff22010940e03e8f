package storetest

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
)

func testEmptyStore(t *testing.T, h Harness) {
	s := h.New(t)
	head := MustHead(t, s)
	want := &warden.LogHead{Size: 0, RootHash: nil, Scrolls: map[string]warden.ScrollHead{}}
	if diff := cmp.Diff(want, head); diff != "" {
		t.Errorf("empty head (-want +got):\n%s", diff)
	}
	MustView(t, s, func(tx warden.ReadTx) error {
		_, err := tx.Receipt(0)
		wantCode(t, err, warden.ENOTFOUND)
		_, err = tx.Receipt(1 << 62)
		wantCode(t, err, warden.ENOTFOUND)
		rs, err := tx.Receipts(warden.ReceiptFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if rs == nil || len(rs) != 0 {
			t.Errorf("Receipts on an empty log = %#v, want an empty non-nil slice", rs)
		}
		return nil
	})
}

func testAppendDenseSeqs(t *testing.T, h Harness) {
	s := h.New(t)
	var got []uint64
	for i := range 10 {
		got = append(got, seqs(MustAppend(t, s, draft(i)))...)
	}
	ds := make([]warden.Draft, 5)
	for i := range ds {
		ds[i] = draft(10 + i)
	}
	got = append(got, seqs(MustAppend(t, s, ds...))...)
	want := make([]uint64, 15)
	for i := range want {
		want[i] = uint64(i)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("seqs (-want +got):\n%s", diff)
	}
	CheckLog(t, s)
}

func testSealedFields(t *testing.T, h Harness) {
	s := h.New(t)
	MustAppend(t, s, draft(0))
	d := warden.Draft{
		Type:   "sealed",
		Scroll: warden.ScrollIncident,
		Tags:   []string{"b", "a", "b", "DRILL/x"},
		Time:   at(7),
		Body:   map[string]any{"z": 1, "a": []any{"é", 2.5, nil}, "m": map[string]any{"y": true}},
	}
	r := MustAppend(t, s, d)[0]
	body, err := ledger.Canonical(d.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := &warden.Receipt{
		Seq:           1,
		SchemaVersion: warden.SchemaVersion,
		Type:          "sealed",
		Timestamp:     warden.FormatTime(at(7)),
		Scroll:        warden.ScrollIncident,
		Tags:          []string{"b", "a", "DRILL/x"},
		RootHash:      ledger.BodyHash(body),
		Body:          json.RawMessage(body),
	}
	entry, err := ledger.EntryBytes(want)
	if err != nil {
		t.Fatal(err)
	}
	want.LeafHash = hex.EncodeToString(ledger.LeafHash(entry))
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("Append returned (-want +got):\n%s", diff)
	}
	MustView(t, s, func(tx warden.ReadTx) error {
		got, err := tx.Receipt(1)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Receipt(1) (-want +got):\n%s", diff)
		}
		hs, err := tx.MerkleHashes([]warden.NodeID{{Level: 0, Index: 1}})
		if err != nil {
			return err
		}
		if diff := cmp.Diff(hex.EncodeToString(hs[0]), want.LeafHash); diff != "" {
			t.Errorf("MerkleHashes(leaf 1) differs from the receipt's leaf hash:\n%s", diff)
		}
		return nil
	})
	CheckLog(t, s)
}

func testInvalidDraft(t *testing.T, h Harness) {
	s := h.New(t)
	tests := []struct {
		name  string
		draft warden.Draft
	}{
		{"unknown scroll", warden.Draft{Type: "t", Scroll: "nope", Time: at(0), Body: 1}},
		{"empty scroll", warden.Draft{Type: "t", Time: at(0), Body: 1}},
		{"empty type", warden.Draft{Scroll: warden.ScrollSystem, Time: at(0), Body: 1}},
		{"zero time", warden.Draft{Type: "t", Scroll: warden.ScrollSystem, Body: 1}},
		{"body not JSON", warden.Draft{Type: "t", Scroll: warden.ScrollSystem, Time: at(0), Body: make(chan int)}},
		{"raw body not JSON", warden.Draft{Type: "t", Scroll: warden.ScrollSystem, Time: at(0), Body: json.RawMessage(`{"a":`)}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size := MustHead(t, s).Size
			var got *warden.Receipt
			MustUpdate(t, s, func(tx warden.Tx) error {
				_, err := tx.Append(tt.draft)
				wantCode(t, err, warden.EINVALID)
				// A rejected draft takes no seq and leaves the tx usable.
				got, err = tx.Append(draft(i))
				return err
			})
			if got.Seq != size {
				t.Fatalf("append after a rejected draft got seq %d, want %d", got.Seq, size)
			}
		})
	}
	CheckLog(t, s)
}

func testHeadRoots(t *testing.T, h Harness) {
	s := h.New(t)
	used := warden.Scrolls[:4]
	var ds []warden.Draft
	for i := range 37 {
		d := draft(i)
		d.Scroll = used[(i*i)%len(used)]
		ds = append(ds, d)
	}
	MustAppend(t, s, ds[:20]...)
	CheckLog(t, s)
	for _, d := range ds[20:] {
		MustAppend(t, s, d)
	}
	log := CheckLog(t, s)
	if len(log) != 37 {
		t.Fatalf("log has %d receipts, want 37", len(log))
	}
}

func testReadOwnWrites(t *testing.T, h Harness) {
	s := h.New(t)
	MustAppend(t, s, draft(0), draft(1))
	MustUpdate(t, s, func(tx warden.Tx) error {
		before, err := tx.Head()
		if err != nil {
			return err
		}
		d := draft(2)
		d.Scroll = warden.ScrollTreasury
		r, err := tx.Append(d)
		if err != nil {
			return err
		}
		got, err := tx.Receipt(r.Seq)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(r, got); diff != "" {
			t.Errorf("Receipt inside the Update (-appended +read):\n%s", diff)
		}
		list, err := tx.Receipts(warden.ReceiptFilter{Scroll: warden.ScrollTreasury})
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]uint64{2}, seqs(list)); diff != "" {
			t.Errorf("Receipts inside the Update (-want +got):\n%s", diff)
		}
		after, err := tx.Head()
		if err != nil {
			return err
		}
		if after.Size != before.Size+1 {
			t.Errorf("head size inside the Update = %d, want %d", after.Size, before.Size+1)
		}
		var leaves [][]byte
		for i := range after.Size {
			rr, err := tx.Receipt(i)
			if err != nil {
				return err
			}
			leaves = append(leaves, leafHash(t, rr))
		}
		if want := rootOf(t, leaves); !bytesEqual(after.RootHash, want) {
			t.Errorf("head root inside the Update = %x, want %x", after.RootHash, want)
		}
		if sh := after.Scrolls[warden.ScrollTreasury]; sh.Size != 1 || !bytesEqual(sh.RootHash, rootOf(t, leaves[2:])) {
			t.Errorf("treasury scroll head inside the Update = %+v", sh)
		}
		// The node over leaves 2 and 3 does not exist yet; over 0 and 1 it does.
		hs, err := tx.MerkleHashes([]warden.NodeID{{Level: 1, Index: 0}, {Level: 0, Index: 2}})
		if err != nil {
			return err
		}
		if !bytesEqual(hs[0], ledger.HashChildren(leaves[0], leaves[1])) || !bytesEqual(hs[1], leaves[2]) {
			t.Errorf("MerkleHashes inside the Update = %x", hs)
		}
		return nil
	})
	CheckLog(t, s)
}

func testRollbackOnError(t *testing.T, h Harness) {
	s := h.New(t)
	first := MustAppend(t, s, draft(0))[0]
	headBefore := MustHead(t, s)
	err := s.Update(t.Context(), func(tx warden.Tx) error {
		for i := 1; i <= 3; i++ {
			d := draft(i)
			d.Scroll = warden.ScrollPolicy
			if _, err := tx.Append(d); err != nil {
				return err
			}
		}
		if err := tx.SetMeta("rolled", "back"); err != nil {
			return err
		}
		if err := tx.CreateCredential(&warden.Credential{Name: "ghost", Roles: []warden.Role{warden.RoleRead}, TokenHash: "h-ghost", CreatedAt: at(0)}); err != nil {
			return err
		}
		if err := tx.PutCheckpoint(&warden.Checkpoint{Size: 4, RootHash: make([]byte, 32), Note: "n", CreatedAt: at(0)}); err != nil {
			return err
		}
		return errBoom
	})
	if err != errBoom { //nolint:errorlint // fn's error MUST come back unchanged
		t.Fatalf("Update returned %v, want fn's error unchanged", err)
	}
	if diff := cmp.Diff(headBefore, MustHead(t, s)); diff != "" {
		t.Errorf("head changed by a failed Update (-before +after):\n%s", diff)
	}
	MustView(t, s, func(tx warden.ReadTx) error {
		_, err := tx.Receipt(1)
		wantCode(t, err, warden.ENOTFOUND)
		_, err = tx.Meta("rolled")
		wantCode(t, err, warden.ENOTFOUND)
		_, err = tx.Credential("ghost")
		wantCode(t, err, warden.ENOTFOUND)
		_, err = tx.CredentialByTokenHash("h-ghost")
		wantCode(t, err, warden.ENOTFOUND)
		_, err = tx.LatestCheckpoint()
		wantCode(t, err, warden.ENOTFOUND)
		_, err = tx.MerkleHashes([]warden.NodeID{{Level: 0, Index: 1}})
		wantCode(t, err, warden.ENOTFOUND)
		return nil
	})
	next := MustAppend(t, s, draft(9))[0]
	if next.Seq != first.Seq+1 {
		t.Errorf("append after a failed Update got seq %d, want %d", next.Seq, first.Seq+1)
	}
	log := CheckLog(t, s)
	if _, ok := MustHead(t, s).Scrolls[warden.ScrollPolicy]; ok || len(log) != 2 {
		t.Errorf("the failed Update's receipts are visible: %d receipts", len(log))
	}
}

func testRollbackOnPanic(t *testing.T, h Harness) {
	s := h.New(t)
	MustAppend(t, s, draft(0))
	headBefore := MustHead(t, s)
	err := s.Update(t.Context(), func(tx warden.Tx) error {
		if _, err := tx.Append(draft(1)); err != nil {
			return err
		}
		if err := tx.SetMeta("panic", "yes"); err != nil {
			return err
		}
		panic("fn panics")
	})
	if err == nil {
		t.Fatal("Update with a panicking fn returned nil")
	}
	wantCode(t, err, warden.EINTERNAL)
	if diff := cmp.Diff(headBefore, MustHead(t, s)); diff != "" {
		t.Errorf("head changed by a panicking Update (-before +after):\n%s", diff)
	}
	MustView(t, s, func(tx warden.ReadTx) error {
		_, err := tx.Meta("panic")
		wantCode(t, err, warden.ENOTFOUND)
		return nil
	})
	if r := MustAppend(t, s, draft(2))[0]; r.Seq != 1 {
		t.Errorf("append after a panicking Update got seq %d, want 1", r.Seq)
	}
	CheckLog(t, s)
}

// opBody identifies the op that appended a receipt.
type opBody struct {
	G int `json:"g"`
	I int `json:"i"`
}

func testConcurrentUpdates(t *testing.T, h Harness) {
	const goroutines, each = 64, 50
	s := h.New(t)
	got := runConcurrent(t, s, goroutines, each, func(g, i int) bool { return false })
	log := CheckLog(t, s)
	if len(log) != goroutines*each {
		t.Fatalf("log has %d receipts, want %d", len(log), goroutines*each)
	}
	for _, r := range log {
		if diff := cmp.Diff(got[r.Seq], r); diff != "" {
			t.Fatalf("stored receipt %d differs from the one Append returned (-returned +stored):\n%s", r.Seq, diff)
		}
	}
}

func testConcurrentUpdatesWithFailures(t *testing.T, h Harness) {
	const goroutines, each = 64, 30
	s := h.New(t)
	fails := func(g, i int) bool { return (g*each+i)%3 == 0 }
	got := runConcurrent(t, s, goroutines, each, fails)
	log := CheckLog(t, s)
	want := 0
	for g := range goroutines {
		for i := range each {
			if !fails(g, i) {
				want++
			}
		}
	}
	if len(log) != want || len(got) != want {
		t.Fatalf("log has %d receipts and %d Updates succeeded, want %d", len(log), len(got), want)
	}
	seen := map[opBody]bool{}
	for _, r := range log {
		var b opBody
		if err := json.Unmarshal(r.Body, &b); err != nil {
			t.Fatal(err)
		}
		if fails(b.G, b.I) {
			t.Fatalf("receipt %d was appended by a failed Update (%+v)", r.Seq, b)
		}
		if seen[b] {
			t.Fatalf("op %+v appears twice in the log", b)
		}
		seen[b] = true
		if diff := cmp.Diff(got[r.Seq], r); diff != "" {
			t.Fatalf("stored receipt %d differs from the one Append returned (-returned +stored):\n%s", r.Seq, diff)
		}
	}
}

// runConcurrent runs goroutines×each Updates, each appending one receipt
// and failing after the append when fail says so. It returns the receipts
// of the successful Updates by seq.
func runConcurrent(t *testing.T, s warden.Store, goroutines, each int, fail func(g, i int) bool) map[uint64]*warden.Receipt {
	t.Helper()
	var (
		mu   sync.Mutex
		got  = map[uint64]*warden.Receipt{}
		wg   sync.WaitGroup
		errs = make(chan error, goroutines)
	)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				var r *warden.Receipt
				err := s.Update(t.Context(), func(tx warden.Tx) error {
					var err error
					r, err = tx.Append(warden.Draft{
						Type:   "concurrent",
						Scroll: warden.Scrolls[(g+i)%len(warden.Scrolls)],
						Tags:   []string{sprintf("g%d", g)},
						Time:   at(i),
						Body:   opBody{G: g, I: i},
					})
					if err != nil {
						return err
					}
					if fail(g, i) {
						return errBoom
					}
					return nil
				})
				switch {
				case fail(g, i) && !errors.Is(err, errBoom):
					errs <- fmt.Errorf("op %d/%d: Update returned %v, want errBoom", g, i, err)
					return
				case !fail(g, i) && err != nil:
					errs <- fmt.Errorf("op %d/%d: Update: %v", g, i, err)
					return
				case err == nil:
					mu.Lock()
					if prev, dup := got[r.Seq]; dup {
						mu.Unlock()
						errs <- fmt.Errorf("seq %d returned twice: %s and %s", r.Seq, prev.Body, r.Body)
						return
					}
					got[r.Seq] = r
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	keys := make([]uint64, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if k != uint64(i) {
			t.Fatalf("successful Updates got seqs %v…, not dense from 0", keys[:min(len(keys), i+1)])
		}
	}
	return got
}

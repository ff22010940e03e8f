package storetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
)

func ptr[T any](v T) *T { return &v }

func testReceiptsFilter(t *testing.T, h Harness) {
	s := h.New(t)
	types := []string{"alpha", "beta", "gamma"}
	var ds []warden.Draft
	for i := range 30 {
		d := draft(i)
		d.Type = types[i%3]
		if i%2 == 0 {
			d.Scroll = warden.ScrollIdentity
		} else {
			d.Scroll = warden.ScrollIncident
		}
		d.Tags = nil
		if i%4 == 0 {
			d.Tags = append(d.Tags, "four")
		}
		if i%5 == 0 {
			d.Tags = append(d.Tags, "DRILL/five")
		}
		ds = append(ds, d)
	}
	log := MustAppend(t, s, ds...)

	// want lists the seqs matching f the slow way.
	want := func(f warden.ReceiptFilter) []uint64 {
		out := []uint64{}
		for _, r := range log {
			if (f.Scroll == "" || r.Scroll == f.Scroll) &&
				(f.Type == "" || r.Type == f.Type) &&
				(f.Tag == "" || slices.Contains(r.Tags, f.Tag)) &&
				(f.After == nil || r.Seq > *f.After) &&
				(f.Before == nil || r.Seq < *f.Before) {
				out = append(out, r.Seq)
			}
		}
		if f.Descending {
			slices.Reverse(out)
		}
		if f.Limit > 0 && len(out) > f.Limit {
			out = out[:f.Limit]
		}
		return out
	}
	tests := []struct {
		name string
		f    warden.ReceiptFilter
	}{
		{"all", warden.ReceiptFilter{}},
		{"scroll", warden.ReceiptFilter{Scroll: warden.ScrollIncident}},
		{"type", warden.ReceiptFilter{Type: "beta"}},
		{"tag", warden.ReceiptFilter{Tag: "four"}},
		{"tag with slash", warden.ReceiptFilter{Tag: "DRILL/five"}},
		{"tag prefix does not match", warden.ReceiptFilter{Tag: "fou"}},
		{"scroll and type", warden.ReceiptFilter{Scroll: warden.ScrollIdentity, Type: "alpha"}},
		{"scroll type and tag", warden.ReceiptFilter{Scroll: warden.ScrollIdentity, Type: "alpha", Tag: "four"}},
		{"after", warden.ReceiptFilter{After: ptr[uint64](20)}},
		{"after zero", warden.ReceiptFilter{After: ptr[uint64](0)}},
		{"after the last", warden.ReceiptFilter{After: ptr[uint64](29)}},
		{"after far beyond", warden.ReceiptFilter{After: ptr[uint64](1 << 63)}},
		{"limit", warden.ReceiptFilter{Limit: 7}},
		{"limit and after", warden.ReceiptFilter{Limit: 3, After: ptr[uint64](10)}},
		{"descending", warden.ReceiptFilter{Descending: true}},
		{"descending with limit", warden.ReceiptFilter{Descending: true, Limit: 4}},
		{"descending after", warden.ReceiptFilter{Descending: true, After: ptr[uint64](25)}},
		{"descending scroll tag", warden.ReceiptFilter{Descending: true, Scroll: warden.ScrollIdentity, Tag: "DRILL/five"}},
		{"before", warden.ReceiptFilter{Before: ptr[uint64](10)}},
		{"before zero", warden.ReceiptFilter{Before: ptr[uint64](0)}},
		{"before one", warden.ReceiptFilter{Before: ptr[uint64](1)}},
		{"before the end", warden.ReceiptFilter{Before: ptr[uint64](30)}},
		{"before far beyond", warden.ReceiptFilter{Before: ptr[uint64](1 << 63)}},
		{"before the maximum", warden.ReceiptFilter{Before: ptr[uint64](1<<64 - 1)}},
		{"descending before", warden.ReceiptFilter{Descending: true, Before: ptr[uint64](17)}},
		{"descending before with limit", warden.ReceiptFilter{Descending: true, Before: ptr[uint64](17), Limit: 5}},
		{"descending before scroll tag", warden.ReceiptFilter{Descending: true, Before: ptr[uint64](29), Scroll: warden.ScrollIdentity, Tag: "four", Limit: 2}},
		{"between after and before", warden.ReceiptFilter{After: ptr[uint64](5), Before: ptr[uint64](12)}},
		{"after meets before", warden.ReceiptFilter{After: ptr[uint64](5), Before: ptr[uint64](6)}},
		{"unknown scroll", warden.ReceiptFilter{Scroll: warden.ScrollTreasury}},
		{"unknown type", warden.ReceiptFilter{Type: "delta"}},
		{"unknown tag", warden.ReceiptFilter{Tag: "nope"}},
	}
	MustView(t, s, func(tx warden.ReadTx) error {
		for _, tt := range tests {
			got, err := tx.Receipts(tt.f)
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
				continue
			}
			if got == nil {
				t.Errorf("%s: Receipts returned nil, want a non-nil slice", tt.name)
			}
			if diff := cmp.Diff(want(tt.f), seqs(got)); diff != "" {
				t.Errorf("%s: seqs (-want +got):\n%s", tt.name, diff)
			}
			for _, r := range got {
				if diff := cmp.Diff(log[r.Seq], r); diff != "" {
					t.Errorf("%s: receipt %d (-appended +listed):\n%s", tt.name, r.Seq, diff)
				}
			}
			// CountReceipts counts what the filters match, whatever the
			// page's bounds, limit and order.
			n, err := tx.CountReceipts(tt.f)
			if err != nil {
				t.Errorf("%s: CountReceipts: %v", tt.name, err)
				continue
			}
			if want := len(want(warden.ReceiptFilter{Scroll: tt.f.Scroll, Type: tt.f.Type, Tag: tt.f.Tag})); n != uint64(want) {
				t.Errorf("%s: CountReceipts = %d, want %d", tt.name, n, want)
			}
		}
		_, err := tx.Receipts(warden.ReceiptFilter{Limit: -1})
		wantCode(t, err, warden.EINVALID)
		return nil
	})
}

func testReceiptsPageSize(t *testing.T, h Harness) {
	s := h.New(t)
	n := warden.MaxPageSize + 5
	ds := make([]warden.Draft, n)
	for i := range ds {
		ds[i] = draft(i)
	}
	MustAppend(t, s, ds...)
	MustView(t, s, func(tx warden.ReadTx) error {
		for _, tt := range []struct {
			limit, want int
		}{
			{0, warden.DefaultPageSize},
			{1, 1},
			{warden.MaxPageSize, warden.MaxPageSize},
			{warden.MaxPageSize + 1, warden.MaxPageSize},
			{1 << 30, warden.MaxPageSize},
		} {
			got, err := tx.Receipts(warden.ReceiptFilter{Limit: tt.limit})
			if err != nil {
				return err
			}
			if len(got) != tt.want {
				t.Errorf("Limit %d returned %d receipts, want %d", tt.limit, len(got), tt.want)
			}
		}
		// A scan crosses any internal page boundary without loss.
		next := uint64(3)
		err := tx.ScanReceipts(3, func(r *warden.Receipt) error {
			if r.Seq != next {
				t.Fatalf("scan returned seq %d, want %d", r.Seq, next)
			}
			next++
			return nil
		})
		if err != nil {
			return err
		}
		if next != uint64(n) {
			t.Errorf("scan from 3 ended before seq %d, want %d", next, n)
		}
		// Paging backwards with Before visits every receipt once, newest
		// first, across the page limit.
		want := uint64(n)
		var before *uint64
		for {
			page, err := tx.Receipts(warden.ReceiptFilter{Descending: true, Before: before, Limit: warden.MaxPageSize})
			if err != nil {
				return err
			}
			for _, r := range page {
				if want--; r.Seq != want {
					t.Fatalf("paging backwards returned seq %d, want %d", r.Seq, want)
				}
			}
			if len(page) < warden.MaxPageSize {
				break
			}
			before = &page[len(page)-1].Seq
		}
		if want != 0 {
			t.Errorf("paging backwards stopped at seq %d, want 0", want)
		}
		return nil
	})
}

func testScanReceipts(t *testing.T, h Harness) {
	s := h.New(t)
	ds := make([]warden.Draft, 25)
	for i := range ds {
		ds[i] = draft(i)
	}
	log := MustAppend(t, s, ds...)
	scan := func(tx warden.ReadTx, from uint64) []*warden.Receipt {
		t.Helper()
		out := []*warden.Receipt{}
		if err := tx.ScanReceipts(from, func(r *warden.Receipt) error {
			out = append(out, r)
			return nil
		}); err != nil {
			t.Fatalf("ScanReceipts(%d): %v", from, err)
		}
		return out
	}
	MustView(t, s, func(tx warden.ReadTx) error {
		for _, from := range []uint64{0, 1, 10, 24, 25, 26, 1 << 40, 1<<64 - 1} {
			want := []*warden.Receipt{}
			if from < uint64(len(log)) {
				want = log[from:]
			}
			if diff := cmp.Diff(want, scan(tx, from)); diff != "" {
				t.Errorf("ScanReceipts(%d) (-want +got):\n%s", from, diff)
			}
		}
		calls := 0
		err := tx.ScanReceipts(5, func(r *warden.Receipt) error {
			calls++
			if r.Seq == 7 {
				return errBoom
			}
			return nil
		})
		if !errors.Is(err, errBoom) {
			t.Errorf("ScanReceipts returned %v, want fn's error", err)
		}
		if calls != 3 {
			t.Errorf("ScanReceipts called fn %d times after its error, want it to stop at the 3rd", calls)
		}
		return nil
	})
	// Inside an Update the scan sees the Update's own appends.
	MustUpdate(t, s, func(tx warden.Tx) error {
		if _, err := tx.Append(draft(99)); err != nil {
			return err
		}
		got := scan(tx, 24)
		if diff := cmp.Diff([]uint64{24, 25}, seqs(got)); diff != "" {
			t.Errorf("ScanReceipts inside an Update (-want +got):\n%s", diff)
		}
		return nil
	})
}

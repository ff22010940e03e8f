package ledger_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
)

// benchReceipt returns a sealed receipt at seq with a body of about 300
// bytes, typical of warden's decision and treasury receipts.
func benchReceipt(tb testing.TB, seq uint64) *warden.Receipt {
	tb.Helper()
	r, _, err := ledger.NewReceipt(seq, warden.Draft{
		Type:   "decision",
		Scroll: warden.ScrollCognitive,
		Tags:   []string{"principal/agent-7", "profile/standard"},
		Time:   time.Date(2026, 11, 22, 2, 0, 0, int(seq), time.UTC),
		Body: map[string]any{
			"principal":  "agent-7",
			"action":     "treasury.transfer",
			"resource":   "acct:ops/payroll",
			"decision":   "allow",
			"rule":       "budget.within_limit",
			"amount":     1250.75,
			"currency":   "EUR",
			"request_id": fmt.Sprintf("req-%016x", seq),
			"reasons":    []string{"budget ok", "profile allows", "no incident open"},
			"ladder":     map[string]any{"level": 2, "approved_by": nil, "ttl_s": 900},
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func TestBenchReceiptSize(t *testing.T) {
	if n := len(benchReceipt(t, 1).Body); n < 280 || n > 340 {
		t.Errorf("bench body is %d bytes, want about 300", n)
	}
}

func BenchmarkCheckReceipt(b *testing.B) {
	r := benchReceipt(b, 12345)
	b.SetBytes(int64(len(r.Body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ledger.CheckReceipt(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckReceiptParallel(b *testing.B) {
	r := benchReceipt(b, 12345)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := ledger.CheckReceipt(r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkVerifierAdd is Add per receipt: CheckReceipt plus the global and
// scroll tree appends.
func BenchmarkVerifierAdd(b *testing.B) {
	const n = 4096
	recs := make([]*warden.Receipt, n)
	for i := range recs {
		recs[i] = benchReceipt(b, uint64(i))
	}
	b.ReportAllocs()
	var v *ledger.Verifier
	i := 0
	for b.Loop() {
		if i%n == 0 {
			v = ledger.NewVerifier(nil, testOrigin)
			v.AllowUnanchored = true
		}
		if err := v.Add(recs[i%n]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkVerifierAddChecked is the sequential part alone: the tree appends
// a parallel verifier cannot spread over cores.
func BenchmarkVerifierAddChecked(b *testing.B) {
	const n = 4096
	recs := make([]*warden.Receipt, n)
	leaves := make([][]byte, n)
	for i := range recs {
		recs[i] = benchReceipt(b, uint64(i))
		leaves[i], _ = ledger.CheckReceipt(recs[i])
	}
	b.ReportAllocs()
	var v *ledger.Verifier
	i := 0
	for b.Loop() {
		if i%n == 0 {
			v = ledger.NewVerifier(nil, testOrigin)
			v.AllowUnanchored = true
		}
		if err := v.AddChecked(recs[i%n], leaves[i%n]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkEntryBytes(b *testing.B) {
	r := benchReceipt(b, 12345)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ledger.EntryBytes(r); err != nil {
			b.Fatal(err)
		}
	}
}

// The steps of CheckReceipt, to see where its time goes.

func BenchmarkBodyHash(b *testing.B) {
	r := benchReceipt(b, 12345)
	b.ReportAllocs()
	for b.Loop() {
		_ = ledger.BodyHash(r.Body)
	}
}

func BenchmarkCanonicalRecheck(b *testing.B) {
	r := benchReceipt(b, 12345)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ledger.Canonical(json.RawMessage(r.Body)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLeafHash(b *testing.B) {
	r := benchReceipt(b, 12345)
	entry, err := ledger.EntryBytes(r)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = ledger.LeafHash(entry)
	}
}

package engine_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/ledger"
	"github.com/warden-sh/warden/wardentest"
)

// BenchmarkVerifyStore measures the whole-log verification (re-hash, tree
// rebuild against the checkpoints) per receipt, over 200,000 receipts of
// ~300 bytes.
func BenchmarkVerifyStore(b *testing.B) {
	env := wardentest.MustEnv(b)
	ctx := context.Background()
	const n = 200_000
	for i := 0; i < n; i += 5000 {
		err := env.Store.Update(ctx, func(tx warden.Tx) error {
			for k := i; k < i+5000; k++ {
				if _, err := tx.Append(warden.Draft{Type: "escalation", Scroll: warden.ScrollCognitive, Tags: []string{"bench"}, Time: time.Unix(int64(k), 0),
					Body: map[string]any{"escalation_id": fmt.Sprintf("esc_%024x", k), "from_profile": "operator", "to_profile": "guardian", "reason": "bench"}}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if _, err := env.Core.Checkpoint(ctx); err != nil {
		b.Fatal(err)
	}
	_, known := env.Core.KeyState()
	var verified uint64
	for b.Loop() {
		sum, err := engine.VerifyStore(ctx, env.Store, ledger.NewVerifier(known, ""))
		if err != nil {
			b.Fatal(err)
		}
		verified += sum.Count
	}
	b.ReportMetric(float64(verified)/b.Elapsed().Seconds(), "receipts/s")
}

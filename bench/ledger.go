// Package bench holds warden's load generators and benchmarks: `warden
// bench ledger` measures the store and ledger on this machine, and `warden
// bench http` drives any server speaking warden's API. Targets are checked
// here and reported, never asserted in timed unit tests.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/ledger"
	"github.com/warden-sh/warden/sqlite"
)

// LedgerOptions configure the ledger benchmark.
type LedgerOptions struct {
	Dir        string        // scratch directory (default: a new temp dir, removed after)
	Writers    int           // concurrent writers for the throughput run (default 64)
	Duration   time.Duration // length of the throughput run (default 5s)
	Serial     int           // appends in the single-writer latency run (default 2000)
	ProofLog   uint64        // log size for the inclusion proof run (default 1,000,000)
	ProofCount int           // proofs to time (default 2000)
	// Busy keeps this many cores busy in other processes for the whole
	// run (Spin), as a neighbour on a shared machine would.
	Busy int
}

// LedgerResult holds the measurements, with the targets.
type LedgerResult struct {
	Writers            int     `json:"writers"`
	ReceiptsPerSec     float64 `json:"durable_receipts_per_sec"`   // target ≥ 20,000 with 64 writers
	SerialP50Ms        float64 `json:"single_writer_p50_ms"`       //
	SerialP99Ms        float64 `json:"single_writer_p99_ms"`       // target ≤ 5 ms
	VerifyPerSec       float64 `json:"verify_receipts_per_sec"`    // target ≥ 200,000
	VerifiedReceipts   uint64  `json:"verified_receipts"`          //
	ProofLogSize       uint64  `json:"proof_log_size"`             //
	ProofP50Ms         float64 `json:"inclusion_proof_p50_ms"`     //
	ProofP99Ms         float64 `json:"inclusion_proof_p99_ms"`     // target ≤ 1 ms
	AvgCommitBatchSize float64 `json:"avg_group_commit_batch_ops"` //
	BusyProcesses      int     `json:"busy_processes"`             // cores kept busy by other processes meanwhile
}

// benchBody is a typical receipt body (~300 bytes canonical).
func benchBody(i int) map[string]any {
	return map[string]any{
		"escalation_id": fmt.Sprintf("esc_%024x", i),
		"event_type":    "escalation",
		"from_profile":  "operator",
		"to_profile":    "guardian",
		"reversible":    true,
		"context": map[string]any{
			"threat_id": fmt.Sprintf("thr_%d", i), "threat_type": "synthetic", "threat_confidence": 0.92,
			"active_alerts": 0, "mesh_health": "unknown",
		},
		"expires_at": "2026-11-22T03:00:00Z",
		"active":     true,
	}
}

// bodies are distinct canonical receipt bodies prepared once, so the
// benchmark measures the store and ledger, not the load generator building
// bodies on the same two cores.
var bodies = func() []json.RawMessage {
	out := make([]json.RawMessage, 4096)
	for i := range out {
		b, err := ledger.Canonical(benchBody(i))
		if err != nil {
			panic(err)
		}
		out[i] = b
	}
	return out
}()

// draft builds a receipt draft with a prepared canonical body (as a caller
// that builds its receipt before entering the transaction would); the
// store still checks it is canonical and hashes it.
func draft(i int) warden.Draft {
	return warden.Draft{Type: "bench_receipt", Scroll: warden.ScrollIdentity, Tags: []string{"bench"}, Time: time.Now().UTC(), Body: bodies[i%len(bodies)]}
}

// Ledger runs the ledger benchmark and prints progress to w.
func Ledger(ctx context.Context, o LedgerOptions, w io.Writer) (*LedgerResult, error) {
	if o.Writers <= 0 {
		o.Writers = 64
	}
	if o.Duration <= 0 {
		o.Duration = 5 * time.Second
	}
	if o.Serial <= 0 {
		o.Serial = 2000
	}
	if o.ProofLog == 0 {
		o.ProofLog = 1_000_000
	}
	if o.ProofCount <= 0 {
		o.ProofCount = 2000
	}
	if o.Dir == "" {
		d, err := os.MkdirTemp("", "warden-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		o.Dir = d
	}
	res := &LedgerResult{Writers: o.Writers, BusyProcesses: o.Busy}
	if o.Busy > 0 {
		stop, err := startBusy(o.Busy)
		if err != nil {
			return nil, err
		}
		defer stop()
		fmt.Fprintf(w, "%d busy process(es) spinning a core each for the whole run\n", o.Busy)
	}
	var commits, ops atomic.Int64
	st, err := sqlite.Open(filepath.Join(o.Dir, "bench.db"), sqlite.Options{OnCommit: func(n int, _ time.Duration) {
		commits.Add(1)
		ops.Add(int64(n))
	}})
	if err != nil {
		return nil, err
	}
	defer st.Close()

	// 1. Throughput: many writers, one receipt per operation, fsync on.
	fmt.Fprintf(w, "throughput: %d writers for %s ...\n", o.Writers, o.Duration)
	var count atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(o.Duration)
	var wg sync.WaitGroup
	start := time.Now()
	for g := 0; g < o.Writers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				d := draft(g*1_000_000 + i)
				err := st.Update(ctx, func(tx warden.Tx) error {
					_, err := tx.Append(d)
					return err
				})
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				count.Add(1)
			}
		}(g)
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return nil, err
	}
	el := time.Since(start)
	res.ReceiptsPerSec = float64(count.Load()) / el.Seconds()
	if c := commits.Load(); c > 0 {
		res.AvgCommitBatchSize = float64(ops.Load()) / float64(c)
	}
	fmt.Fprintf(w, "  %d receipts in %s: %.0f durable receipts/s (avg %.1f ops per fsync)\n", count.Load(), el.Round(time.Millisecond), res.ReceiptsPerSec, res.AvgCommitBatchSize)

	// 2. Single-writer latency.
	fmt.Fprintf(w, "single writer: %d appends ...\n", o.Serial)
	lat := make([]time.Duration, 0, o.Serial)
	for i := 0; i < o.Serial && ctx.Err() == nil; i++ {
		t0 := time.Now()
		if err := st.Update(ctx, func(tx warden.Tx) error { _, err := tx.Append(draft(i)); return err }); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(t0))
	}
	res.SerialP50Ms, res.SerialP99Ms = pct(lat, 50), pct(lat, 99)
	fmt.Fprintf(w, "  p50 %.3f ms, p99 %.3f ms\n", res.SerialP50Ms, res.SerialP99Ms)

	// 3. Grow the log with big batches to the proof-log size.
	var size uint64
	if err := st.View(ctx, func(tx warden.ReadTx) error {
		h, err := tx.Head()
		size = h.Size
		return err
	}); err != nil {
		return nil, err
	}
	if size < o.ProofLog {
		fmt.Fprintf(w, "growing the log from %d to %d receipts ...\n", size, o.ProofLog)
	}
	for size < o.ProofLog && ctx.Err() == nil {
		n := min(o.ProofLog-size, 5000)
		if err := st.Update(ctx, func(tx warden.Tx) error {
			for i := uint64(0); i < n; i++ {
				if _, err := tx.Append(draft(int(size + i))); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return nil, err
		}
		size += n
	}
	res.ProofLogSize = size
	// 4. Verify throughput over the whole (large) log.
	keys, err := ledger.GenerateKeys("warden/bench")
	if err != nil {
		return nil, err
	}
	core, err := engine.New(engine.Options{Store: st, Signer: mustSigner(keys.Signer), PublicKey: keys.Verifier})
	if err != nil {
		return nil, err
	}
	if _, err := core.Checkpoint(ctx); err != nil {
		return nil, err
	}
	known, _, _ := ledger.ParseVerifiers([]byte(keys.Verifier))
	fmt.Fprintf(w, "verify (%d cores) ...\n", runtime.GOMAXPROCS(0))
	t0 := time.Now()
	sum, err := engine.VerifyStore(ctx, st, ledger.NewVerifier(known, ""))
	if err != nil {
		return nil, err
	}
	res.VerifiedReceipts = sum.Count
	res.VerifyPerSec = float64(sum.Count) / time.Since(t0).Seconds()
	fmt.Fprintf(w, "  %d receipts verified: %.0f receipts/s\n", sum.Count, res.VerifyPerSec)

	fmt.Fprintf(w, "inclusion proofs: %d random leaves of %d ...\n", o.ProofCount, size)
	rng := rand.New(rand.NewPCG(1, 2))
	lat = lat[:0]
	for i := 0; i < o.ProofCount && ctx.Err() == nil; i++ {
		idx := rng.Uint64N(size)
		t0 := time.Now()
		if err := st.View(ctx, func(tx warden.ReadTx) error {
			_, err := ledger.InclusionProof(idx, size, tx.MerkleHashes)
			return err
		}); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(t0))
	}
	res.ProofP50Ms, res.ProofP99Ms = pct(lat, 50), pct(lat, 99)
	fmt.Fprintf(w, "  p50 %.3f ms, p99 %.3f ms\n", res.ProofP50Ms, res.ProofP99Ms)
	return res, ctx.Err()
}

func pct(d []time.Duration, p int) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return float64(s[i].Microseconds()) / 1000
}

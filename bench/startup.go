package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/governor"
	"github.com/warden-sh/warden/engine/recorder"
	"github.com/warden-sh/warden/engine/stack"
	"github.com/warden-sh/warden/ledger"
	"github.com/warden-sh/warden/sqlite"
)

// StartupOptions configure the startup check benchmark.
type StartupOptions struct {
	Dir      string // scratch directory (default: a new temp dir, removed after)
	Receipts int    // receipts to write before measuring (default 1,000,000)
	Writers  int    // concurrent writers while building (default 16)
}

// StartupResult is what a server's startup check costs on this machine.
type StartupResult struct {
	Receipts       uint64  `json:"receipts"`
	Incidents      int64   `json:"incidents"`
	Debits         int64   `json:"debits"`
	Escalations    int64   `json:"escalations"`
	BuildSeconds   float64 `json:"build_seconds"`
	TailCheckMs    float64 `json:"tail_check_ms"`          // before writes are taken
	VerifySeconds  float64 `json:"verify_seconds"`         // the whole log, no replay
	CheckSeconds   float64 `json:"check_seconds"`          // the whole log and the state replay
	ReplayPer100kS float64 `json:"check_per_100k_seconds"` // CheckSeconds per 100,000 receipts
	PeakHeapMB     float64 `json:"peak_heap_mb"`           // Go heap in use during verify and replay, sampled
}

// Startup builds a store of o.Receipts real receipts through the rules
// (70% incident reports, 20% debits, 10% escalations, a checkpoint every
// 20,000), then times what `warden serve` does before and after taking
// writes: the tail check, the whole-log verification, and the whole-log
// verification with the state replay.
func Startup(ctx context.Context, o StartupOptions, progress io.Writer) (*StartupResult, error) {
	if o.Receipts <= 0 {
		o.Receipts = 1_000_000
	}
	if o.Writers <= 0 {
		o.Writers = 16
	}
	if o.Dir == "" {
		d, err := os.MkdirTemp("", "warden-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		o.Dir = d
	}
	st, err := sqlite.Open(filepath.Join(o.Dir, "startup.db"), sqlite.Options{})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	keys, err := ledger.GenerateKeys("warden/bench")
	if err != nil {
		return nil, err
	}
	s, err := stack.New(stack.Config{Core: engine.Options{Store: st, Signer: mustSigner(keys.Signer), PublicKey: keys.Verifier}})
	if err != nil {
		return nil, err
	}
	admin := &warden.Principal{Name: "bench", Roles: []warden.Role{warden.RoleAdmin}}
	if _, err := s.Governor.CreateBudget(ctx, admin, governor.CreateBudgetRequest{BudgetID: "bench", Allocated: governor.MaxAmount, Currency: "U"}); err != nil {
		return nil, err
	}
	res := &StartupResult{}
	fmt.Fprintf(progress, "writing %d receipts (%d writers) ...\n", o.Receipts, o.Writers)
	t0 := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, o.Writers)
	for w := 0; w < o.Writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(o.Receipts) || ctx.Err() != nil {
					return
				}
				var err error
				switch i % 10 {
				case 7, 8:
					_, err = s.Governor.Debit(ctx, admin, governor.MoveRequest{BudgetID: "bench", Amount: 1, Description: "bench"})
					atomic.AddInt64(&res.Debits, 1)
				case 9:
					agent := &warden.Principal{Name: fmt.Sprintf("agent-%d", i), Roles: []warden.Role{warden.RoleRead}}
					_, err = s.Governor.Escalate(ctx, agent, governor.EscalateRequest{ToProfile: "operator", EscalationType: "operator_request", Reason: "bench"})
					atomic.AddInt64(&res.Escalations, 1)
				default:
					_, err = s.Recorder.ReportIncident(ctx, admin, recorder.ReportRequest{Class: warden.ClassForbiddenAirlockRequest, Source: "bench",
						Description: "blocked egress", Evidence: map[string]string{"destination": fmt.Sprintf("203.0.113.%d:443", i%250)}})
					atomic.AddInt64(&res.Incidents, 1)
				}
				if err == nil && i%20_000 == 0 {
					_, err = s.Core.Checkpoint(ctx)
				}
				if err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return nil, err
	}
	if _, err := s.Core.Checkpoint(ctx); err != nil {
		return nil, err
	}
	res.BuildSeconds = time.Since(t0).Seconds()

	t0 = time.Now()
	size, _, err := s.Core.CheckTail(ctx)
	if err != nil {
		return nil, err
	}
	res.Receipts, res.TailCheckMs = size, float64(time.Since(t0).Microseconds())/1000
	fmt.Fprintf(progress, "  %d receipts in %.0f s; tail check %.1f ms\n", size, res.BuildSeconds, res.TailCheckMs)

	_, known := s.Core.KeyState()
	t0 = time.Now()
	if _, err := engine.VerifyStore(ctx, st, ledger.NewVerifier(known, "")); err != nil {
		return nil, err
	}
	res.VerifySeconds = time.Since(t0).Seconds()
	fmt.Fprintf(progress, "  verify: %.2f s\n", res.VerifySeconds)
	runtime.GC()
	stop := make(chan struct{})
	peak := make(chan uint64)
	go func() {
		var ms runtime.MemStats
		var max uint64
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			max = maxOf(max, ms.HeapInuse)
			select {
			case <-stop:
				peak <- max
				return
			case <-t.C:
			}
		}
	}()
	t0 = time.Now()
	_, err = engine.CheckStore(ctx, st, ledger.NewVerifier(known, ""), &engine.StoreCheck{Projections: s.Projections()})
	res.CheckSeconds = time.Since(t0).Seconds()
	close(stop)
	res.PeakHeapMB = float64(<-peak) / (1 << 20)
	if err != nil {
		return nil, err
	}
	res.ReplayPer100kS = res.CheckSeconds / float64(size) * 100_000
	fmt.Fprintf(progress, "  verify and replay: %.2f s\n", res.CheckSeconds)
	return res, nil
}

func maxOf(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

package sqlite_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
	"github.com/warden-sh/warden/sqlite"
)

func benchDraft(i int) warden.Draft {
	return warden.Draft{
		Type:   "bench_event",
		Scroll: warden.Scrolls[i%len(warden.Scrolls)],
		Tags:   []string{"bench"},
		Time:   time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
		Body:   map[string]any{"i": i, "principal": "agent-7", "action": "decide", "amount": 12.5},
	}
}

// BenchmarkAppendParallel measures durable receipts per second with about
// 64 concurrent writers, each Update appending one receipt.
func BenchmarkAppendParallel(b *testing.B) {
	var commits, ops atomic.Int64
	var commitTime atomic.Int64
	db := MustOpen(b, filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{OnCommit: func(n int, d time.Duration) {
		commits.Add(1)
		ops.Add(int64(n))
		commitTime.Add(int64(d))
	}})
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			err := db.Update(context.Background(), func(tx warden.Tx) error {
				_, err := tx.Append(benchDraft(i))
				return err
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "receipts/s")
	if n := commits.Load(); n > 0 {
		b.ReportMetric(float64(ops.Load())/float64(n), "ops/commit")
		b.ReportMetric(float64(commitTime.Load())/float64(n)/1e6, "ms/commit")
	}
}

// BenchmarkAppendSerial measures one writer: each Update appends one
// receipt and waits for its fsync.
func BenchmarkAppendSerial(b *testing.B) {
	db := MustOpen(b, filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{})
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		err := db.Update(context.Background(), func(tx warden.Tx) error {
			_, err := tx.Append(benchDraft(i))
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.ReportMetric(float64(len(lat))/time.Since(start).Seconds(), "receipts/s")
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}

// BenchmarkAppendBatch measures raw append cost: 1,000 receipts per Update.
func BenchmarkAppendBatch(b *testing.B) {
	db := MustOpen(b, filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		err := db.Update(context.Background(), func(tx warden.Tx) error {
			for range 1000 {
				i++
				if _, err := tx.Append(benchDraft(i)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "receipts/s")
}

// largeLog returns the path of a database holding size receipts, built
// once and cached in os.TempDir (it takes tens of seconds to build).
func largeLog(b *testing.B, size int) string {
	b.Helper()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("warden-bench-%d.db", size))
	if _, err := os.Stat(path); err == nil {
		db, err := sqlite.Open(path, sqlite.Options{})
		if err == nil {
			var n uint64
			err = db.View(context.Background(), func(tx warden.ReadTx) error {
				h, err := tx.Head()
				if h != nil {
					n = h.Size
				}
				return err
			})
			db.Close()
			if err == nil && n == uint64(size) {
				return path
			}
		}
		b.Logf("rebuilding %s", path)
	}
	tmp := path + ".building"
	for _, p := range []string{tmp, tmp + "-wal", tmp + "-shm", path, path + "-wal", path + "-shm"} {
		os.Remove(p)
	}
	db, err := sqlite.Open(tmp, sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	const perUpdate = 10_000
	for done := 0; done < size; done += perUpdate {
		err := db.Update(context.Background(), func(tx warden.Tx) error {
			for i := done; i < min(size, done+perUpdate); i++ {
				if _, err := tx.Append(benchDraft(i)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
	b.Logf("built %d receipts in %v", size, time.Since(t0).Round(time.Millisecond))
	return path
}

// BenchmarkInclusionProof fetches inclusion proofs from a 1,000,000-receipt
// log. The log is built on first use and cached in os.TempDir.
func BenchmarkInclusionProof(b *testing.B) {
	const size = 1_000_000
	db := MustOpen(b, largeLog(b, size), sqlite.Options{})
	var root []byte
	err := db.View(context.Background(), func(tx warden.ReadTx) error {
		h, err := tx.Head()
		if h != nil {
			root = h.RootHash
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))

	// Per proof: one View, the proof's node fetch, and verification.
	b.Run("view", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			idx := rng.Uint64N(size)
			err := db.View(context.Background(), func(tx warden.ReadTx) error {
				r, err := tx.Receipt(idx)
				if err != nil {
					return err
				}
				p, err := ledger.InclusionProof(idx, size, tx.MerkleHashes)
				if err != nil {
					return err
				}
				leaf, err := hexLeaf(r)
				if err != nil {
					return err
				}
				return ledger.VerifyInclusion(idx, size, leaf, p, root)
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	// The node fetch alone, inside one long View.
	b.Run("fetch", func(b *testing.B) {
		b.ReportAllocs()
		err := db.View(context.Background(), func(tx warden.ReadTx) error {
			for b.Loop() {
				if _, err := ledger.InclusionProof(rng.Uint64N(size), size, tx.MerkleHashes); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	})
}

func hexLeaf(r *warden.Receipt) ([]byte, error) {
	return ledger.CheckReceipt(r)
}

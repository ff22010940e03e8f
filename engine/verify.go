package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
)

// errStopScan ends a chunk's scan at its upper bound.
var errStopScan = errors.New("stop scan")

// verifyChunk is how many receipts one reader scans at a time.
const verifyChunk = 16384

// VerifyStore verifies the whole log in the store against its signed
// checkpoints, using every core: readers scan disjoint seq ranges in
// parallel (receipts below the head are immutable, so separate snapshots
// agree on them), checkers re-hash in parallel, and the Merkle rebuild
// consumes them in order. Memory is bounded by the chunks in flight. It
// returns a *ledger.VerifyError naming the first bad sequence number, or
// the summary.
func VerifyStore(ctx context.Context, s warden.Store, v *ledger.Verifier) (*ledger.Summary, error) {
	var size uint64
	err := s.View(ctx, func(tx warden.ReadTx) error {
		if err := tx.Checkpoints(func(c *warden.Checkpoint) error {
			return v.AddCheckpoint([]byte(c.Note))
		}); err != nil {
			return err
		}
		// The scan covers every stored row, whatever the head claims, so
		// a row inserted past the head is still seen.
		h, err := tx.Head()
		if err != nil {
			return err
		}
		size = h.Size
		return nil
	})
	if err != nil {
		return nil, err
	}
	workers := runtime.GOMAXPROCS(0)
	p := v.Pipeline(workers)
	type chunk struct {
		recs []*warden.Receipt
		err  error
	}
	nchunks := int(size/verifyChunk) + 1 // the last one also reads past the head
	results := make([]chan chunk, nchunks)
	for i := range results {
		results[i] = make(chan chunk, 1)
	}
	sem := make(chan struct{}, workers+1) // chunks in flight
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for i := 0; i < nchunks; i++ {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func(i int) {
				from := uint64(i) * verifyChunk
				last := i == nchunks-1
				var c chunk
				c.err = s.View(ctx, func(tx warden.ReadTx) error {
					return tx.ScanReceipts(from, func(r *warden.Receipt) error {
						if !last && r.Seq >= from+verifyChunk {
							return errStopScan
						}
						c.recs = append(c.recs, r)
						return nil
					})
				})
				if c.err == errStopScan {
					c.err = nil
				}
				results[i] <- c
			}(i)
		}
	}()
	var scanErr error
	for i := 0; i < nchunks && scanErr == nil; i++ {
		var c chunk
		select {
		case c = <-results[i]:
		case <-ctx.Done():
			scanErr = ctx.Err()
			continue
		}
		<-sem
		if c.err != nil {
			scanErr = c.err
			break
		}
		for _, r := range c.recs {
			if err := p.Push(r); err != nil {
				break
			}
		}
	}
	cancel()
	if err := p.Close(); err != nil {
		return nil, err
	}
	if scanErr != nil {
		return nil, scanErr
	}
	return v.Finish()
}

// VerifyExport verifies an export read from r.
func VerifyExport(r io.Reader, v *ledger.Verifier) (*ledger.Summary, *ExportHeader, error) {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 1<<16))
	var hdr ExportHeader
	if err := dec.Decode(&hdr); err != nil {
		return nil, nil, fmt.Errorf("export header: %w", err)
	}
	if hdr.Format != ExportFormat {
		return nil, nil, fmt.Errorf("export format %q is not %q", hdr.Format, ExportFormat)
	}
	p := v.Pipeline(runtime.GOMAXPROCS(0))
	line := 1
	seenReceipt := false
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			break
		} else if err != nil {
			p.Close()
			return nil, &hdr, fmt.Errorf("export line %d: %w", line+1, err)
		}
		line++
		var probe struct {
			Checkpoint *string `json:"checkpoint"`
		}
		if err := json.Unmarshal(raw, &probe); err != nil {
			p.Close()
			return nil, &hdr, fmt.Errorf("export line %d: %w", line, err)
		}
		if probe.Checkpoint != nil {
			if seenReceipt {
				p.Close()
				return nil, &hdr, fmt.Errorf("export line %d: checkpoint after the first receipt; checkpoints come first", line)
			}
			if err := v.AddCheckpoint([]byte(*probe.Checkpoint)); err != nil {
				p.Close()
				return nil, &hdr, err
			}
			continue
		}
		seenReceipt = true
		rec := new(warden.Receipt)
		if err := decodeStrict(raw, rec); err != nil {
			p.Close()
			return nil, &hdr, fmt.Errorf("export line %d is not a receipt: %w", line, err)
		}
		if err := p.Push(rec); err != nil {
			break
		}
	}
	if err := p.Close(); err != nil {
		return nil, &hdr, err
	}
	s, err := v.Finish()
	return s, &hdr, err
}

func decodeStrict(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data")
	}
	return nil
}

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
	"github.com/warden-sh/warden/jsonx"
	"github.com/warden-sh/warden/ledger"
)

// errStopScan ends a chunk's scan at its upper bound.
var errStopScan = errors.New("stop scan")

// verifyChunk is how many receipts one reader scans at a time.
const verifyChunk = 4096

// VerifyStore verifies the whole log in the store against its signed
// checkpoints, and the store's ledger caches against the receipts: it is
// CheckStore without projections.
func VerifyStore(ctx context.Context, s warden.Store, v *ledger.Verifier) (*ledger.Summary, error) {
	return CheckStore(ctx, s, v, nil)
}

// StoreCheck configures CheckStore.
type StoreCheck struct {
	// Projections are replayed over every receipt, in seq order, and
	// compared with the store's state tables in the end.
	Projections []Projection
	// Progress, if set, is called now and then with the receipts checked
	// so far and the number expected.
	Progress func(done, total uint64)
}

// CheckStore verifies a store from its receipts alone, trusting nothing
// the store caches:
//
//   - every receipt is re-hashed and the Merkle tree rebuilt against the
//     signed checkpoints (v), using every core: readers scan disjoint seq
//     ranges in parallel (receipts are immutable, so separate snapshots
//     agree on them), checkers re-hash in parallel, and the rebuild
//     consumes them in order; memory is bounded by the chunks in flight.
//     The scan covers every stored row, whatever the head claims;
//   - the store's cached head (size and root) and stored Merkle nodes must
//     be what the receipts give; a live server's receipts appended since
//     the scan are re-hashed and folded in, in the snapshot of the
//     comparison;
//   - with c.Projections, the state tables must be what replaying the
//     receipts builds, compared in that same snapshot.
//
// It returns a *ledger.VerifyError naming the first bad sequence number, a
// *ReceiptError for a receipt that cannot be replayed, a *StateError for
// state rows the receipts cannot explain (all three are tampering), another
// error when the check could not run, or the summary.
func CheckStore(ctx context.Context, s warden.Store, v *ledger.Verifier, c *StoreCheck) (*ledger.Summary, error) {
	if c == nil {
		c = &StoreCheck{}
	}
	var size uint64 // a hint for chunking; every row is scanned anyway
	err := s.View(ctx, func(tx warden.ReadTx) error {
		if err := tx.Checkpoints(func(c *warden.Checkpoint) error {
			return v.AddCheckpoint([]byte(c.Note))
		}); err != nil {
			return err
		}
		last, err := tx.Receipts(warden.ReceiptFilter{Limit: 1, Descending: true})
		if err == nil && len(last) == 1 {
			size = last[0].Seq + 1
		}
		return err
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
	nchunks := int(size/verifyChunk) + 1 // the last one reads to the end
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
	// The replay folds receipts in seq order beside the verification.
	rp := newReplay(c.Projections)
	var scanErr error
	var done uint64
	for i := 0; i < nchunks && scanErr == nil; i++ {
		var ch chunk
		select {
		case ch = <-results[i]:
		case <-ctx.Done():
			scanErr = ctx.Err()
			continue
		}
		<-sem
		if ch.err != nil {
			scanErr = ch.err
			break
		}
		for _, r := range ch.recs {
			if err := p.Push(r); err != nil {
				break
			}
		}
		rp.push(ch.recs)
		done += uint64(len(ch.recs))
		if c.Progress != nil {
			c.Progress(done, max(size, done))
		}
	}
	cancel()
	perr := p.Close()
	rerr := rp.close()
	if perr != nil {
		return nil, perr
	}
	if scanErr != nil {
		return nil, scanErr
	}
	sum, err := v.Finish()
	if err != nil {
		return nil, err
	}
	if rerr != nil {
		return nil, rerr
	}
	// Caches and state, in one snapshot with the receipts appended since.
	err = s.View(context.WithoutCancel(ctx), func(tx warden.ReadTx) error {
		if err := checkCaches(tx, sum, rp); err != nil {
			return err
		}
		return rp.compare(tx)
	})
	if err != nil {
		return nil, err
	}
	return sum, nil
}

// checkCaches compares the store's head and Merkle nodes with the verified
// summary, folding the receipts appended since the scan into the replay.
func checkCaches(tx warden.ReadTx, sum *ledger.Summary, rp *replay) error {
	tampered := func(seq uint64, format string, args ...any) error {
		return &ledger.VerifyError{Seq: seq, Reason: fmt.Sprintf(format, args...)}
	}
	head, err := tx.Head()
	if err != nil {
		return tampered(sum.Count, "the store's ledger head cannot be read (%v); the receipts give %d entries", err, sum.Count)
	}
	if head.Size < sum.Count {
		return tampered(head.Size, "receipt %d is beyond the ledger head (size %d): rows were added behind the store's back", head.Size, head.Size)
	}
	root, err := ledger.RootAt(sum.Count, tx.MerkleHashes)
	if err != nil || !bytes.Equal(root, sum.Root) {
		return tampered(sum.Count, "the stored Merkle tree at size %d does not match the receipts (%v)", sum.Count, err)
	}
	// Receipts appended since the scan (a live server): re-hash them and
	// extend the tree, which must end at the cached head.
	tree, err := ledger.TreeAt(sum.Count, tx.MerkleHashes)
	if err != nil {
		return err
	}
	next := sum.Count
	var extra []*warden.Receipt
	err = tx.ScanReceipts(sum.Count, func(r *warden.Receipt) error {
		if r.Seq != next {
			return tampered(next, "receipt %d is missing (found %d)", next, r.Seq)
		}
		leaf, err := ledger.CheckReceipt(r)
		if err != nil {
			return tampered(r.Seq, "%v", err)
		}
		if err := tree.Append(leaf, nil); err != nil {
			return err
		}
		extra = append(extra, r)
		next++
		if len(extra) >= verifyChunk {
			rp.push(extra)
			extra = nil
		}
		return nil
	})
	if err != nil {
		return err
	}
	rp.push(extra)
	if next != head.Size {
		return tampered(min(next, head.Size), "the ledger head says %d entries; the receipts give %d", head.Size, next)
	}
	if !bytes.Equal(tree.Root(), head.RootHash) && next > 0 {
		return tampered(sum.CheckpointSize, "the ledger head's root does not match the receipts' (size %d)", next)
	}
	return nil
}

// replay folds receipts into projections in the order pushed: on a
// goroutine of its own while the scan runs (overlapping the verification),
// then, after close, at once.
type replay struct {
	projections []Projection
	in          chan []*warden.Receipt
	done        chan error
	closed      bool
	err         error
}

func newReplay(ps []Projection) *replay {
	// One chunk queued: the replay keeps up or holds the scan back, so the
	// receipts in memory stay a few chunks whatever the log's size.
	rp := &replay{projections: ps, in: make(chan []*warden.Receipt, 1), done: make(chan error, 1)}
	go func() {
		var err error
		for batch := range rp.in {
			err = apply(ps, batch, err)
		}
		rp.done <- err
	}()
	return rp
}

// apply folds batch into ps unless err is already set; it returns the
// first error.
func apply(ps []Projection, batch []*warden.Receipt, err error) error {
	for _, r := range batch {
		for _, p := range ps {
			if err != nil {
				return err
			}
			err = p.Apply(r)
		}
	}
	return err
}

func (rp *replay) push(b []*warden.Receipt) {
	switch {
	case len(rp.projections) == 0 || len(b) == 0:
	case rp.closed:
		rp.err = apply(rp.projections, b, rp.err)
	default:
		rp.in <- b
	}
}

// close waits for the goroutine to fold everything pushed and returns its
// first error; later pushes fold at once.
func (rp *replay) close() error {
	close(rp.in)
	rp.err, rp.closed = <-rp.done, true
	return rp.err
}

// compare compares every projection with tx.
func (rp *replay) compare(tx warden.ReadTx) error {
	if rp.err != nil {
		return rp.err
	}
	se := &StateError{}
	report := func(m Mismatch) {
		if len(se.Mismatches) < MaxMismatches {
			se.Mismatches = append(se.Mismatches, m)
		} else {
			se.More++
		}
	}
	if len(rp.projections) > 0 {
		// The records are what the projections compare; the columns the
		// rules act on must say the same.
		if err := tx.CheckColumns(func(table, key, reason string) {
			report(Mismatch{Table: table, Key: key, Reason: reason})
		}); err != nil {
			return err
		}
	}
	for _, p := range rp.projections {
		if err := p.Compare(tx, report); err != nil {
			return err
		}
	}
	if len(se.Mismatches) > 0 {
		return se
	}
	return nil
}

// VerifyExport verifies an export read from r. The export may have been
// re-formatted (`jq .`, json.dumps, an indenting encoder: one value over
// several lines, members reordered, other escapes): every line is parsed
// strictly (package jsonx: no repeated or unknown keys), and a receipt body
// not in canonical form is verified by its exact canonical form
// (ledger.Verifier.AcceptReformatted, set here), since root_hash commits
// to that form and not to the bytes of the file. Errors name the line a
// value starts on.
func VerifyExport(r io.Reader, v *ledger.Verifier) (*ledger.Summary, *ExportHeader, error) {
	lc := &lineCounter{r: bufio.NewReaderSize(r, 1<<16)}
	dec := json.NewDecoder(lc)
	v.AcceptReformatted = true
	// next reads the next value and the line it starts on.
	next := func() (json.RawMessage, int, error) {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if err == io.EOF {
				return nil, 0, err
			}
			return nil, lc.lineAt(dec.InputOffset()), err
		}
		return raw, lc.lineAt(dec.InputOffset() - int64(len(raw))), nil
	}
	raw, line, err := next()
	if err == io.EOF {
		return nil, nil, fmt.Errorf("export header: the export is empty")
	} else if err != nil {
		return nil, nil, fmt.Errorf("export header (line %d): %w", line, err)
	}
	var hdr ExportHeader // read leniently: it is not signed, and may grow
	if err := json.Unmarshal(raw, &hdr); err != nil {
		return nil, nil, fmt.Errorf("export header (line %d): %w", line, err)
	}
	if hdr.Format != ExportFormat {
		return nil, nil, fmt.Errorf("export format %q is not %q", hdr.Format, ExportFormat)
	}
	p := v.Pipeline(runtime.GOMAXPROCS(0))
	seenReceipt := false
	for {
		raw, line, err := next()
		if err == io.EOF {
			break
		} else if err != nil {
			p.Close()
			return nil, &hdr, &ExportLineError{Line: line, Err: err}
		}
		if isCheckpointLine(raw) {
			var cp ExportLine
			if err := jsonx.Decode(raw, &cp); err != nil {
				p.Close()
				return nil, &hdr, &ExportLineError{Line: line, What: "checkpoint", Err: err}
			}
			if seenReceipt {
				p.Close()
				return nil, &hdr, &ExportLineError{Line: line, Err: errors.New("a checkpoint after the first receipt; checkpoints come first")}
			}
			if err := v.AddCheckpoint([]byte(cp.Checkpoint)); err != nil {
				p.Close()
				return nil, &hdr, err
			}
			continue
		}
		seenReceipt = true
		rec := new(warden.Receipt)
		if err := jsonx.Decode(raw, rec); err != nil {
			p.Close()
			return nil, &hdr, &ExportLineError{Line: line, What: "receipt", Err: err}
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

// ExportLineError is an export line that is not a well-formed checkpoint
// or receipt line (a repeated key, a stray value, a checkpoint among the
// receipts): the file is not an export warden wrote, so it fails
// verification as a tampered one does. It names the line a person finds
// the value on.
type ExportLineError struct {
	Line int
	What string // "receipt", "checkpoint", or "" when the line is not JSON
	Err  error
}

func (e *ExportLineError) Error() string {
	msg := warden.ErrorMessage(e.Err)
	if e.What != "" {
		return fmt.Sprintf("export line %d is not a valid %s: %s", e.Line, e.What, msg)
	}
	return fmt.Sprintf("export line %d: %s", e.Line, msg)
}

// isCheckpointLine reports whether an export value is a checkpoint line:
// an object with a "checkpoint" member (receipts have none). A malformed
// one is then refused by the strict decoder. Most values are receipts
// without the word, so the parse is skipped for them.
func isCheckpointLine(raw []byte) bool {
	if !bytes.Contains(raw, []byte(`"checkpoint"`)) {
		return false
	}
	var probe struct {
		Checkpoint json.RawMessage `json:"checkpoint"`
	}
	return json.Unmarshal(raw, &probe) == nil && probe.Checkpoint != nil
}

// lineCounter passes a stream through and tells the line an offset of it
// lies on. Offsets asked for MUST NOT decrease; it keeps only what was read
// past the last one.
type lineCounter struct {
	r       io.Reader
	pending [][]byte // read, not yet counted, in order
	base    int64    // offset of pending[0][0]
	lines   int      // newlines before base
}

func (c *lineCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.pending = append(c.pending, bytes.Clone(p[:n]))
	}
	return n, err
}

// lineAt returns the 1-based line of offset off.
func (c *lineCounter) lineAt(off int64) int {
	for len(c.pending) > 0 && off > c.base {
		chunk := c.pending[0]
		n := min(int64(len(chunk)), off-c.base)
		c.lines += bytes.Count(chunk[:n], []byte{'\n'})
		c.base += n
		if n == int64(len(chunk)) {
			c.pending = c.pending[1:]
		} else {
			c.pending[0] = chunk[n:]
		}
	}
	return c.lines + 1
}

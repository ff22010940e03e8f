package cli

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/datadir"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/ledger"
)

func (e *env) exportCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "export", Short: "Export receipts for offline verification"}
	var out string
	receipts := &cobra.Command{
		Use:   "receipts -o FILE",
		Short: "Write every receipt as JSON Lines, after every signed checkpoint",
		Long: `Write the whole log as JSON Lines, from one snapshot: a header, every signed
checkpoint, then every receipt, for warden verify --export. Without -o it goes
to stdout. With --json, -o is required and stdout carries a summary:
{"written", "bytes", "sha256", "checkpoints", "receipts"}.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := e.needFile(out); err != nil {
				return err
			}
			var n exportCount
			var wr *written
			if err := e.withLocal(func(l *local) (err error) {
				wr, err = e.writeOutput(out, 0o644, func(w io.Writer) error {
					return l.core.Export(e.ctx, &exportCounter{w: w, n: &n}, l.dir.Origin)
				})
				return err
			}); err != nil || wr == nil {
				return err
			}
			return e.printSummary(wr, map[string]any{"checkpoints": n.Checkpoints, "receipts": n.Receipts},
				fmt.Sprintf("%s, %s", plural(n.Checkpoints, "checkpoint"), plural(n.Receipts, "receipt")))
		},
	}
	receipts.Flags().StringVarP(&out, "output", "o", "", "output file (default stdout)")
	cmd.AddCommand(receipts)
	return cmd
}

func (e *env) verifyCmd() *cobra.Command {
	var export, pubkey string
	var trusted []string
	var allowUnanchored bool
	cmd := &cobra.Command{
		Use:   "verify (--data DIR | --export FILE) [--pubkey FILE]",
		Short: "Re-hash every receipt, rebuild the Merkle tree and check every signed checkpoint",
		Long: `Verify a receipt log, live in a data directory or from an export file.

Every body is re-hashed, every leaf recomputed, the Merkle tree rebuilt, and
every checkpoint's signature and root checked. On any edited, deleted,
reordered, inserted or truncated receipt, or a forged checkpoint, it exits 3
naming the FIRST bad sequence number. On a data directory it then replays the
receipts and compares what they build with the state tables (credentials,
escalations, budgets, treasury operations, approvals, approver keys,
incidents, recovery requirements, counters, the integrity baseline) and the
store's cached head: a row the receipts cannot explain exits 3 naming it.
Exit 0 prints a one-line summary.

Trust comes from the public key: give --pubkey a copy you keep elsewhere.
Without it, --data uses DIR/ledger.pub and --export the key in the file,
which an attacker who rewrote the data could also have replaced. Give
--checkpoint a signed checkpoint saved earlier (GET /api/v1/checkpoint?format=note)
to also catch a log truncated together with its later checkpoints.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var keyText []byte
			var err error
			if pubkey != "" {
				if keyText, err = os.ReadFile(pubkey); err != nil {
					return usageError{err}
				}
			}
			var extra [][]byte
			for _, f := range trusted {
				b, err := os.ReadFile(f)
				if err != nil {
					return usageError{err}
				}
				extra = append(extra, b)
			}
			var sum *ledger.Summary
			if export != "" {
				sum, err = verifyExportFile(export, keyText, allowUnanchored, extra, e.stderr)
			} else {
				if keyText == nil {
					if keyText, err = os.ReadFile(filepath.Join(e.data, datadir.PubFile)); err != nil {
						return usageError{fmt.Errorf("no public key: %w (pass --pubkey)", err)}
					}
				}
				sum, err = e.verifyData(keyText, allowUnanchored, extra)
			}
			if err != nil {
				return err
			}
			return e.print(map[string]any{"ok": true, "count": sum.Count, "root": sum.Root, "checkpoint_size": sum.CheckpointSize, "checkpoints": sum.Checkpoints},
				func(w io.Writer) { fmt.Fprintln(w, sum.String()) })
		},
	}
	cmd.Flags().StringVar(&export, "export", "", "verify this export file instead of the data directory")
	cmd.Flags().StringVar(&pubkey, "pubkey", "", "file with the trusted ledger public key (signed-note verifier key)")
	cmd.Flags().StringArrayVar(&trusted, "checkpoint", nil, "a signed checkpoint note saved earlier; the log must extend it (repeatable)")
	cmd.Flags().BoolVar(&allowUnanchored, "allow-unanchored", false, "accept receipts newer than the last checkpoint (a live server between checkpoints)")
	return cmd
}

func newVerifier(keyText []byte, allowUnanchored bool, trusted [][]byte) (*ledger.Verifier, error) {
	known, _, err := ledger.ParseVerifiers(keyText)
	if err != nil {
		return nil, usageError{err}
	}
	v := ledger.NewVerifier(known, "")
	v.AllowUnanchored = allowUnanchored
	for _, c := range trusted {
		if err := v.AddCheckpoint(c); err != nil {
			return nil, verifyFailure{error: err}
		}
	}
	return v, nil
}

// verifyResult turns a verification error — a bad log, a receipt that
// cannot be replayed, state the receipts cannot explain — into a
// verifyFailure (exit 3).
func verifyResult(sum *ledger.Summary, err error) (*ledger.Summary, error) {
	var ve *ledger.VerifyError
	var se *engine.StateError
	var re *engine.ReceiptError
	var le *engine.ExportLineError
	switch {
	case errors.As(err, &le):
		return nil, verifyFailure{error: le}
	case asVerifyError(err, &ve):
		return nil, verifyFailure{error: ve}
	case errors.As(err, &se):
		return nil, verifyFailure{error: se}
	case errors.As(err, &re):
		return nil, verifyFailure{error: re}
	}
	return sum, err
}

func (e *env) verifyData(keyText []byte, allowUnanchored bool, trusted [][]byte) (*ledger.Summary, error) {
	v, err := newVerifier(keyText, allowUnanchored, trusted)
	if err != nil {
		return nil, err
	}
	dir, err := datadir.Load(e.data)
	if err != nil {
		return nil, err
	}
	l, err := openDir(dir, nil, nil)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	return verifyResult(engine.CheckStore(e.ctx, l.store, v, &engine.StoreCheck{Projections: l.projections()}))
}

func verifyExportFile(name string, keyText []byte, allowUnanchored bool, trusted [][]byte, stderr io.Writer) (*ledger.Summary, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, usageError{err}
	}
	defer f.Close()
	if keyText == nil {
		// Trust the key inside the export only after saying so.
		hdr, err := peekHeader(name)
		if err != nil {
			return nil, err
		}
		fmt.Fprintln(stderr, "warden: note: no --pubkey given; trusting the public key inside the export")
		keyText = []byte(hdr.PublicKey)
	}
	v, err := newVerifier(keyText, allowUnanchored, trusted)
	if err != nil {
		return nil, err
	}
	sum, _, err := engine.VerifyExport(f, v)
	return verifyResult(sum, err)
}

func (e *env) receiptsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "receipts", Short: "List and show receipts (data directory or --url)"}
	var f warden.ReceiptFilter
	var after int64 = -1
	list := &cobra.Command{
		Use:   "list [--scroll S] [--type T] [--tag T] [--after SEQ] [--limit N] [--desc]",
		Short: "List receipts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if after >= 0 {
				a := uint64(after)
				f.After = &a
			}
			// Every page, like incident list: --limit N stops after N.
			limit := f.Limit
			if limit < 0 {
				return usageError{fmt.Errorf("--limit must be positive")}
			}
			f.Limit = pageSize
			if limit > 0 && limit < pageSize {
				f.Limit = limit
			}
			list := []*warden.Receipt{}
			take := func(page []*warden.Receipt) bool {
				list = append(list, page...)
				if limit > 0 && len(list) >= limit {
					list = list[:limit]
					return false
				}
				return len(page) > 0
			}
			if e.url != "" {
				q := url.Values{}
				for k, v := range map[string]string{"scroll": f.Scroll, "type": f.Type, "tag": f.Tag} {
					if v != "" {
						q.Set(k, v)
					}
				}
				if f.After != nil {
					q.Set("after", strconv.FormatUint(*f.After, 10))
				}
				q.Set("limit", strconv.Itoa(f.Limit))
				if f.Descending {
					q.Set("order", "desc")
				}
				if err := e.api().pages("/api/v1/receipts?"+q.Encode(), func(body []byte) (bool, error) {
					var out struct {
						Receipts []*warden.Receipt `json:"receipts"`
					}
					if err := json.Unmarshal(body, &out); err != nil {
						return false, fmt.Errorf("GET /api/v1/receipts: decoding answer: %w", err)
					}
					return take(out.Receipts), nil
				}); err != nil {
					return err
				}
			} else if err := e.withLocal(func(l *local) error {
				for {
					page, err := l.core.Receipts(e.ctx, f)
					if err != nil || !take(page) || len(page) < f.Limit {
						return err
					}
					last := page[len(page)-1].Seq
					if f.Descending {
						f.Before = &last
					} else {
						f.After = &last
					}
				}
			}); err != nil {
				return err
			}
			return e.print(list, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SEQ\tTIMESTAMP\tSCROLL\tTYPE\tTAGS\tROOT_HASH")
				for _, r := range list {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", r.Seq, r.Timestamp, r.Scroll, r.Type, strings.Join(r.Tags, ","), r.RootHash)
				}
				tw.Flush()
			})
		},
	}
	list.Flags().StringVar(&f.Scroll, "scroll", "", "only this scroll")
	list.Flags().StringVar(&f.Type, "type", "", "only this receipt type")
	list.Flags().StringVar(&f.Tag, "tag", "", "only receipts with this tag")
	list.Flags().Int64Var(&after, "after", -1, "only receipts after this sequence number")
	list.Flags().IntVar(&f.Limit, "limit", 0, "list at most this many (default: every page)")
	list.Flags().BoolVar(&f.Descending, "desc", false, "newest first")

	show := &cobra.Command{
		Use:   "show SEQ",
		Short: "Show one receipt with its inclusion proof against the latest checkpoint",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			seq, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil {
				return usageError{fmt.Errorf("SEQ must be a non-negative integer, not %q", args[0])}
			}
			var rp *engine.ReceiptProof
			if e.url != "" {
				rp = new(engine.ReceiptProof)
				if err := e.client().do("GET", "/api/v1/receipts/"+args[0], nil, rp); err != nil {
					return err
				}
			} else {
				if err := e.withLocal(func(l *local) (err error) {
					rp, err = l.core.Receipt(e.ctx, seq)
					return err
				}); err != nil {
					return err
				}
			}
			return e.print(rp, func(w io.Writer) {
				r := rp.Receipt
				fmt.Fprintf(w, "seq:        %d\ntype:       %s\nscroll:     %s\ntimestamp:  %s\ntags:       %s\nroot_hash:  %s\nleaf_hash:  %s\nbody:       %s\n",
					r.Seq, r.Type, r.Scroll, r.Timestamp, strings.Join(r.Tags, ","), r.RootHash, r.LeafHash, r.Body)
				if rp.Proof == nil {
					fmt.Fprintln(w, "proof:      not yet anchored (newer than the latest checkpoint)")
					return
				}
				fmt.Fprintf(w, "proof:      leaf %d of %d, %d hashes\n", rp.Proof.LeafIndex, rp.Proof.TreeSize, len(rp.Proof.Hashes))
				for _, h := range rp.Proof.Hashes {
					fmt.Fprintf(w, "            %s\n", base64.StdEncoding.EncodeToString(h))
				}
				fmt.Fprintf(w, "checkpoint:\n%s", indent(rp.Proof.Checkpoint))
			})
		},
	}
	cmd.AddCommand(list, show)
	return cmd
}

func indent(s string) string {
	lines := strings.SplitAfter(s, "\n")
	var b strings.Builder
	for _, l := range lines {
		if l != "" {
			b.WriteString("    " + l)
		}
	}
	return b.String()
}

// exportCount is what an export holds.
type exportCount struct{ Checkpoints, Receipts int64 }

// exportCounter passes an export through, counting its checkpoint and
// receipt lines (each line after the header is one or the other).
type exportCounter struct {
	w      io.Writer
	n      *exportCount
	lines  int64
	start  []byte // the beginning of the current line, to tell which
	inLine bool
}

// checkpointPrefix begins every checkpoint line (engine.ExportLine).
const checkpointPrefix = `{"checkpoint":`

func (c *exportCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	for _, b := range p[:n] {
		if !c.inLine {
			c.inLine, c.start = true, c.start[:0]
		}
		if b == '\n' {
			c.endLine()
			continue
		}
		if len(c.start) < len(checkpointPrefix) {
			c.start = append(c.start, b)
		}
	}
	return n, err
}

func (c *exportCounter) endLine() {
	c.inLine = false
	c.lines++
	switch {
	case c.lines == 1: // the header
	case string(c.start) == checkpointPrefix:
		c.n.Checkpoints++
	default:
		c.n.Receipts++
	}
}

package ledger_test

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
	"golang.org/x/mod/sumdb/note"
)

// testOrigin is the checkpoint origin (and key name) of every test log.
const testOrigin = "warden.test/log"

// peerOrigin names a second, unrelated log.
const peerOrigin = "peer.test/log"

// MustHex decodes a hex constant.
func MustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// MustKeys generates a key pair named origin and returns it with its signer
// and verifier list.
func MustKeys(tb testing.TB, origin string) (ledger.Keys, note.Signer, note.Verifiers) {
	tb.Helper()
	k, err := ledger.GenerateKeys(origin)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := note.NewSigner(k.Signer)
	if err != nil {
		tb.Fatal(err)
	}
	vs, _, err := ledger.ParseVerifiers([]byte(k.Verifier))
	if err != nil {
		tb.Fatal(err)
	}
	return k, s, vs
}

// MustReceipt returns the sealed receipt at seq of a deterministic draft.
func MustReceipt(tb testing.TB, seq uint64, scroll string) (*warden.Receipt, []byte) {
	tb.Helper()
	r, leaf, err := ledger.NewReceipt(seq, warden.Draft{
		Type:   fmt.Sprintf("event_%d", seq%5),
		Scroll: scroll,
		Tags:   []string{"t" + fmt.Sprint(seq%3), "seq/" + fmt.Sprint(seq)},
		Time:   time.Date(2026, 1, 2, 3, 4, 5, int(seq)*1000, time.UTC),
		Body: map[string]any{
			"actor":  fmt.Sprintf("principal-%d", seq%7),
			"amount": seq * 100,
			"note":   fmt.Sprintf("receipt number %d, \"quoted\" é", seq),
			"nested": map[string]any{"b": []any{1, "two", true, nil}, "a": 0.5},
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return r, leaf
}

// cloneReceipt returns a deep copy of r, so tampering never aliases the
// original log.
func cloneReceipt(r *warden.Receipt) *warden.Receipt {
	c := *r
	c.Tags = slices.Clone(r.Tags)
	c.Body = bytes.Clone(r.Body)
	return &c
}

// reseal recomputes root_hash and leaf_hash of r after an edit, as a forger
// with write access to the store (but not the signing key) would.
func reseal(tb testing.TB, r *warden.Receipt) {
	tb.Helper()
	r.RootHash = ledger.BodyHash(r.Body)
	entry, err := ledger.EntryBytes(r)
	if err != nil {
		tb.Fatal(err)
	}
	r.LeafHash = hex.EncodeToString(ledger.LeafHash(entry))
}

var testScrolls = []string{warden.ScrollIdentity, warden.ScrollTreasury, warden.ScrollPolicy, warden.ScrollCognitive}

// testLog is a log of sealed receipts over several scrolls, with signed
// checkpoints at chosen sizes.
type testLog struct {
	keys        ledger.Keys
	peerKeys    ledger.Keys // a second key, named peerOrigin
	peer        note.Signer
	receipts    []*warden.Receipt
	leaves      [][]byte
	tree        *ledger.Tree
	signer      note.Signer
	verifiers   note.Verifiers
	checkpoints [][]byte
	bodies      map[uint64]*ledger.CheckpointBody
}

// MustLog builds n receipts and signs a checkpoint at every size in cps.
func MustLog(tb testing.TB, n int, cps ...int) *testLog {
	tb.Helper()
	keys, signer, verifiers := MustKeys(tb, testOrigin)
	peerKeys, peer, _ := MustKeys(tb, peerOrigin)
	l := &testLog{keys: keys, peerKeys: peerKeys, peer: peer, tree: ledger.NewTree(), signer: signer, verifiers: verifiers, bodies: map[uint64]*ledger.CheckpointBody{}}
	scrolls := map[string]*ledger.Tree{}
	checkpoint := func() {
		c := &ledger.CheckpointBody{Origin: testOrigin, Size: l.tree.Size(), Root: l.tree.Root()}
		names := make([]string, 0, len(scrolls))
		for name := range scrolls {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			c.Scrolls = append(c.Scrolls, ledger.ScrollRoot{Name: name, Size: scrolls[name].Size(), Root: scrolls[name].Root()})
		}
		msg, err := ledger.SignCheckpoint(c, signer)
		if err != nil {
			tb.Fatal(err)
		}
		l.checkpoints = append(l.checkpoints, msg)
		l.bodies[c.Size] = c
	}
	for i := 0; i <= n; i++ {
		if slices.Contains(cps, i) {
			checkpoint()
		}
		if i == n {
			break
		}
		scroll := testScrolls[(i*7/3)%len(testScrolls)]
		r, leaf := MustReceipt(tb, uint64(i), scroll)
		l.receipts = append(l.receipts, r)
		l.leaves = append(l.leaves, leaf)
		if err := l.tree.Append(leaf, nil); err != nil {
			tb.Fatal(err)
		}
		if scrolls[scroll] == nil {
			scrolls[scroll] = ledger.NewTree()
		}
		if err := scrolls[scroll].Append(leaf, nil); err != nil {
			tb.Fatal(err)
		}
	}
	return l
}

// cloneReceipts deep-copies the log's receipts for tampering.
func (l *testLog) cloneReceipts() []*warden.Receipt {
	out := make([]*warden.Receipt, len(l.receipts))
	for i, r := range l.receipts {
		out[i] = cloneReceipt(r)
	}
	return out
}

// sign signs c with the log's key.
func (l *testLog) sign(tb testing.TB, c *ledger.CheckpointBody) []byte {
	tb.Helper()
	msg, err := ledger.SignCheckpoint(c, l.signer)
	if err != nil {
		tb.Fatal(err)
	}
	return msg
}

// verifyMode is one way of driving a Verifier.
type verifyMode struct {
	name string
	run  func(v *ledger.Verifier, recs []*warden.Receipt) error
}

// verifyModes drive the verifier the ways its callers do: Add per receipt,
// CheckReceipt ahead of time then AddChecked (the parallel pattern), and the
// Pipeline. Each stops at the first error, as a caller would.
var verifyModes = []verifyMode{
	{"Add", func(v *ledger.Verifier, recs []*warden.Receipt) error {
		for _, r := range recs {
			if err := v.Add(r); err != nil {
				return err
			}
		}
		return nil
	}},
	{"AddChecked", func(v *ledger.Verifier, recs []*warden.Receipt) error {
		leaves := make([][]byte, len(recs))
		for i, r := range recs {
			leaves[i], _ = ledger.CheckReceipt(r)
		}
		for i, r := range recs {
			if err := v.AddChecked(r, leaves[i]); err != nil {
				return err
			}
		}
		return nil
	}},
	{"Pipeline", func(v *ledger.Verifier, recs []*warden.Receipt) error {
		p := v.Pipeline(2)
		for _, r := range recs {
			if err := p.Push(r); err != nil {
				break
			}
		}
		return p.Close()
	}},
}

// runVerifier feeds checkpoints then receipts to a fresh verifier the
// documented way and returns Finish's result or the first error.
func runVerifier(known note.Verifiers, cps [][]byte, recs []*warden.Receipt, mode verifyMode, allowUnanchored bool) (*ledger.Summary, error) {
	v := ledger.NewVerifier(known, testOrigin)
	v.AllowUnanchored = allowUnanchored
	for _, c := range cps {
		if err := v.AddCheckpoint(c); err != nil {
			return nil, err
		}
	}
	if err := mode.run(v, recs); err != nil {
		return nil, err
	}
	return v.Finish()
}

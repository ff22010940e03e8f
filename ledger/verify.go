package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"

	warden "github.com/warden-sh/warden"
	"golang.org/x/mod/sumdb/note"
)

// VerifyError names the first sequence number at which a log stops being
// what its signed checkpoints commit to, and why.
type VerifyError struct {
	Seq    uint64
	Reason string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("first bad sequence number %d: %s", e.Seq, e.Reason)
}

// CheckReceipt checks one receipt on its own: its body is canonical JSON,
// RootHash is the BLAKE3 of the body, and LeafHash is the hash of its entry.
// It returns the recomputed leaf hash. It is safe for concurrent use, so a
// verifier may check receipts in parallel and feed them to
// Verifier.AddChecked in order.
func CheckReceipt(r *warden.Receipt) ([]byte, error) {
	fail := func(format string, args ...any) ([]byte, error) {
		return nil, &VerifyError{Seq: r.Seq, Reason: fmt.Sprintf(format, args...)}
	}
	if r.SchemaVersion != warden.SchemaVersion {
		return fail("schema_version %q is not %q", r.SchemaVersion, warden.SchemaVersion)
	}
	if !warden.ValidScroll(r.Scroll) {
		return fail("unknown scroll %q", r.Scroll)
	}
	if !bodyHashIs(r.Body, r.RootHash) {
		if !isCanonical(r.Body) {
			if c, err := CanonicalExact(r.Body); err == nil && bodyHashIs(c, r.RootHash) {
				return fail("body is not in canonical form (RFC 8785), though its canonical form matches root_hash: re-formatted, not edited")
			}
		}
		return fail("body does not match root_hash (body edited): computed %s, receipt says %s", BodyHash(r.Body), r.RootHash)
	}
	// isCanonical(b) is Canonical(b) == b without building a parse tree.
	if !isCanonical(r.Body) {
		return fail("body is not RFC 8785 canonical JSON")
	}
	// The leaf hash of the entry, hashing 0x00 ‖ entry from one buffer.
	buf, err := appendEntry(append(make([]byte, 0, 1+entrySize(r)), 0), r)
	if err != nil {
		return fail("%v", err)
	}
	sum := sha256.Sum256(buf)
	leaf := sum[:]
	// Compare the lowercase hex Seal writes, not the decoded bytes: hex
	// decoding also accepts upper case, which would let an export be altered
	// without any check noticing.
	var want [2 * HashSize]byte
	hex.Encode(want[:], leaf)
	if string(want[:]) != r.LeafHash {
		stored, _ := hex.DecodeString(r.LeafHash)
		return fail("%s", diagnoseLeaf(r, stored))
	}
	return leaf, nil
}

// diagnoseLeaf explains a leaf-hash mismatch: a receipt whose stored leaf
// hash is right for a neighbouring seq was moved by an insertion or deletion.
func diagnoseLeaf(r *warden.Receipt, stored []byte) string {
	if seq, ok := writtenAs(r, stored); ok {
		return fmt.Sprintf("receipt was written as seq %d: receipts were inserted, deleted or renumbered before it", seq)
	}
	return "fields do not match leaf_hash (type, scroll, tags, timestamp, seq or leaf_hash edited)"
}

// writtenAs reports the neighbouring seq (r.Seq-1 or r.Seq+1) for which r's
// entry hashes to stored, if any.
func writtenAs(r *warden.Receipt, stored []byte) (uint64, bool) {
	if len(stored) != HashSize {
		return 0, false
	}
	for _, d := range []int64{-1, 1} {
		c := *r
		c.Seq = uint64(int64(r.Seq) + d)
		if entry, err := EntryBytes(&c); err == nil && bytes.Equal(LeafHash(entry), stored) {
			return c.Seq, true
		}
	}
	return 0, false
}

type checkpointAt struct {
	body *CheckpointBody
	msg  []byte // the signed note, re-checked against the newest key
}

// Verifier rebuilds a log from its receipts in seq order and checks it
// against signed checkpoints. Use AddCheckpoint for every checkpoint first,
// then Add for every receipt in order, then Finish.
//
// The error it reports names the first bad sequence number over everything
// it was given, whatever the order of the checkpoints: a bad checkpoint does
// not stop verification of the receipts before the seq it blames, since one
// of those may be bad too.
type Verifier struct {
	known       *keyring
	origin      string
	checkpoints []checkpointAt
	next        int // index into checkpoints of the next one to reach
	tree        *Tree
	scrolls     map[string]*Tree
	last        []byte       // leaf hash of the last receipt appended
	verified    uint64       // size of the largest checkpoint the rebuilt log matched
	bad         []badClaim   // failed checkpoints, blamed once all are registered
	pending     []pendingKey // handed-over keys awaiting a trusted checkpoint
	// newest is the last handed-over key, trusted from newestFrom on:
	// checkpoints beyond it must carry its signature, so a retired key
	// (perhaps the compromised one) cannot vouch for anything later.
	newest     note.Verifier
	newestFrom uint64
	deferred   []deferredCheckpoint
	err        *VerifyError // the lowest failure so far
	// AllowUnanchored accepts receipts after the newest checkpoint (a live
	// log between checkpoints). By default they fail verification, since
	// nothing signed vouches for them.
	AllowUnanchored bool
	// AcceptReformatted checks a receipt body that is not in canonical
	// form by its canonical form (CanonicalExact), which is what root_hash
	// commits to: an export re-formatted by `jq .` or json.dumps changes
	// how values are written, not what they are. A body whose canonical
	// form is not exact (a repeated key, a rounded number) fails. Such
	// bodies are counted in Summary.Reformatted. Off, a body MUST be
	// canonical as it stands (what a store holds).
	AcceptReformatted bool
	reformatted       atomic.Uint64
	// AllowNoCheckpoint accepts a log no checkpoint was ever signed for
	// (with AllowUnanchored: all of it unanchored). Only a caller that
	// knows nothing was signed yet sets it (a server starting on a log it
	// has just re-hashed from the first receipt); by default a log without
	// checkpoints fails, since a stripped one looks the same.
	AllowNoCheckpoint bool
}

// NewVerifier returns a verifier that trusts checkpoints signed by known for
// origin (empty origin: take it from the first checkpoint).
func NewVerifier(known note.Verifiers, origin string) *Verifier {
	return &Verifier{known: &keyring{base: known}, origin: origin, tree: NewTree(), scrolls: map[string]*Tree{}}
}

// KeyRotationType is the receipt type of a ledger signing-key hand-over.
// Its body names the new key ("new_pubkey", a signed-note verifier key);
// the checkpoint that first covers it is signed by the old key and the new
// one. A verifier trusts the new key once a checkpoint signed by a key it
// already trusts covers the hand-over, so verification spans every key the
// log ever had, starting from the first public key alone.
const KeyRotationType = warden.ReceiptKeyRotation

// keyring is the verifier's trusted keys: those it was given, plus those
// handed over inside the log.
type keyring struct {
	base  note.Verifiers
	extra []note.Verifier
}

func (k *keyring) Verifier(name string, hash uint32) (note.Verifier, error) {
	for _, v := range k.extra {
		if v.Name() == name && v.KeyHash() == hash {
			return v, nil
		}
	}
	return k.base.Verifier(name, hash)
}

// pendingKey is a handed-over key not yet covered by a trusted checkpoint.
type pendingKey struct {
	seq uint64
	key note.Verifier
}

// deferredCheckpoint is a checkpoint signed by a key not (yet) trusted; it
// is opened if a hand-over to its key becomes trusted, else it fails.
type deferredCheckpoint struct {
	msg  []byte
	size uint64
}

// badClaim is a checkpoint that failed to verify and the size it claims.
type badClaim struct {
	size   uint64
	reason string
}

// AddCheckpoint registers a signed checkpoint. A checkpoint that does not
// verify (forged, signed by an unknown key, for another origin, or
// disagreeing with another at the same size) fails verification; the
// sequence number named is the first one it claims to cover beyond the valid
// checkpoints below it, or an earlier bad receipt. Since that depends on
// checkpoints and receipts not seen yet, the failure is reported by Add,
// AddChecked or Finish, once it is certain to be the first; AddCheckpoint
// itself returns nil.
func (v *Verifier) AddCheckpoint(msg []byte) error {
	c, err := OpenCheckpoint(msg, v.known)
	var unknown *note.UnverifiedNoteError
	if err != nil && errors.As(err, &unknown) {
		v.deferred = append(v.deferred, deferredCheckpoint{msg: msg, size: claimedSize(msg)})
		return nil
	}
	if err != nil {
		size := claimedSize(msg)
		v.bad = append(v.bad, badClaim{size, fmt.Sprintf("checkpoint claiming size %d is forged or unreadable: %v", size, err)})
		return nil
	}
	if v.origin == "" {
		v.origin = c.Origin
	}
	if c.Origin != v.origin {
		v.bad = append(v.bad, badClaim{c.Size, fmt.Sprintf("checkpoint at size %d is for origin %q, not %q", c.Size, c.Origin, v.origin)})
		return nil
	}
	i := sort.Search(len(v.checkpoints), func(i int) bool { return v.checkpoints[i].body.Size >= c.Size })
	if i < len(v.checkpoints) && v.checkpoints[i].body.Size == c.Size {
		if !bytes.Equal(v.checkpoints[i].body.Root, c.Root) {
			v.bad = append(v.bad, badClaim{c.Size, fmt.Sprintf("two signed checkpoints at size %d disagree on the root (split view)", c.Size)})
		}
		return nil
	}
	v.checkpoints = append(v.checkpoints, checkpointAt{})
	copy(v.checkpoints[i+1:], v.checkpoints[i:])
	v.checkpoints[i] = checkpointAt{body: c, msg: msg}
	return nil
}

// coveredBelow returns the size of the largest registered checkpoint smaller
// than size: everything before it is vouched for by another signature.
func (v *Verifier) coveredBelow(size uint64) uint64 {
	var best uint64
	for _, c := range v.checkpoints {
		if c.body.Size < size && c.body.Size > best {
			best = c.body.Size
		}
	}
	return best
}

func claimedSize(msg []byte) uint64 {
	lines := bytes.SplitN(msg, []byte("\n"), 3)
	if len(lines) < 2 {
		return 0
	}
	var n uint64
	fmt.Sscan(string(lines[1]), &n)
	return n
}

func (v *Verifier) fail(seq uint64, reason string) {
	if v.err == nil || seq < v.err.Seq {
		v.err = &VerifyError{Seq: seq, Reason: reason}
	}
}

// settle blames the bad checkpoints, now that every checkpoint is registered,
// and checks any checkpoint at the current size (size 0 before the first
// receipt).
func (v *Verifier) settle() {
	for _, b := range v.bad {
		v.fail(v.coveredBelow(b.size), b.reason)
	}
	v.bad = nil
	v.reach()
}

// reach checks the checkpoints at the current size.
func (v *Verifier) reach() {
	for v.next < len(v.checkpoints) && v.checkpoints[v.next].body.Size == v.tree.Size() {
		v.checkAt(v.checkpoints[v.next].body)
		v.next++
	}
}

// done reports whether the failure found is certainly the first: every
// receipt before it has been appended, so nothing still to come can fail
// earlier.
func (v *Verifier) done() bool { return v.err != nil && v.tree.Size() >= v.err.Seq }

// check is CheckReceipt, after replacing a body not in canonical form by
// its exact canonical form if AcceptReformatted. It is safe for concurrent
// use, and checking a receipt again gives the same answer.
func (v *Verifier) check(r *warden.Receipt) ([]byte, error) {
	if v.AcceptReformatted && !isCanonical(r.Body) {
		c, err := CanonicalExact(r.Body)
		if err != nil {
			return nil, &VerifyError{Seq: r.Seq, Reason: fmt.Sprintf("body is not in canonical form (RFC 8785), and its canonical form would not keep its values exactly: %v", err)}
		}
		r.Body = c
		v.reformatted.Add(1)
	}
	return CheckReceipt(r)
}

// Add checks r (with CheckReceipt, or as AcceptReformatted says) and
// appends it.
func (v *Verifier) Add(r *warden.Receipt) error {
	leaf, err := v.check(r)
	if err != nil {
		leaf = nil // AddChecked re-checks and reports it in order
	}
	return v.AddChecked(r, leaf)
}

// AddChecked appends a receipt already checked by CheckReceipt, whose
// recomputed leaf hash is leaf; a nil leaf makes it run CheckReceipt itself.
// Receipts MUST arrive in seq order; the first gap, repeat or reordering
// fails verification at the expected seq. It returns the first failure once
// no later receipt can change which one is first.
func (v *Verifier) AddChecked(r *warden.Receipt, leaf []byte) error {
	if len(v.bad) > 0 || v.tree.Size() == 0 {
		v.settle()
	}
	if v.done() {
		return v.err
	}
	want := v.tree.Size()
	if cp := v.lastCheckpoint(); want >= cp && !v.AllowUnanchored {
		v.fail(cp, fmt.Sprintf("receipts from %d on are not covered by any signed checkpoint (appended after the last one, or forged)", cp))
		return v.err
	}
	switch {
	case r.Seq > want:
		v.fail(want, fmt.Sprintf("receipt %d is missing (next receipt present is %d): deleted or reordered", want, r.Seq))
		return v.err
	case r.Seq < want:
		if r.Seq == want-1 && r.Seq >= v.verified {
			// Two receipts claim the previous seq. If this one is valid
			// and different, nothing says which is genuine, and the first
			// of them is the first that may be bad.
			if l, err := CheckReceipt(r); err == nil && !bytes.Equal(l, v.last) {
				v.fail(r.Seq, fmt.Sprintf("two different receipts claim seq %d: one was inserted (forged)", r.Seq))
				return v.err
			}
		}
		v.fail(want, fmt.Sprintf("receipt %d appears again or out of order where %d was expected", r.Seq, want))
		return v.err
	case leaf == nil:
		var err error
		if leaf, err = v.check(r); err != nil {
			v.failReceipt(r, err)
			return v.err
		}
	}
	if err := v.tree.Append(leaf, nil); err != nil {
		v.fail(want, err.Error())
		return v.err
	}
	st := v.scrolls[r.Scroll]
	if st == nil {
		st = NewTree()
		v.scrolls[r.Scroll] = st
	}
	if err := st.Append(leaf, nil); err != nil {
		v.fail(want, err.Error())
		return v.err
	}
	v.last = leaf
	if r.Type == KeyRotationType {
		v.noteHandOver(r)
	}
	v.reach()
	if v.done() {
		return v.err
	}
	return nil
}

// failReceipt records that r, at the expected seq, failed CheckReceipt. If r
// carries the leaf hash it would have at the previous seq, it is a genuine
// receipt pushed along by an insertion: the receipt just before it is the
// forged one, unless a checkpoint already vouched for that one or it is an
// exact copy of r (then r is the duplicate).
func (v *Verifier) failReceipt(r *warden.Receipt, err error) {
	ve, ok := err.(*VerifyError)
	if !ok {
		ve = &VerifyError{Seq: r.Seq, Reason: err.Error()}
	}
	if r.Seq > 0 && r.Seq-1 >= v.verified {
		stored, _ := hex.DecodeString(r.LeafHash)
		if seq, ok := writtenAs(r, stored); ok && seq == r.Seq-1 && !bytes.Equal(stored, v.last) {
			v.fail(seq, fmt.Sprintf("receipt %d was written as seq %d, so receipt %d before it was inserted (forged) and the rest renumbered", r.Seq, seq, seq))
			return
		}
	}
	v.fail(ve.Seq, ve.Reason)
}

// checkAt compares the rebuilt tree with a checkpoint of the same size.
func (v *Verifier) checkAt(c *CheckpointBody) {
	from := v.coveredBelow(c.Size)
	if v.newest != nil && c.Size > v.newestFrom {
		msg := v.checkpointMsg(c.Size)
		if _, err := note.Open(msg, note.VerifierList(v.newest)); err != nil {
			v.fail(from, fmt.Sprintf("checkpoint at size %d is not signed by the key the log was handed over to at size %d: a retired key cannot vouch for later receipts", c.Size, v.newestFrom))
			return
		}
	}
	if root := v.tree.Root(); !bytes.Equal(root, c.Root) {
		v.fail(from, fmt.Sprintf("Merkle root of receipts %d..%d is %s but the signed checkpoint at size %d says %s: a receipt in that range was rewritten with recomputed hashes",
			from, c.Size-1, b64(root), c.Size, b64(c.Root)))
		return
	}
	if len(c.Scrolls) != len(v.scrolls) {
		v.fail(from, fmt.Sprintf("checkpoint at size %d names %d scrolls, the log has %d", c.Size, len(c.Scrolls), len(v.scrolls)))
		return
	}
	for _, s := range c.Scrolls {
		t := v.scrolls[s.Name]
		if t == nil || t.Size() != s.Size || !bytes.Equal(t.Root(), s.Root) {
			v.fail(from, fmt.Sprintf("scroll %q root differs from the signed checkpoint at size %d", s.Name, c.Size))
			return
		}
	}
	v.verified = c.Size
	v.trustHandOvers(c.Size)
}

// lastCheckpoint returns the size of the largest registered checkpoint (0 if
// none).
func (v *Verifier) lastCheckpoint() uint64 {
	var last uint64
	if len(v.checkpoints) > 0 {
		last = v.checkpoints[len(v.checkpoints)-1].body.Size
	}
	// A checkpoint by a handed-over key may yet vouch for later receipts.
	for _, d := range v.deferred {
		last = max(last, d.size)
	}
	return last
}

// checkpointMsg returns the signed note registered for size.
func (v *Verifier) checkpointMsg(size uint64) []byte {
	for _, c := range v.checkpoints {
		if c.body.Size == size {
			return c.msg
		}
	}
	return nil
}

// noteHandOver records a key hand-over receipt appended to the log.
func (v *Verifier) noteHandOver(r *warden.Receipt) {
	var body struct {
		NewPubkey string `json:"new_pubkey"`
	}
	if json.Unmarshal(r.Body, &body) != nil {
		return
	}
	if k, err := note.NewVerifier(body.NewPubkey); err == nil {
		v.pending = append(v.pending, pendingKey{seq: r.Seq, key: k})
	}
}

// trustHandOvers trusts every handed-over key that the checkpoint just
// verified (size) covers, and opens the checkpoints those keys signed.
func (v *Verifier) trustHandOvers(size uint64) {
	kept := v.pending[:0]
	added := false
	for _, p := range v.pending {
		if p.seq < size {
			v.known.extra = append(v.known.extra, p.key)
			v.newest, v.newestFrom = p.key, size
			added = true
		} else {
			kept = append(kept, p)
		}
	}
	v.pending = kept
	if !added {
		return
	}
	var still []deferredCheckpoint
	for _, d := range v.deferred {
		if d.size <= size {
			still = append(still, d) // too late to check against the rebuilt tree
			continue
		}
		if _, err := OpenCheckpoint(d.msg, v.known); err != nil {
			still = append(still, d)
			continue
		}
		v.AddCheckpoint(d.msg)
	}
	v.deferred = still
}

// Summary describes a log that verified.
type Summary struct {
	Count          uint64
	Root           []byte
	CheckpointSize uint64
	Checkpoints    int
	Scrolls        map[string]ScrollRoot
	// Reformatted counts the receipt bodies that were not in canonical
	// form and verified by their canonical form (Verifier.AcceptReformatted).
	Reformatted uint64
}

func (s *Summary) String() string {
	out := fmt.Sprintf("ok: %d receipts, root %s, latest checkpoint size %d (%d checkpoints verified)",
		s.Count, b64(s.Root), s.CheckpointSize, s.Checkpoints)
	if s.Reformatted > 0 {
		out += fmt.Sprintf("; %d receipt bodies were re-formatted and verified in their canonical form (RFC 8785)", s.Reformatted)
	}
	return out
}

// Finish ends verification: every checkpoint must have been reached (else the
// log was truncated) and, unless AllowUnanchored, every receipt covered.
func (v *Verifier) Finish() (*Summary, error) {
	// Checkpoints no trusted hand-over vouched for are forged.
	for _, d := range v.deferred {
		v.bad = append(v.bad, badClaim{d.size, fmt.Sprintf("checkpoint claiming size %d is signed by a key neither given nor handed over in the log", d.size)})
	}
	v.deferred = nil
	v.settle()
	n := v.tree.Size()
	if v.next < len(v.checkpoints) {
		c := v.checkpoints[v.next].body
		v.fail(n, fmt.Sprintf("log ends at %d receipts but a signed checkpoint covers %d: truncated", n, c.Size))
	}
	if len(v.checkpoints) == 0 && !v.AllowNoCheckpoint {
		v.fail(0, "no signed checkpoint: nothing vouches for this log (an empty or stripped log)")
	}
	cpSize := v.lastCheckpoint()
	if n > cpSize && !v.AllowUnanchored {
		v.fail(cpSize, fmt.Sprintf("receipts %d..%d are not covered by any signed checkpoint (appended after the last one, or forged)", cpSize, n-1))
	}
	if v.err != nil {
		return nil, v.err
	}
	s := &Summary{Count: n, Root: v.tree.Root(), CheckpointSize: cpSize, Checkpoints: len(v.checkpoints), Scrolls: map[string]ScrollRoot{},
		Reformatted: v.reformatted.Load()}
	for name, t := range v.scrolls {
		s.Scrolls[name] = ScrollRoot{Name: name, Size: t.Size(), Root: t.Root()}
	}
	return s, nil
}

func b64(h []byte) string { return base64.StdEncoding.EncodeToString(h) }

package forensic

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
	"golang.org/x/mod/sumdb/note"
)

// Options configure verification. At least one of HMACKey, Verifiers and
// TrustEmbeddedKey MUST be set; Verify returns ErrNoKey otherwise.
type Options struct {
	// HMACKey, if set, checks the HMAC signature.
	HMACKey []byte
	// Verifiers, if set, are the trusted ledger keys that check the
	// bundle note and the checkpoint.
	Verifiers note.Verifiers
	// TrustEmbeddedKey, when Verifiers is nil, checks the bundle note and
	// the checkpoint with the key the bundle carries, and Report.EmbeddedKey
	// says so. That proves the bundle is intact, never who made it: anyone
	// can re-sign an edited bundle with a key of their own. With neither
	// Verifiers nor TrustEmbeddedKey the note, the checkpoint and everything
	// that needs the checkpoint are not checked (Report.SignaturesChecked).
	TrustEmbeddedKey bool
}

// Report is what verification found.
type Report struct {
	OK           bool   `json:"ok"` // no problem found
	BundleHash   string `json:"bundle_hash"`
	Incidents    int    `json:"incidents"`
	AuditEntries int    `json:"audit_entries"`
	Proofs       int    `json:"inclusion_proofs"`
	Unanchored   int    `json:"unanchored_entries"`
	HMACChecked  bool   `json:"hmac_checked"`
	// SignaturesChecked is true when the bundle note and the checkpoint
	// were checked with a key (trusted, or embedded: see EmbeddedKey).
	SignaturesChecked bool     `json:"signatures_checked"`
	EmbeddedKey       bool     `json:"embedded_key"`
	Problems          []string `json:"problems"`
}

// ErrTampered is returned (wrapped) when any check fails; Report.Problems
// names every failed check.
var ErrTampered = errors.New("forensic bundle failed verification")

// ErrNoKey is returned when Options name no key to verify with.
var ErrNoKey = errors.New("forensic: no key to verify with: give an HMAC key, trusted ledger keys, or trust the embedded key explicitly")

const maxProblems = 50

func (r *Report) problem(format string, args ...any) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	} else if len(r.Problems) == maxProblems {
		r.Problems = append(r.Problems, "… further problems not listed")
	}
}

type entry struct {
	seq  uint64
	leaf []byte
}

type snapshot struct {
	seq    uint64
	digest [32]byte
}

// impliedRoot is what an inclusion proof comes to, computed as the proof
// streams by so the proof's hashes need not be kept.
type impliedRoot struct {
	seq, treeSize uint64
	root          []byte // nil: see err, or no entry had seq
	err           error
}

// Verify reads a bundle from r and checks it, naming every failure in
// Report.Problems (and the returned ErrTampered). It checks:
//
//   - bundle_hash against the canonical content;
//   - the HMAC signature (with Options.HMACKey);
//   - the ed25519 bundle note and the checkpoint (with Options.Verifiers,
//     or the embedded key with Options.TrustEmbeddedKey); with a verified
//     checkpoint also the inclusion proof of every anchored audit entry
//     and that the anchored entries rebuild the checkpoint's incident
//     scroll root (no entry missing, added or altered);
//   - every audit entry's body and leaf hash, and that it is an
//     incident-scroll receipt in seq order;
//   - every incident record against its latest receipted snapshot;
//   - that every incident with a snapshot receipt among the audit entries
//     is in incidents. The export reads both from one snapshot without
//     filters, and incidents are never deleted, so a missing one was
//     dropped from the bundle;
//   - the system_state fields the bundle determines: total_incidents,
//     open_incidents, contained_count, resolved_count, by_class and
//     open_by_severity recomputed from incidents (warden.StatsDelta, the
//     rule the server's counters follow); with a verified checkpoint,
//     checkpoint_size and origin against it; log_size at least the
//     checkpoint size and above every audit entry's seq.
//
// It cannot recompute the rest of system_state (pending_recoveries:
// requirements are not in the bundle; attestation_state, integrity_state,
// drill_mode, warden_version) nor exported_at and policy_digest: those are
// protected by bundle_hash, and so by the signatures, only.
// Memory grows with the number of entries and incidents by about a
// hundred bytes each (an inclusion proof is reduced to the root it implies
// as it streams by), not with the bundle's size.
func Verify(r io.Reader, o Options) (*Report, error) {
	rep := &Report{Problems: []string{}}
	if o.HMACKey == nil && o.Verifiers == nil && !o.TrustEmbeddedKey {
		return rep, ErrNoKey
	}
	v := &verifier{
		rep:      rep,
		latest:   map[string]snapshot{},
		records:  map[string][32]byte{},
		strs:     map[string]string{},
		counters: map[string]int64{},
		statsOK:  true,
	}
	if err := v.read(r); err != nil {
		return rep, err
	}
	v.checkDigest()
	cp := v.checkSignatures(o)
	if cp != nil {
		if err := v.checkAnchoring(cp); err != nil {
			return rep, err
		}
	}
	v.checkIncidents()
	if v.state != nil {
		v.checkState(cp)
	}
	sort.Strings(rep.Problems[:min(len(rep.Problems), maxProblems)])
	if len(rep.Problems) > 0 {
		return rep, fmt.Errorf("%w: %s", ErrTampered, strings.Join(rep.Problems, "; "))
	}
	rep.OK = true
	return rep, nil
}

// verifier is what reading a bundle keeps for the checks that follow:
// about a hundred bytes per audit entry, incident and inclusion proof.
type verifier struct {
	rep      *Report
	entries  []entry             // audit entries' seqs and leaf hashes, in bundle order
	latest   map[string]snapshot // by incident id: its last snapshot among the audit entries
	records  map[string][32]byte // by incident id: the digest of its canonical record
	strs     map[string]string   // the string members
	proofs   []impliedRoot
	counters map[string]int64 // warden.StatsDelta summed over the incidents
	statsOK  bool             // every incident decoded, so counters can be trusted
	state    *SystemState     // nil: absent or malformed
}

// read decodes the bundle member by member, hashing the canonical content
// as it streams by into Report.BundleHash and checking each audit entry,
// incident and proof on its own. It returns an error, and no verdict, when
// the bundle cannot be walked: not one JSON object, a repeated member, an
// array member that is not an array, or content that is not JSON.
func (v *verifier) read(r io.Reader) error {
	rep := v.rep
	dec := json.NewDecoder(bufio.NewReaderSize(r, 1<<16))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("bundle is not a JSON object")
	}
	h := sha256.New()
	h.Write([]byte("{"))
	var (
		nextHash  = 0
		seenKeys  = map[string]bool{}
		hashedErr bool
	)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
		key, _ := t.(string)
		if seenKeys[key] {
			return fmt.Errorf("bundle repeats member %q", key)
		}
		seenKeys[key] = true
		hashed := nextHash < len(hashedMembers) && key == hashedMembers[nextHash]
		if !hashed && slices.Contains(hashedMembers, key) {
			hashedErr = true
			rep.problem("member %q is out of the canonical order: the bundle was re-serialised or edited", key)
		}
		// content receives the member's canonical form when it is hashed.
		var content io.Writer = io.Discard
		if hashed {
			content = h
			if nextHash > 0 {
				h.Write([]byte(","))
			}
			fmt.Fprintf(h, "%q:", key)
			nextHash++
		}
		array := key == memberAuditEntries || key == memberIncidents
		if array {
			content.Write([]byte("["))
		}
		switch key {
		case memberAuditEntries:
			err = eachElement(dec, func(raw json.RawMessage) error { return v.auditEntry(content, raw) })
		case memberIncidents:
			err = eachElement(dec, func(raw json.RawMessage) error { return v.incident(content, raw) })
		case memberProofs:
			err = eachElement(dec, v.proof)
		default:
			var raw json.RawMessage
			if err = dec.Decode(&raw); err != nil {
				break
			}
			if hashed {
				if err := v.hashedValue(content, key, raw); err != nil {
					return err
				}
			} else {
				v.otherValue(key, raw)
			}
		}
		if err != nil {
			return fmt.Errorf("bundle member %q: %w", key, err)
		}
		if array {
			content.Write([]byte("]"))
		}
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if dec.More() {
		return fmt.Errorf("bundle has data after its object")
	}
	if nextHash != len(hashedMembers) && !hashedErr {
		rep.problem("bundle lacks hashed member %q", hashedMembers[nextHash])
	}
	h.Write([]byte("}"))
	rep.BundleHash = hex.EncodeToString(h.Sum(nil))
	return nil
}

// auditEntry writes one audit entry's canonical form to content and
// checks it on its own: a sealed receipt of the incident scroll, after the
// entry before it in seq order. It keeps the entry's seq and leaf hash,
// and the incident snapshot its body carries.
func (v *verifier) auditEntry(content io.Writer, raw json.RawMessage) error {
	rep := v.rep
	c, err := ledger.Canonical(raw)
	if err != nil {
		return fmt.Errorf("audit entry %d is not JSON: %w", rep.AuditEntries, err)
	}
	writeElem(content, rep.AuditEntries, c)
	rep.AuditEntries++
	var rec warden.Receipt
	if err := strictDecode(raw, &rec); err != nil {
		rep.problem("audit entry %d is not a receipt: %v", rep.AuditEntries-1, err)
		return nil
	}
	// Whitespace a pretty-printer added is not tampering: the body's
	// canonical form is what its hash covers.
	if c, err := ledger.Canonical(rec.Body); err == nil {
		rec.Body = c
	}
	leaf, err := ledger.CheckReceipt(&rec)
	if err != nil {
		rep.problem("audit entry seq %d: %v", rec.Seq, err)
		return nil
	}
	if rec.Scroll != warden.ScrollIncident {
		rep.problem("audit entry seq %d is in scroll %q, not incident", rec.Seq, rec.Scroll)
	}
	if n := len(v.entries); n > 0 && v.entries[n-1].seq >= rec.Seq {
		rep.problem("audit entry seq %d is out of order (after %d)", rec.Seq, v.entries[n-1].seq)
	}
	v.entries = append(v.entries, entry{seq: rec.Seq, leaf: leaf})
	var body struct {
		Incident json.RawMessage `json:"incident"`
	}
	if json.Unmarshal(rec.Body, &body) == nil && len(body.Incident) > 0 {
		var id struct {
			ID string `json:"id"`
		}
		json.Unmarshal(body.Incident, &id)
		if c, err := ledger.Canonical(body.Incident); err == nil && id.ID != "" {
			v.latest[id.ID] = snapshot{seq: rec.Seq, digest: sha256.Sum256(c)}
		}
	}
	return nil
}

// incident writes one incident record's canonical form to content, keeps
// its digest for checkIncidents and adds it to the counters checkState
// recomputes.
func (v *verifier) incident(content io.Writer, raw json.RawMessage) error {
	rep := v.rep
	n := rep.Incidents
	c, err := ledger.Canonical(raw)
	if err != nil {
		return fmt.Errorf("incident %d is not JSON: %w", n, err)
	}
	writeElem(content, n, c)
	rep.Incidents++
	var inc warden.Incident
	if err := json.Unmarshal(raw, &inc); err != nil {
		rep.problem("incident %d is not an incident record: %v", n, err)
		v.statsOK = false
	}
	if _, dup := v.records[inc.ID]; dup {
		rep.problem("incident %s appears twice", inc.ID)
	}
	v.records[inc.ID] = sha256.Sum256(c)
	for k, d := range warden.StatsDelta(nil, &inc) {
		v.counters[k] += d
	}
	return nil
}

// proof reduces one inclusion proof to the root it implies for the audit
// entry with its seq. Audit entries come first and in seq order in an
// untampered bundle (read reports disorder).
func (v *verifier) proof(raw json.RawMessage) error {
	var p Proof
	if err := strictDecode(raw, &p); err != nil {
		v.rep.problem("inclusion proof %d is malformed: %v", len(v.proofs), err)
		return nil
	}
	ir := impliedRoot{seq: p.Seq, treeSize: p.TreeSize}
	if i, ok := slices.BinarySearchFunc(v.entries, p.Seq, func(e entry, seq uint64) int { return cmp.Compare(e.seq, seq) }); ok {
		ir.root, ir.err = ledger.RootFromInclusion(p.Seq, p.TreeSize, v.entries[i].leaf, p.Hashes)
	}
	v.proofs = append(v.proofs, ir)
	return nil
}

// hashedValue writes a hashed member that is not an array to content and
// keeps system_state.
func (v *verifier) hashedValue(content io.Writer, key string, raw json.RawMessage) error {
	c, err := ledger.Canonical(raw)
	if err != nil {
		return fmt.Errorf("member %q: %w", key, err)
	}
	content.Write(c)
	if key == memberSystemState {
		v.state = &SystemState{}
		if err := json.Unmarshal(raw, v.state); err != nil {
			v.rep.problem("system_state is malformed: %v", err)
			v.state = nil
		}
	}
	return nil
}

// otherValue keeps a string member and reports any other member that is
// not the bundle's.
func (v *verifier) otherValue(key string, raw json.RawMessage) {
	if !slices.Contains(stringMembers, key) {
		v.rep.problem("unknown member %q", key)
		return
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		v.rep.problem("member %q is not a string", key)
	}
	v.strs[key] = s
}

// checkDigest reports a bundle of another format and a bundle_hash that is
// not the content's.
func (v *verifier) checkDigest() {
	if f := v.strs[memberFormat]; f != Format {
		v.rep.problem("format is %q, not %q", f, Format)
	}
	if v.strs[memberBundleHash] != v.rep.BundleHash {
		v.rep.problem("bundle_hash does not match the content: computed %s, bundle says %s (incidents, audit entries, system state, policy digest or export time were altered)", v.rep.BundleHash, v.strs[memberBundleHash])
	}
}

// checkSignatures checks the HMAC signature and, with a key to check them
// (trusted, or embedded if the options say so), the bundle note and the
// checkpoint. It returns the checkpoint if it verified, else nil.
func (v *verifier) checkSignatures(o Options) *ledger.CheckpointBody {
	rep, bundleHash := v.rep, v.strs[memberBundleHash]
	if o.HMACKey != nil {
		rep.HMACChecked = true
		want := Sign(o.HMACKey, bundleHash)
		if !hmac.Equal([]byte(want), []byte(v.strs[memberSignature])) {
			rep.problem("HMAC signature does not match bundle_hash: wrong key, or the hash or signature was altered")
		}
	}
	known := o.Verifiers
	if known == nil && o.TrustEmbeddedKey {
		rep.EmbeddedKey = true
		k, _, err := ledger.ParseVerifiers([]byte(v.strs[memberPubkey]))
		if err != nil {
			rep.problem("embedded pubkey is invalid: %v", err)
		} else {
			known = k
		}
	}
	if known == nil {
		return nil
	}
	rep.SignaturesChecked = true
	if n, err := note.Open([]byte(v.strs[memberBundleNote]), known); err != nil {
		rep.problem("bundle_note signature does not verify: %v", err)
	} else if n.Text != NoteText(bundleHash) {
		rep.problem("bundle_note signs a different bundle hash")
	}
	cp, err := ledger.OpenCheckpoint([]byte(v.strs[memberCheckpoint]), known)
	if err != nil {
		rep.problem("checkpoint does not verify: %v", err)
		return nil
	}
	return cp
}

// checkAnchoring checks the audit entries against the verified checkpoint
// cp: those below its size (anchored) rebuild its incident scroll root,
// and each has a valid inclusion proof into it. It counts the rest as
// Report.Unanchored and Report.Proofs the proofs that hold.
func (v *verifier) checkAnchoring(cp *ledger.CheckpointBody) error {
	rep := v.rep
	byseq := make(map[uint64][]byte, len(v.entries))
	scroll := ledger.NewTree()
	for _, e := range v.entries {
		if e.seq < cp.Size {
			byseq[e.seq] = e.leaf
			if err := scroll.Append(e.leaf, nil); err != nil {
				return err
			}
		} else {
			rep.Unanchored++
		}
	}
	var want *ledger.ScrollRoot
	for i := range cp.Scrolls {
		if cp.Scrolls[i].Name == warden.ScrollIncident {
			want = &cp.Scrolls[i]
		}
	}
	switch {
	case want == nil && scroll.Size() > 0:
		rep.problem("checkpoint has no incident scroll but the bundle has %d anchored entries", scroll.Size())
	case want != nil && (want.Size != scroll.Size() || !bytes.Equal(want.Root, scroll.Root())):
		rep.problem("audit entries do not rebuild the checkpoint's incident scroll root (%d entries, checkpoint says %d): entries were removed, added or altered", scroll.Size(), want.Size)
	}
	proven := map[uint64]bool{}
	for _, p := range v.proofs {
		if _, ok := byseq[p.seq]; !ok || (p.root == nil && p.err == nil) {
			rep.problem("inclusion proof for seq %d has no anchored audit entry", p.seq)
			continue
		}
		if p.treeSize != cp.Size {
			rep.problem("inclusion proof for seq %d is for tree size %d, checkpoint is %d", p.seq, p.treeSize, cp.Size)
			continue
		}
		if p.err != nil {
			rep.problem("audit entry seq %d: inclusion proof fails: %v", p.seq, p.err)
			continue
		}
		if !bytes.Equal(p.root, cp.Root) {
			rep.problem("audit entry seq %d: inclusion proof fails: it leads to root %x, not the checkpoint's", p.seq, p.root)
			continue
		}
		proven[p.seq] = true
		rep.Proofs++
	}
	for seq := range byseq {
		if !proven[seq] {
			rep.problem("audit entry seq %d has no valid inclusion proof", seq)
		}
	}
	return nil
}

// checkIncidents reports every incident record that is not its latest
// receipted snapshot, and every incident with a snapshot among the audit
// entries but no record, in id order.
func (v *verifier) checkIncidents() {
	ids := make([]string, 0, len(v.records))
	for id := range v.records {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		s, ok := v.latest[id]
		switch {
		case !ok:
			v.rep.problem("incident %s has no receipt among the audit entries", id)
		case s.digest != v.records[id]:
			v.rep.problem("incident %s differs from its latest receipted state (seq %d): the incident record was altered", id, s.seq)
		}
	}
	ids = ids[:0]
	for id := range v.latest {
		if _, ok := v.records[id]; !ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		v.rep.problem("incident %s has receipts up to seq %d but is missing from the bundle", id, v.latest[id].seq)
	}
}

// writeElem writes the i-th element c of an array to w.
func writeElem(w io.Writer, i int, c []byte) {
	if i > 0 {
		w.Write([]byte(","))
	}
	w.Write(c)
}

// eachElement decodes a JSON array element by element.
func eachElement(dec *json.Decoder, fn func(json.RawMessage) error) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if t != json.Delim('[') {
		return fmt.Errorf("not an array")
	}
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		if err := fn(raw); err != nil {
			return err
		}
	}
	_, err = dec.Token()
	return err
}

func strictDecode(raw []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("trailing data")
	}
	return nil
}

// checkState reports the system_state fields that disagree with what the
// bundle determines: the incident counters recomputed from incidents and,
// with a verified checkpoint, its size and origin. Each problem names the
// field, the claimed and the recomputed value.
func (v *verifier) checkState(cp *ledger.CheckpointBody) {
	rep, s, entries := v.rep, v.state, v.entries
	field := func(name string, claimed, recomputed any, from string) {
		if claimed != recomputed {
			rep.problem("system_state.%s is %v; recomputed from %s: %v", name, claimed, from, recomputed)
		}
	}
	if v.statsOK {
		const from = "the bundle's incidents"
		want := warden.StatsFromCounters(v.counters)
		field("total_incidents", s.TotalIncidents, want.TotalIncidents, from)
		field("open_incidents", s.OpenIncidents, want.OpenIncidents, from)
		field("contained_count", s.ContainedCount, want.ContainedCount, from)
		field("resolved_count", s.ResolvedCount, want.ResolvedCount, from)
		for _, k := range unionKeys(s.ByClass, want.ByClass) {
			field("by_class."+k, s.ByClass[k], want.ByClass[k], from)
		}
		for _, k := range unionKeys(s.OpenBySeverity, want.OpenBySeverity) {
			field("open_by_severity."+k, s.OpenBySeverity[k], want.OpenBySeverity[k], from)
		}
	}
	if cp != nil {
		field("checkpoint_size", s.CheckpointSize, cp.Size, "the checkpoint")
		field("origin", s.Origin, cp.Origin, "the checkpoint")
		if s.LogSize < cp.Size {
			rep.problem("system_state.log_size is %d, but the checkpoint covers %d entries", s.LogSize, cp.Size)
		}
	}
	// The log held every exported entry: it is longer than the last seq.
	if len(entries) > 0 {
		last := slices.MaxFunc(entries, func(a, b entry) int { return cmp.Compare(a.seq, b.seq) }).seq
		if s.LogSize <= last {
			rep.problem("system_state.log_size is %d, but audit entry seq %d gives at least %d", s.LogSize, last, last+1)
		}
	}
}

func unionKeys(a, b map[string]int64) []string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

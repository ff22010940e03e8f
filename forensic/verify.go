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

// hashedMembers are the bundle's hashed members in RFC 8785 order.
var hashedMembers = []string{"audit_entries", "exported_at", "incidents", "policy_digest", "system_state"}

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
	dec := json.NewDecoder(bufio.NewReaderSize(r, 1<<16))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return rep, fmt.Errorf("bundle is not a JSON object")
	}
	h := sha256.New()
	h.Write([]byte("{"))
	var (
		entries   []entry
		latest    = map[string]snapshot{}
		records   = map[string][32]byte{}
		strs      = map[string]string{}
		proofs    []impliedRoot
		nextHash  = 0
		seenKeys  = map[string]bool{}
		hashedErr bool
		counters  = map[string]int64{}
		statsOK   = true
		state     *SystemState
	)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return rep, fmt.Errorf("bundle: %w", err)
		}
		key, _ := t.(string)
		if seenKeys[key] {
			return rep, fmt.Errorf("bundle repeats member %q", key)
		}
		seenKeys[key] = true
		hashed := nextHash < len(hashedMembers) && key == hashedMembers[nextHash]
		if !hashed && contains(hashedMembers, key) {
			hashedErr = true
			rep.problem("member %q is out of the canonical order: the bundle was re-serialised or edited", key)
		}
		if hashed {
			if nextHash > 0 {
				h.Write([]byte(","))
			}
			fmt.Fprintf(h, "%q:", key)
			nextHash++
		}
		if hashed && (key == "audit_entries" || key == "incidents") {
			h.Write([]byte("["))
		}
		switch key {
		case "audit_entries":
			err = eachElement(dec, func(raw json.RawMessage) error {
				c, err := ledger.Canonical(raw)
				if err != nil {
					return fmt.Errorf("audit entry %d is not JSON: %w", rep.AuditEntries, err)
				}
				writeElem(h, hashed, rep.AuditEntries, c)
				rep.AuditEntries++
				var rec warden.Receipt
				if err := strictDecode(raw, &rec); err != nil {
					rep.problem("audit entry %d is not a receipt: %v", rep.AuditEntries-1, err)
					return nil
				}
				// Whitespace a pretty-printer added is not tampering: the
				// body's canonical form is what its hash covers.
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
				if n := len(entries); n > 0 && entries[n-1].seq >= rec.Seq {
					rep.problem("audit entry seq %d is out of order (after %d)", rec.Seq, entries[n-1].seq)
				}
				entries = append(entries, entry{seq: rec.Seq, leaf: leaf})
				var body struct {
					Incident json.RawMessage `json:"incident"`
				}
				if json.Unmarshal(rec.Body, &body) == nil && len(body.Incident) > 0 {
					var id struct {
						ID string `json:"id"`
					}
					json.Unmarshal(body.Incident, &id)
					if c, err := ledger.Canonical(body.Incident); err == nil && id.ID != "" {
						latest[id.ID] = snapshot{seq: rec.Seq, digest: sha256.Sum256(c)}
					}
				}
				return nil
			})
		case "incidents":
			n := 0
			err = eachElement(dec, func(raw json.RawMessage) error {
				c, err := ledger.Canonical(raw)
				if err != nil {
					return fmt.Errorf("incident %d is not JSON: %w", n, err)
				}
				writeElem(h, hashed, n, c)
				n++
				var inc warden.Incident
				if err := json.Unmarshal(raw, &inc); err != nil {
					rep.problem("incident %d is not an incident record: %v", n-1, err)
					statsOK = false
				}
				if _, dup := records[inc.ID]; dup {
					rep.problem("incident %s appears twice", inc.ID)
				}
				records[inc.ID] = sha256.Sum256(c)
				for k, v := range warden.StatsDelta(nil, &inc) {
					counters[k] += v
				}
				return nil
			})
			rep.Incidents = n
		case "inclusion_proofs":
			err = eachElement(dec, func(raw json.RawMessage) error {
				var p Proof
				if err := strictDecode(raw, &p); err != nil {
					rep.problem("inclusion proof %d is malformed: %v", len(proofs), err)
					return nil
				}
				ir := impliedRoot{seq: p.Seq, treeSize: p.TreeSize}
				// Entries come first and in seq order in an untampered
				// bundle (disorder is reported above).
				if i, ok := slices.BinarySearchFunc(entries, p.Seq, func(e entry, seq uint64) int { return cmp.Compare(e.seq, seq) }); ok {
					ir.root, ir.err = ledger.RootFromInclusion(p.Seq, p.TreeSize, entries[i].leaf, p.Hashes)
				}
				proofs = append(proofs, ir)
				return nil
			})
		default:
			var raw json.RawMessage
			if err = dec.Decode(&raw); err != nil {
				break
			}
			if hashed {
				c, cerr := ledger.Canonical(raw)
				if cerr != nil {
					return rep, fmt.Errorf("member %q: %w", key, cerr)
				}
				h.Write(c)
				if key == "system_state" {
					state = &SystemState{}
					if err := json.Unmarshal(raw, state); err != nil {
						rep.problem("system_state is malformed: %v", err)
						state = nil
					}
				}
				continue
			}
			switch key {
			case "bundle_hash", "signature", "bundle_note", "pubkey", "checkpoint", "format":
				var s string
				if json.Unmarshal(raw, &s) != nil {
					rep.problem("member %q is not a string", key)
				}
				strs[key] = s
			default:
				rep.problem("unknown member %q", key)
			}
		}
		if err != nil {
			return rep, fmt.Errorf("bundle member %q: %w", key, err)
		}
		if hashed && (key == "audit_entries" || key == "incidents") {
			h.Write([]byte("]"))
		}
	}
	if _, err := dec.Token(); err != nil {
		return rep, fmt.Errorf("bundle: %w", err)
	}
	if dec.More() {
		return rep, fmt.Errorf("bundle has data after its object")
	}
	if nextHash != len(hashedMembers) && !hashedErr {
		rep.problem("bundle lacks hashed member %q", hashedMembers[nextHash])
	}
	h.Write([]byte("}"))
	rep.BundleHash = hex.EncodeToString(h.Sum(nil))

	if strs["format"] != Format {
		rep.problem("format is %q, not %q", strs["format"], Format)
	}
	if strs["bundle_hash"] != rep.BundleHash {
		rep.problem("bundle_hash does not match the content: computed %s, bundle says %s (incidents, audit entries, system state, policy digest or export time were altered)", rep.BundleHash, strs["bundle_hash"])
	}
	if o.HMACKey != nil {
		rep.HMACChecked = true
		want := Sign(o.HMACKey, strs["bundle_hash"])
		if !hmac.Equal([]byte(want), []byte(strs["signature"])) {
			rep.problem("HMAC signature does not match bundle_hash: wrong key, or the hash or signature was altered")
		}
	}
	known := o.Verifiers
	if known == nil && o.TrustEmbeddedKey {
		rep.EmbeddedKey = true
		v, _, err := ledger.ParseVerifiers([]byte(strs["pubkey"]))
		if err != nil {
			rep.problem("embedded pubkey is invalid: %v", err)
		} else {
			known = v
		}
	}
	var cp *ledger.CheckpointBody
	if known != nil {
		rep.SignaturesChecked = true
		if n, err := note.Open([]byte(strs["bundle_note"]), known); err != nil {
			rep.problem("bundle_note signature does not verify: %v", err)
		} else if n.Text != NoteText(strs["bundle_hash"]) {
			rep.problem("bundle_note signs a different bundle hash")
		}
		var err error
		if cp, err = ledger.OpenCheckpoint([]byte(strs["checkpoint"]), known); err != nil {
			rep.problem("checkpoint does not verify: %v", err)
			cp = nil
		}
	}

	if cp != nil {
		byseq := make(map[uint64][]byte, len(entries))
		scroll := ledger.NewTree()
		for _, e := range entries {
			if e.seq < cp.Size {
				byseq[e.seq] = e.leaf
				if err := scroll.Append(e.leaf, nil); err != nil {
					return rep, err
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
		for _, p := range proofs {
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
	}

	ids := make([]string, 0, len(records))
	for id := range records {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		s, ok := latest[id]
		switch {
		case !ok:
			rep.problem("incident %s has no receipt among the audit entries", id)
		case s.digest != records[id]:
			rep.problem("incident %s differs from its latest receipted state (seq %d): the incident record was altered", id, s.seq)
		}
	}
	ids = ids[:0]
	for id := range latest {
		if _, ok := records[id]; !ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		rep.problem("incident %s has receipts up to seq %d but is missing from the bundle", id, latest[id].seq)
	}
	if state != nil {
		checkState(rep, state, counters, statsOK, cp, entries)
	}
	sort.Strings(rep.Problems[:min(len(rep.Problems), maxProblems)])
	if len(rep.Problems) > 0 {
		return rep, fmt.Errorf("%w: %s", ErrTampered, strings.Join(rep.Problems, "; "))
	}
	rep.OK = true
	return rep, nil
}

func writeElem(h io.Writer, hashed bool, i int, c []byte) {
	if !hashed {
		return
	}
	if i > 0 {
		h.Write([]byte(","))
	}
	h.Write(c)
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

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// checkState reports the system_state fields that disagree with what the
// bundle determines: the incident counters recomputed from incidents and,
// with a verified checkpoint, its size and origin. Each problem names the
// field, the claimed and the recomputed value.
func checkState(rep *Report, s *SystemState, counters map[string]int64, statsOK bool, cp *ledger.CheckpointBody, entries []entry) {
	field := func(name string, claimed, recomputed any, from string) {
		if claimed != recomputed {
			rep.problem("system_state.%s is %v; recomputed from %s: %v", name, claimed, from, recomputed)
		}
	}
	if statsOK {
		const from = "the bundle's incidents"
		want := warden.StatsFromCounters(counters)
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

package forensic

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
	"golang.org/x/mod/sumdb/note"
)

// Options configure verification.
type Options struct {
	// HMACKey, if set, checks the HMAC signature.
	HMACKey []byte
	// Verifiers, if set, are the trusted ledger keys. Otherwise the key
	// inside the bundle is used and Report.EmbeddedKey says so.
	Verifiers note.Verifiers
}

// Report is what verification found.
type Report struct {
	BundleHash   string   `json:"bundle_hash"`
	Incidents    int      `json:"incidents"`
	AuditEntries int      `json:"audit_entries"`
	Proofs       int      `json:"inclusion_proofs"`
	Unanchored   int      `json:"unanchored_entries"`
	HMACChecked  bool     `json:"hmac_checked"`
	EmbeddedKey  bool     `json:"embedded_key"`
	Problems     []string `json:"problems"`
}

// ErrTampered is returned (wrapped) when any check fails; Report.Problems
// names every failed check.
var ErrTampered = errors.New("forensic bundle failed verification")

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

// Verify reads a bundle from r and checks everything it can: the bundle
// hash over the canonical content, the HMAC (with a key), the ed25519 bundle
// note and checkpoint, every audit entry's body and leaf hash, the
// inclusion proof of every anchored entry, the completeness of the audit
// entries against the checkpoint's incident scroll root, and every incident
// record against its latest receipted state. Memory grows with the number
// of entries by a few dozen bytes each, not with the bundle's size.
func Verify(r io.Reader, o Options) (*Report, error) {
	rep := &Report{Problems: []string{}}
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
		proofs    []Proof
		nextHash  = 0
		seenKeys  = map[string]bool{}
		hashedErr bool
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
				var id struct {
					ID string `json:"id"`
				}
				json.Unmarshal(raw, &id)
				if _, dup := records[id.ID]; dup {
					rep.problem("incident %s appears twice", id.ID)
				}
				records[id.ID] = sha256.Sum256(c)
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
				proofs = append(proofs, p)
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
	if known == nil {
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
			leaf, ok := byseq[p.Seq]
			if !ok {
				rep.problem("inclusion proof for seq %d has no anchored audit entry", p.Seq)
				continue
			}
			if p.TreeSize != cp.Size {
				rep.problem("inclusion proof for seq %d is for tree size %d, checkpoint is %d", p.Seq, p.TreeSize, cp.Size)
				continue
			}
			if err := ledger.VerifyInclusion(p.Seq, cp.Size, leaf, p.Hashes, cp.Root); err != nil {
				rep.problem("audit entry seq %d: inclusion proof fails: %v", p.Seq, err)
				continue
			}
			proven[p.Seq] = true
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
	sort.Strings(rep.Problems[:min(len(rep.Problems), maxProblems)])
	if len(rep.Problems) > 0 {
		return rep, fmt.Errorf("%w: %s", ErrTampered, strings.Join(rep.Problems, "; "))
	}
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

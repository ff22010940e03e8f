package forensic

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
	"golang.org/x/mod/sumdb/note"
)

// Source is the store snapshot a bundle is written from.
//
// Write reads the audit entries twice (for the content, then for their
// inclusion proofs) and holds none of them. A Source MUST be one consistent
// snapshot, so that both reads yield the same receipts and the incidents
// and the Header's system_state agree with them: Verify reports an
// incident with receipts but no record, and counters that disagree with
// the records, as tampering.
type Source interface {
	// AuditEntries calls fn for every incident-scroll receipt, unfiltered,
	// in seq order. It stops at fn's first error and returns it.
	AuditEntries(fn func(*warden.Receipt) error) error
	// Incidents calls fn for every incident, unfiltered, in the listing
	// order of GET /api/v1/incidents. It stops at fn's first error and
	// returns it.
	Incidents(fn func(*warden.Incident) error) error
	// MerkleHashes returns the hashes of the given perfect-subtree nodes of
	// the global tree, as warden.ReadTx does; Write asks only for nodes
	// inside the Header's checkpoint.
	MerkleHashes(ids []warden.NodeID) ([][]byte, error)
}

// Header is what a bundle says besides its audit entries, incidents and
// proofs.
type Header struct {
	ExportedAt   time.Time   // exported_at, as warden.FormatTime writes it
	PolicyDigest string      // policy_digest: "sha256:…" of the policy in force
	SystemState  SystemState // system_state; CheckpointSize MUST be Checkpoint.Size
	PublicKey    string      // pubkey: the ledger's verifier key
	// Checkpoint is the ledger's signed checkpoint the inclusion proofs
	// lead to. Audit entries at or past its size are written without a
	// proof (Verify counts them as unanchored).
	Checkpoint *warden.Checkpoint
}

// Keys sign a bundle.
type Keys struct {
	HMAC   []byte      // the forensic key: signature
	Signer note.Signer // the ledger key: bundle_note
}

// Summary describes a written bundle.
type Summary struct {
	BundleHash   string `json:"bundle_hash"`
	Incidents    int    `json:"incidents"`
	AuditEntries int    `json:"audit_entries"`
	Proofs       int    `json:"inclusion_proofs"`
}

// Write streams a signed bundle read from src to w and returns its summary.
// A bundle written from a Source that keeps its contract verifies with no
// problem. Memory does not grow with the number of entries or incidents:
// each is written as it is read, through a 64 KiB buffer that Write
// flushes before it returns.
//
// It fails, writing nothing, if a key is missing, the checkpoint is nil or
// system_state's checkpoint_size is not its size. It fails with src's or
// w's error, wrapped, if either fails; w then holds part of a bundle,
// which callers MUST NOT pass on as a bundle.
func Write(w io.Writer, src Source, h Header, k Keys) (*Summary, error) {
	switch {
	case k.Signer == nil || len(k.HMAC) == 0:
		return nil, errors.New("forensic.Write: signing keys not configured")
	case h.Checkpoint == nil:
		return nil, errors.New("forensic.Write: no checkpoint")
	case h.SystemState.CheckpointSize != h.Checkpoint.Size:
		return nil, fmt.Errorf("forensic.Write: system_state.checkpoint_size is %d, the checkpoint's size %d", h.SystemState.CheckpointSize, h.Checkpoint.Size)
	}
	bw := &writer{out: bufio.NewWriterSize(w, 1<<16), hash: sha256.New(), hashing: true, src: src, hdr: &h, keys: k}
	for i, name := range members {
		if i == len(hashedMembers) {
			bw.hash.Write([]byte("}"))
			bw.hashing = false
			bw.sum.BundleHash = hex.EncodeToString(bw.hash.Sum(nil))
		}
		if i == 0 {
			bw.str("{")
		} else {
			bw.str(",")
		}
		bw.str(`"` + name + `":`)
		if err := bw.member(name); err != nil {
			return nil, fmt.Errorf("forensic.Write: %w", err)
		}
	}
	bw.str("}\n")
	if bw.err == nil {
		bw.err = bw.out.Flush()
	}
	if bw.err != nil {
		return nil, fmt.Errorf("forensic.Write: %w", bw.err)
	}
	return &bw.sum, nil
}

// writer writes one bundle: JSON to out and, while hashing, to the bundle
// hash too. It remembers the first write error.
type writer struct {
	out     *bufio.Writer
	hash    hash.Hash
	hashing bool
	err     error

	src  Source
	hdr  *Header
	keys Keys
	sum  Summary
}

// member writes the value of the member name and counts it in the summary.
func (w *writer) member(name string) error {
	switch name {
	case memberAuditEntries:
		w.str("[")
		if err := w.src.AuditEntries(func(r *warden.Receipt) error {
			w.elem(w.sum.AuditEntries)
			w.canonical(r)
			w.sum.AuditEntries++
			return w.err
		}); err != nil {
			return err
		}
		w.str("]")
	case memberExportedAt:
		w.canonical(warden.FormatTime(w.hdr.ExportedAt))
	case memberIncidents:
		w.str("[")
		if err := w.src.Incidents(func(i *warden.Incident) error {
			w.elem(w.sum.Incidents)
			w.canonical(i)
			w.sum.Incidents++
			return w.err
		}); err != nil {
			return err
		}
		w.str("]")
	case memberPolicyDigest:
		w.canonical(w.hdr.PolicyDigest)
	case memberSystemState:
		w.canonical(w.hdr.SystemState)
	case memberBundleHash:
		w.canonical(w.sum.BundleHash)
	case memberSignature:
		w.canonical(Sign(w.keys.HMAC, w.sum.BundleHash))
	case memberBundleNote:
		msg, err := note.Sign(&note.Note{Text: NoteText(w.sum.BundleHash)}, w.keys.Signer)
		if err != nil {
			return err
		}
		w.canonical(string(msg))
	case memberPubkey:
		w.canonical(w.hdr.PublicKey)
	case memberCheckpoint:
		w.canonical(w.hdr.Checkpoint.Note)
	case memberFormat:
		w.canonical(Format)
	case memberProofs:
		w.str("[")
		if err := w.src.AuditEntries(w.proof); err != nil {
			return err
		}
		w.str("]")
	default:
		return fmt.Errorf("no writer for member %q", name)
	}
	return w.err
}

// proof writes the inclusion proof of an audit entry into the checkpoint,
// or nothing for an entry the checkpoint does not cover (Verify counts it
// as unanchored).
func (w *writer) proof(r *warden.Receipt) error {
	size := w.hdr.Checkpoint.Size
	if r.Seq >= size {
		return nil
	}
	hashes, err := ledger.InclusionProof(r.Seq, size, w.src.MerkleHashes)
	if err != nil {
		return err
	}
	if hashes == nil {
		hashes = [][]byte{} // "hashes":[], not null, in a tree of one
	}
	b, err := json.Marshal(Proof{Seq: r.Seq, TreeSize: size, Hashes: hashes})
	if err != nil {
		return err
	}
	w.elem(w.sum.Proofs)
	w.raw(b)
	w.sum.Proofs++
	return w.err
}

func (w *writer) raw(p []byte) {
	if w.err != nil {
		return
	}
	if _, w.err = w.out.Write(p); w.err == nil && w.hashing {
		w.hash.Write(p)
	}
}

func (w *writer) str(s string) { w.raw([]byte(s)) }

// elem separates the i-th element of an array from the one before.
func (w *writer) elem(i int) {
	if i > 0 {
		w.str(",")
	}
}

func (w *writer) canonical(v any) {
	if w.err != nil {
		return
	}
	c, err := ledger.Canonical(v)
	if err != nil {
		w.err = err
		return
	}
	w.raw(c)
}

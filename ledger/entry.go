package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/internal/jsonlex"
)

// MaxSeq is the largest sequence number an entry can carry: RFC 8785 numbers
// are IEEE doubles, exact only up to 2^53.
const MaxSeq = 1<<53 - 1

// EntryBytes returns the canonical JSON that a receipt's leaf hash covers:
// every field of the receipt except LeafHash itself, keys in RFC 8785 order
// (body, root_hash, schema_version, scroll, seq, tags, timestamp, type).
// Body MUST already be canonical; it is embedded verbatim.
func EntryBytes(r *warden.Receipt) ([]byte, error) {
	return appendEntry(make([]byte, 0, entrySize(r)), r)
}

// entrySize is the length of r's entry when no string needs escaping, so
// one allocation usually suffices.
func entrySize(r *warden.Receipt) int {
	n := len(`{"body":,"root_hash":"","schema_version":"","scroll":"","seq":9007199254740991,"tags":[],"timestamp":"","type":""}`)
	n += len(r.Body) + len(r.RootHash) + len(r.SchemaVersion) + len(r.Scroll) + len(r.Timestamp) + len(r.Type)
	for _, t := range r.Tags {
		n += len(t) + 3
	}
	return n + 16
}

// appendEntry appends r's entry (see EntryBytes) to b.
func appendEntry(b []byte, r *warden.Receipt) ([]byte, error) {
	if r.Seq > MaxSeq {
		return nil, fmt.Errorf("ledger.EntryBytes: seq %d exceeds 2^53-1", r.Seq)
	}
	var ok bool
	b = append(b, `{"body":`...)
	b = append(b, r.Body...)
	b = append(b, `,"root_hash":`...)
	if b, ok = jsonlex.AppendCanonical(b, r.RootHash); !ok {
		return nil, fmt.Errorf("ledger.EntryBytes: root_hash is not UTF-8")
	}
	b = append(b, `,"schema_version":`...)
	if b, ok = jsonlex.AppendCanonical(b, r.SchemaVersion); !ok {
		return nil, fmt.Errorf("ledger.EntryBytes: schema_version is not UTF-8")
	}
	b = append(b, `,"scroll":`...)
	if b, ok = jsonlex.AppendCanonical(b, r.Scroll); !ok {
		return nil, fmt.Errorf("ledger.EntryBytes: scroll is not UTF-8")
	}
	b = append(b, `,"seq":`...)
	b = appendUint(b, r.Seq)
	b = append(b, `,"tags":[`...)
	for i, t := range r.Tags {
		if i > 0 {
			b = append(b, ',')
		}
		if b, ok = jsonlex.AppendCanonical(b, t); !ok {
			return nil, fmt.Errorf("ledger.EntryBytes: tag %d is not UTF-8", i)
		}
	}
	b = append(b, `],"timestamp":`...)
	if b, ok = jsonlex.AppendCanonical(b, r.Timestamp); !ok {
		return nil, fmt.Errorf("ledger.EntryBytes: timestamp is not UTF-8")
	}
	b = append(b, `,"type":`...)
	if b, ok = jsonlex.AppendCanonical(b, r.Type); !ok {
		return nil, fmt.Errorf("ledger.EntryBytes: type is not UTF-8")
	}
	return append(b, '}'), nil
}

// LeafHash returns the RFC 6962 leaf hash SHA-256(0x00 ‖ entry).
func LeafHash(entry []byte) []byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(entry)
	return h.Sum(nil)
}

// Seal completes a receipt whose Seq, Type, Timestamp, Scroll, Tags and Body
// are set: it canonicalises the body, sets SchemaVersion, RootHash and
// LeafHash, and returns the raw leaf hash.
func Seal(r *warden.Receipt) ([]byte, error) {
	body, err := Canonical(r.Body)
	if err != nil {
		return nil, err
	}
	r.Body = body
	return seal(r)
}

// seal completes a receipt whose body is already canonical.
func seal(r *warden.Receipt) ([]byte, error) {
	body := r.Body
	r.SchemaVersion = warden.SchemaVersion
	r.RootHash = BodyHash(body)
	if r.Tags == nil {
		r.Tags = []string{}
	}
	entry, err := EntryBytes(r)
	if err != nil {
		return nil, err
	}
	leaf := LeafHash(entry)
	r.LeafHash = hex.EncodeToString(leaf)
	return leaf, nil
}

// NewReceipt validates a draft and turns it into a sealed receipt at seq.
// EINVALID if the scroll is unknown, the type empty or the body not JSON.
func NewReceipt(seq uint64, d warden.Draft) (*warden.Receipt, []byte, error) {
	if !warden.ValidScroll(d.Scroll) {
		return nil, nil, warden.Errorf(warden.EINVALID, "Unknown scroll %q.", d.Scroll)
	}
	if d.Type == "" {
		return nil, nil, warden.Errorf(warden.EINVALID, "A receipt needs a type.")
	}
	if d.Time.IsZero() {
		return nil, nil, warden.Errorf(warden.EINVALID, "A receipt needs a timestamp.")
	}
	body, err := Canonical(d.Body)
	if err != nil {
		return nil, nil, warden.Errorf(warden.EINVALID, "Receipt body is not valid JSON: %v", err)
	}
	tags := dedup(d.Tags)
	r := &warden.Receipt{
		Seq:       seq,
		Type:      d.Type,
		Timestamp: warden.FormatTime(d.Time),
		Scroll:    d.Scroll,
		Tags:      tags,
		Body:      body,
	}
	leaf, err := seal(r)
	if err != nil {
		return nil, nil, warden.Errorf(warden.EINVALID, "Receipt cannot be sealed: %v", err)
	}
	return r, leaf, nil
}

// dedup returns s without repeated tags, keeping first occurrences in order.
func dedup(s []string) []string {
	out := make([]string, 0, len(s))
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

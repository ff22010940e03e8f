// Package ledger is the pure core of warden's verifiable log: RFC 8785
// canonical JSON, receipt body and leaf hashing, the RFC 6962 Merkle tree,
// inclusion and consistency proofs, C2SP signed-note checkpoints, and the
// verifier that names the first bad sequence number of a tampered log.
// It performs no I/O.
package ledger

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/gowebpki/jcs"
	"github.com/zeebo/blake3"
)

// Canonical returns the RFC 8785 (JCS) canonical JSON of v.
func Canonical(v any) ([]byte, error) {
	raw, ok := v.(json.RawMessage)
	if !ok {
		var err error
		if raw, err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("ledger.Canonical: %w", err)
		}
	}
	out, err := jcs.Transform(raw)
	if err != nil {
		return nil, fmt.Errorf("ledger.Canonical: %w", err)
	}
	return out, nil
}

// BodyHash returns the seed's root_hash of a canonical body:
// "blake3:" + lowercase hex of BLAKE3-256.
func BodyHash(canonicalBody []byte) string {
	sum := blake3.Sum256(canonicalBody)
	return "blake3:" + hex.EncodeToString(sum[:])
}

// appendString appends s as an RFC 8785 JSON string: only '"', '\\' and
// control characters are escaped, the short forms where JSON has them.
// It returns false if s is not valid UTF-8, which JCS cannot represent.
func appendString(b []byte, s string) ([]byte, bool) {
	if !utf8.ValidString(s) {
		return b, false
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			b = append(b, '\\', '"')
		case c == '\\':
			b = append(b, '\\', '\\')
		case c >= 0x20:
			b = append(b, c)
		case c == '\b':
			b = append(b, '\\', 'b')
		case c == '\t':
			b = append(b, '\\', 't')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\f':
			b = append(b, '\\', 'f')
		case c == '\r':
			b = append(b, '\\', 'r')
		default:
			const hexdigits = "0123456789abcdef"
			b = append(b, '\\', 'u', '0', '0', hexdigits[c>>4], hexdigits[c&0xf])
		}
	}
	return append(b, '"'), true
}

// appendUint appends n as a JSON number. RFC 8785 numbers are IEEE doubles,
// so n MUST be ≤ 2^53; sequence numbers never get near that.
func appendUint(b []byte, n uint64) []byte { return strconv.AppendUint(b, n, 10) }

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
	"github.com/warden-sh/warden/internal/jsonlex"
	"github.com/zeebo/blake3"
)

// Canonical returns the RFC 8785 (JCS) canonical JSON of v.
func Canonical(v any) ([]byte, error) {
	raw, ok := v.(json.RawMessage)
	if ok && isCanonical(raw) {
		// Already canonical (a caller prepared it outside the writer):
		// checking is several times cheaper than rewriting.
		return raw, nil
	}
	if !ok {
		var err error
		if raw, err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("ledger.Canonical: %w", err)
		}
	}
	out, err := transform(raw)
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

// bodyHashIs reports whether BodyHash(body) == want, without allocating.
func bodyHashIs(body []byte, want string) bool {
	const prefix = "blake3:"
	sum := blake3.Sum256(body)
	var got [len(prefix) + 2*len(sum)]byte
	copy(got[:], prefix)
	hex.Encode(got[len(prefix):], sum[:])
	return string(got[:]) == want
}

// appendUint appends n as a JSON number. RFC 8785 numbers are IEEE doubles,
// so n MUST be ≤ 2^53; sequence numbers never get near that.
func appendUint(b []byte, n uint64) []byte { return strconv.AppendUint(b, n, 10) }

// maxDepth is the nesting limit of the JCS implementation behind Canonical;
// deeper documents are not canonicalisable, so not canonical.
const maxDepth = 10000

// isCanonical reports whether b is exactly Canonical's output for some JSON
// document, that is, whether Canonical(b) succeeds and returns b. It is a
// single pass that allocates only for non-integer numbers, so CheckReceipt
// can afford it on every receipt; equivalence with Canonical is tested.
func isCanonical(b []byte) bool {
	n, ok := canonValue(b, 0, 0)
	return ok && n == len(b)
}

// canonValue checks the canonical value starting at b[i] and returns the
// index just past it.
func canonValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch c := b[i]; {
	case c == '{':
		return canonObject(b, i, depth+1)
	case c == '[':
		return canonArray(b, i, depth+1)
	case c == '"':
		return canonString(b, i)
	case c == 't':
		return canonLiteral(b, i, "true")
	case c == 'f':
		return canonLiteral(b, i, "false")
	case c == 'n':
		return canonLiteral(b, i, "null")
	case c == '-' || c >= '0' && c <= '9':
		return canonNumber(b, i)
	}
	return i, false
}

func canonLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}

func canonArray(b []byte, i, depth int) (int, bool) {
	if depth > maxDepth {
		return i, false
	}
	i++ // '['
	if i < len(b) && b[i] == ']' {
		return i + 1, true
	}
	for {
		var ok bool
		if i, ok = canonValue(b, i, depth); !ok || i >= len(b) {
			return i, false
		}
		switch b[i] {
		case ']':
			return i + 1, true
		case ',':
			i++
		default:
			return i, false
		}
	}
}

func canonObject(b []byte, i, depth int) (int, bool) {
	if depth > maxDepth {
		return i, false
	}
	i++ // '{'
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	prevStart, prevEnd := -1, -1
	for {
		if i >= len(b) || b[i] != '"' {
			return i, false
		}
		start := i
		var ok bool
		if i, ok = canonString(b, i); !ok {
			return i, false
		}
		// Keys must be strictly increasing in UTF-16 code unit order:
		// sorted, and without duplicates.
		if prevStart >= 0 && compareKeys(b[prevStart+1:prevEnd-1], b[start+1:i-1]) >= 0 {
			return i, false
		}
		prevStart, prevEnd = start, i
		if i >= len(b) || b[i] != ':' {
			return i, false
		}
		if i, ok = canonValue(b, i+1, depth); !ok || i >= len(b) {
			return i, false
		}
		switch b[i] {
		case '}':
			return i + 1, true
		case ',':
			i++
		default:
			return i, false
		}
	}
}

// canonString checks a canonical string: one jsonlex.Scan accepts with no
// escape that RFC 8785 writes differently.
func canonString(b []byte, i int) (int, bool) {
	end, f, kind := jsonlex.Scan(b, i)
	return end, kind == jsonlex.OK && f&jsonlex.NotCanonical == 0
}

// compareKeys compares two keys' contents (between the quotes, escapes and
// all, as jsonlex.Scan accepted them) by the UTF-16 code units of their
// values, as RFC 8785 sorts them; 0 means the same key.
func compareKeys(a, b []byte) int {
	for len(a) > 0 && len(b) > 0 {
		if a[0] == b[0] && a[0] < utf8.RuneSelf && a[0] != '\\' {
			a, b = a[1:], b[1:]
			continue
		}
		ra, na := jsonlex.DecodeRune(a)
		rb, nb := jsonlex.DecodeRune(b)
		if ra != rb {
			// UTF-16 order differs from code point order only between a
			// supplementary character (led by a surrogate, 0xD800-0xDBFF)
			// and a BMP character above the surrogates.
			ua, ub := utf16Lead(ra), utf16Lead(rb)
			if ua != ub {
				return cmpRune(ua, ub)
			}
			return cmpRune(ra, rb)
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) - len(b)
}

func cmpRune(a, b rune) int {
	if a < b {
		return -1
	}
	return 1
}

// utf16Lead returns the first UTF-16 code unit of r.
func utf16Lead(r rune) rune {
	if r < 0x10000 {
		return r
	}
	return 0xD800 + (r-0x10000)>>10
}

// canonNumber checks that the number at b[i] is written exactly as RFC 8785
// (ECMAScript) writes its value.
func canonNumber(b []byte, i int) (int, bool) {
	start := i
	if b[i] == '-' {
		i++
	}
	intStart := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	digits := i - intStart
	integer := true
	if i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E' || b[i] == '+' || b[i] == '-') {
		integer = false
		for i < len(b) && (b[i] >= '0' && b[i] <= '9' || b[i] == '.' || b[i] == 'e' || b[i] == 'E' || b[i] == '+' || b[i] == '-') {
			i++
		}
	}
	tok := b[start:i]
	if digits == 0 || digits > 1 && b[intStart] == '0' {
		return i, false
	}
	if integer && digits <= 15 {
		// Below 10^15 every integer is an exactly representable double that
		// ECMAScript prints digit for digit; only "-0" is not canonical.
		return i, !(digits == 1 && b[intStart] == '0' && start != intStart)
	}
	if !numberGrammar(tok) {
		return i, false
	}
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil {
		return i, false
	}
	s, err := jcs.NumberToJSON(f)
	return i, err == nil && s == string(tok)
}

// numberGrammar reports whether tok is an RFC 8259 number.
func numberGrammar(tok []byte) bool {
	i := 0
	if i < len(tok) && tok[i] == '-' {
		i++
	}
	switch {
	case i < len(tok) && tok[i] == '0':
		i++
	case i < len(tok) && tok[i] >= '1' && tok[i] <= '9':
		for i < len(tok) && tok[i] >= '0' && tok[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(tok) && tok[i] == '.' {
		i++
		d := i
		for i < len(tok) && tok[i] >= '0' && tok[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	if i < len(tok) && (tok[i] == 'e' || tok[i] == 'E') {
		i++
		if i < len(tok) && (tok[i] == '+' || tok[i] == '-') {
			i++
		}
		d := i
		for i < len(tok) && tok[i] >= '0' && tok[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	return i == len(tok)
}

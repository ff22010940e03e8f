// Package jsonlex is warden's one lexer of JSON strings (RFC 8259 §7),
// shared by the strict decoder (jsonx) and the RFC 8785 canonicaliser and
// checker (ledger): Scan finds where a string token ends, whether it holds
// escapes and whether it is already canonical, or names the first fault
// and its offset; DecodeRune and AppendUnescaped decode what Scan
// accepted; AppendCanonical and AppendCanonicalContents write RFC 8785
// strings. It performs no I/O; Scan and DecodeRune do not allocate.
package jsonlex

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"
)

// Kind is what is wrong with a string token, or OK.
type Kind uint8

// Faults Scan reports, each with the offset it names.
const (
	OK Kind = iota
	// Unterminated: the input ends inside the string; at len(input).
	Unterminated
	// Control: an unescaped control character (U+0000 to U+001F); at it.
	Control
	// BadEscape: a backslash followed by a byte that starts no escape, or
	// by the end of the input; at that byte (or len(input)).
	BadEscape
	// BadHex: \u not followed by four hex digits; at the backslash.
	BadHex
	// Surrogate: a \u escape of a UTF-16 surrogate that is not the high
	// half of a high-low pair of escapes; at its backslash.
	Surrogate
	// UTF8: a byte sequence that is not UTF-8 (RFC 3629: no overlong
	// forms, no encoded surrogates, nothing above U+10FFFF); at its first
	// byte.
	UTF8
)

var kindText = [...]string{
	OK:           "ok",
	Unterminated: "unterminated string",
	Control:      "control character in string",
	BadEscape:    "invalid escape in string",
	BadHex:       "invalid \\u escape in string",
	Surrogate:    "unpaired surrogate escape in string",
	UTF8:         "string is not valid UTF-8",
}

// String describes k in a few lowercase words.
func (k Kind) String() string {
	if int(k) < len(kindText) {
		return kindText[k]
	}
	return "unknown fault"
}

// Flags say what a string token that Scan accepted holds.
type Flags uint8

const (
	// Escaped: the token holds at least one escape, so its contents are
	// not its value byte for byte.
	Escaped Flags = 1 << iota
	// NotCanonical: the token holds an escape that RFC 8785 writes
	// differently (\/, or a \u escape of anything but a control character
	// without a short form, or with upper-case hex), so the token is not
	// the canonical form of its value. A token without it is.
	NotCanonical
)

// class sorts the bytes of string contents by what Scan does with them.
// Plain bytes (printable ASCII but the quote and the backslash) are zero,
// so the hot loop tests one table entry per byte.
var class = func() (t [256]uint8) {
	for c := 0; c < 0x20; c++ {
		t[c] = cControl
	}
	t['"'] = cQuote
	t['\\'] = cBackslash
	for c := utf8.RuneSelf; c < 256; c++ {
		t[c] = cNonASCII
	}
	return t
}()

const (
	cPlain = iota
	cQuote
	cBackslash
	cControl
	cNonASCII
)

// Scan lexes the string token whose opening quote is at b[i]. If the
// token is well-formed (terminated, valid UTF-8, no control character,
// only JSON's escapes, every surrogate escape paired high then low), it
// returns the offset just past the closing quote, the token's Flags and
// OK. Otherwise it returns the offset of the first fault (see Kind) and
// its Kind. It MUST be called with b[i] == '"'.
func Scan(b []byte, i int) (int, Flags, Kind) {
	var f Flags
	i++ // opening quote
	for {
		// Plain bytes eight at a time while the input lasts (it usually
		// does: b is the whole document), then one at a time.
		for i+8 <= len(b) {
			if m := special(binary.LittleEndian.Uint64(b[i:])); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		for i < len(b) && class[b[i]] == cPlain {
			i++
		}
		if i >= len(b) {
			return i, f, Unterminated
		}
		switch class[b[i]] {
		case cQuote:
			return i + 1, f, OK
		case cBackslash:
			f |= Escaped
			if i+1 >= len(b) {
				return i + 1, f, BadEscape
			}
			switch b[i+1] {
			case '"', '\\', 'b', 'f', 'n', 'r', 't':
				i += 2
			case '/':
				f |= NotCanonical
				i += 2
			case 'u':
				r, ok := hex4(b, i+2)
				if !ok {
					return i, f, BadHex
				}
				if !canonicalU(b[i+2:i+6], r) {
					f |= NotCanonical
				}
				if utf16.IsSurrogate(r) {
					if r >= 0xDC00 || len(b) < i+12 || b[i+6] != '\\' || b[i+7] != 'u' {
						return i, f, Surrogate
					}
					if r2, ok := hex4(b, i+8); !ok || r2 < 0xDC00 || r2 > 0xDFFF {
						return i, f, Surrogate
					}
					i += 6
				}
				i += 6
			default:
				return i + 1, f, BadEscape
			}
		case cControl:
			return i, f, Control
		default: // cNonASCII
			n := utf8Len(b[i:])
			if n == 0 {
				return i, f, UTF8
			}
			i += n
		}
	}
}

// special flags the bytes of x (eight bytes of contents, little-endian)
// that end a run of plain bytes: controls, '"', '\\' and non-ASCII. The
// lowest flagged byte is exact; bytes above it may be flagged falsely.
func special(x uint64) uint64 {
	const lsb, msb = 0x0101010101010101, 0x8080808080808080
	q, bs := x^(lsb*'"'), x^(lsb*'\\')
	return ((x-lsb*0x20)&^x | (q-lsb)&^q | (bs-lsb)&^bs | x) & msb
}

// utf8Len returns the length of the UTF-8 sequence (RFC 3629) that s
// starts with, at least two bytes, or 0 if s does not start with one. It
// is utf8.DecodeRune's validity check without the decoding.
func utf8Len(s []byte) int {
	c := s[0]
	switch {
	case c >= 0xC2 && c <= 0xDF:
		if len(s) >= 2 && s[1]&0xC0 == 0x80 {
			return 2
		}
	case c >= 0xE0 && c <= 0xEF:
		lo, hi := byte(0x80), byte(0xBF)
		if c == 0xE0 {
			lo = 0xA0 // no overlong forms
		} else if c == 0xED {
			hi = 0x9F // no encoded surrogates
		}
		if len(s) >= 3 && s[1] >= lo && s[1] <= hi && s[2]&0xC0 == 0x80 {
			return 3
		}
	case c >= 0xF0 && c <= 0xF4:
		lo, hi := byte(0x80), byte(0xBF)
		if c == 0xF0 {
			lo = 0x90 // no overlong forms
		} else if c == 0xF4 {
			hi = 0x8F // nothing above U+10FFFF
		}
		if len(s) >= 4 && s[1] >= lo && s[1] <= hi && s[2]&0xC0 == 0x80 && s[3]&0xC0 == 0x80 {
			return 4
		}
	}
	return 0
}

// canonicalU reports whether the \u escape of r with hex digits h is the one
// RFC 8785 writes: lower-case \u00xx for a control character that has no
// short escape.
func canonicalU(h []byte, r rune) bool {
	if r >= 0x20 || h[3] >= 'A' && h[3] <= 'F' {
		return false
	}
	switch r {
	case '\b', '\t', '\n', '\f', '\r':
		return false
	}
	return true
}

// hex4 decodes the four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if len(b)-i < 4 {
		return 0, false
	}
	h := b[i : i+4 : i+4]
	d0, d1, d2, d3 := hexValue[h[0]], hexValue[h[1]], hexValue[h[2]], hexValue[h[3]]
	if d0|d1|d2|d3 < 0 {
		return 0, false
	}
	return rune(d0)<<12 | rune(d1)<<8 | rune(d2)<<4 | rune(d3), true
}

// hexValue maps hex digits to their values and other bytes to -1.
var hexValue = func() (t [256]int8) {
	for c := range t {
		switch {
		case c >= '0' && c <= '9':
			t[c] = int8(c - '0')
		case c >= 'a' && c <= 'f':
			t[c] = int8(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			t[c] = int8(c - 'A' + 10)
		default:
			t[c] = -1
		}
	}
	return t
}()

// DecodeRune decodes the first character of s, the contents (between the
// quotes) of a token Scan accepted or a suffix of them that starts at a
// character: the character, escaped or not, and the bytes it takes. A
// surrogate pair of escapes is one character. s MUST NOT be empty.
func DecodeRune(s []byte) (rune, int) {
	c := s[0]
	if c != '\\' {
		if c < utf8.RuneSelf {
			return rune(c), 1
		}
		return utf8.DecodeRune(s)
	}
	switch s[1] {
	case 'b':
		return '\b', 2
	case 'f':
		return '\f', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 't':
		return '\t', 2
	case 'u':
		r, _ := hex4(s, 2)
		if utf16.IsSurrogate(r) {
			r2, _ := hex4(s, 8)
			return utf16.DecodeRune(r, r2), 12
		}
		return r, 6
	}
	return rune(s[1]), 2 // '"', '\\' or '/'
}

// AppendUnescaped appends to dst the value of s, the contents of a token
// Scan accepted.
func AppendUnescaped(dst, s []byte) []byte {
	for len(s) > 0 {
		n := 0
		for n < len(s) && s[n] != '\\' {
			n++
		}
		dst = append(dst, s[:n]...)
		if s = s[n:]; len(s) == 0 {
			break
		}
		r, size := DecodeRune(s)
		dst = utf8.AppendRune(dst, r)
		s = s[size:]
	}
	return dst
}

// AppendCanonical appends s as an RFC 8785 string: '"', '\\' and control
// characters escaped, the short forms where JSON has them and lower-case
// \u00xx otherwise; everything else literal. It returns false, and dst
// unchanged, if s is not valid UTF-8, which RFC 8785 cannot represent.
func AppendCanonical(dst []byte, s string) ([]byte, bool) {
	if !utf8.ValidString(s) {
		return dst, false
	}
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		n := i
		for n < len(s) && s[n] >= 0x20 && s[n] != '"' && s[n] != '\\' {
			n++
		}
		dst = append(dst, s[i:n]...)
		if n == len(s) {
			break
		}
		dst = appendEscaped(dst, s[n])
		i = n + 1
	}
	return append(dst, '"'), true
}

// AppendCanonicalContents appends, without quotes, the RFC 8785 form of the
// value of s, the contents of a token Scan accepted with flags f: s itself
// unless f has NotCanonical.
func AppendCanonicalContents(dst, s []byte, f Flags) []byte {
	if f&NotCanonical == 0 {
		return append(dst, s...)
	}
	for len(s) > 0 {
		n := 0
		for n < len(s) && s[n] != '\\' {
			n++
		}
		dst = append(dst, s[:n]...)
		if s = s[n:]; len(s) == 0 {
			break
		}
		r, size := DecodeRune(s)
		if r < utf8.RuneSelf && class[r] != cPlain {
			dst = appendEscaped(dst, byte(r))
		} else {
			dst = utf8.AppendRune(dst, r)
		}
		s = s[size:]
	}
	return dst
}

// appendEscaped appends RFC 8785's escape of c: '"', '\\' or a control
// character.
func appendEscaped(dst []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(dst, '\\', c)
	case '\b':
		return append(dst, '\\', 'b')
	case '\t':
		return append(dst, '\\', 't')
	case '\n':
		return append(dst, '\\', 'n')
	case '\f':
		return append(dst, '\\', 'f')
	case '\r':
		return append(dst, '\\', 'r')
	}
	const hexdigits = "0123456789abcdef"
	return append(dst, '\\', 'u', '0', '0', hexdigits[c>>4], hexdigits[c&0xf])
}

package jsonx

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/internal/jsonlex"
)

// MaxDepth bounds how deeply objects and arrays may nest. It equals
// encoding/json's own limit, so the scanner refuses first, by name.
const MaxDepth = 10000

// mapAfter is the number of keys an object may hold before duplicate
// detection switches from a linear search to a map: small objects (every
// real request) stay allocation-free, and a 64 KiB object of tiny keys
// costs linear, not quadratic, time.
const mapAfter = 16

// scan validates data in one pass, before encoding/json sees it, for what
// encoding/json would otherwise accept or silently repair: it MUST refuse
// anything but exactly one object surrounded by whitespace, invalid UTF-8
// anywhere (encoding/json stores U+FFFD), \u escapes that are unpaired
// UTF-16 surrogates (likewise), a key repeated in any object at any depth
// (encoding/json keeps the last), nesting deeper than MaxDepth, and a
// top-level key that is not exactly one of fields (nil: any key), and an
// object that lacks, or holds as null, a top-level key of required (its
// value is the key's index, below 64; nil: none required). Keys are
// compared after unescaping, so "a" and "\u0061" are the same key.
func scan(data []byte, fields map[string]bool, required map[string]int) *scanError {
	kp := keyPool.Get().(*[][]byte)
	s := scanner{data: data, fields: fields, required: required, keys: (*kp)[:0]}
	defer func() {
		if cap(s.keys) <= 4*mapAfter { // keep no 64 KiB body's worth of keys
			*kp = s.keys[:0]
			keyPool.Put(kp)
		}
	}()
	s.skipSpace()
	if s.pos == len(data) {
		return &scanError{kind: errEmpty}
	}
	if data[s.pos] != '{' {
		return &scanError{kind: errNotObject}
	}
	if err := s.object(); err != nil {
		return err
	}
	s.skipSpace()
	if s.pos != len(data) {
		return &scanError{kind: errTrailing, off: s.pos}
	}
	if n := len(required); n > 0 && s.present != 1<<n-1 {
		for i := range n {
			if s.present&(1<<i) == 0 {
				return &scanError{kind: errMissing, off: i} // decode names it
			}
		}
	}
	return nil
}

// keyPool recycles key stacks. A stack owned by the scanner would move the
// scanner to the heap (escape analysis treats stores through *scanner as
// escaping): an allocation per Decode.
var keyPool = sync.Pool{New: func() any { k := make([][]byte, 0, 2*mapAfter); return &k }}

type scanner struct {
	data   []byte
	pos    int
	depth  int
	fields map[string]bool
	// required indexes the top-level keys that must be present; present
	// marks those seen with a value other than null.
	required map[string]int
	present  uint64
	keys     [][]byte // unescaped keys of the open objects, innermost last
}

type errKind int

const (
	errSyntax errKind = iota
	errEmpty
	errNotObject
	errTrailing
	errUTF8
	errSurrogate
	errDuplicate
	errUnknown
	errDepth
	errMissing
)

// scanError is a refusal with the byte offset it happened at; path is
// filled in while unwinding (innermost segment first), so building it
// costs nothing unless the scan fails.
type scanError struct {
	kind errKind
	off  int    // errMissing: the index of the missing key in the required list
	what string // errSyntax: what was wrong; errSurrogate: the escape; errDuplicate, errUnknown, errMissing: the key
	path []segment
}

// segment is one step of a path: an object key, or an array index when
// key is nil.
type segment struct {
	key   *string
	index int
}

func (e *scanError) inKey(key []byte) *scanError {
	k := string(key)
	e.path = append(e.path, segment{key: &k})
	return e
}

func (e *scanError) inIndex(i int) *scanError {
	e.path = append(e.path, segment{index: i})
	return e
}

// where renders the path as in `evidence`, `a.b[2]` or `["odd key"]`.
func (e *scanError) where() string {
	var b strings.Builder
	for i := len(e.path) - 1; i >= 0; i-- {
		switch seg := e.path[i]; {
		case seg.key == nil:
			b.WriteString("[" + strconv.Itoa(seg.index) + "]")
		case isPlain(*seg.key):
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(*seg.key)
		default:
			b.WriteString("[" + strconv.Quote(*seg.key) + "]")
		}
	}
	return b.String()
}

func (e *scanError) err() *warden.Error {
	switch e.kind {
	case errEmpty:
		return warden.Errorf(warden.EINVALID, "The request is empty; send a JSON object.")
	case errNotObject:
		return warden.Errorf(warden.EINVALID, "The request must be a JSON object.")
	case errTrailing:
		return warden.Errorf(warden.EINVALID, "The request has data after the JSON object (byte offset %d).", e.off)
	case errUTF8:
		return warden.Errorf(warden.EINVALID, "The request is not valid UTF-8 (byte offset %d).", e.off)
	case errSurrogate:
		return warden.Errorf(warden.EINVALID, "String escape %s at byte offset %d is an unpaired UTF-16 surrogate; strings must be valid Unicode.", e.what, e.off)
	case errDuplicate:
		if len(e.path) == 0 {
			return warden.Errorf(warden.EINVALID, "The request has duplicate key %q.", e.what)
		}
		return warden.Errorf(warden.EINVALID, "The request has duplicate key %q in %s.", e.what, e.where())
	case errUnknown:
		return warden.Errorf(warden.EINVALID, "The request has unknown field %q.", e.what)
	case errDepth:
		return warden.Errorf(warden.EINVALID, "The request nests objects and arrays deeper than %d levels.", MaxDepth)
	case errMissing:
		return warden.Errorf(warden.EINVALID, "%s is required.", e.what)
	}
	return warden.Errorf(warden.EINVALID, "The request is not valid JSON: %s at byte offset %d.", e.what, e.off)
}

func isPlain(seg string) bool {
	if seg == "" {
		return false
	}
	for _, c := range seg {
		if !(c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func (s *scanner) syntax(off int, format string, args ...any) *scanError {
	return &scanError{kind: errSyntax, off: off, what: fmt.Sprintf(format, args...)}
}

// unexpected reports the byte at off, or the end of the body.
func (s *scanner) unexpected(off int, context string) *scanError {
	if off >= len(s.data) {
		return s.syntax(off, "unexpected end of input %s", context)
	}
	c := s.data[off]
	if c >= utf8.RuneSelf {
		r, size := utf8.DecodeRune(s.data[off:])
		if r == utf8.RuneError && size == 1 {
			return &scanError{kind: errUTF8, off: off}
		}
		return s.syntax(off, "invalid character %q %s", r, context)
	}
	return s.syntax(off, "invalid character %q %s", c, context)
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) value() *scanError {
	s.skipSpace()
	if s.pos >= len(s.data) {
		return s.unexpected(s.pos, "looking for a value")
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		return s.object()
	case c == '[':
		return s.array()
	case c == '"':
		end, _, kind := jsonlex.Scan(s.data, s.pos)
		if kind != jsonlex.OK {
			return s.strError(end, kind)
		}
		s.pos = end
		return nil
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return s.unexpected(s.pos, "looking for a value")
}

func (s *scanner) object() *scanError {
	if s.depth++; s.depth > MaxDepth {
		return &scanError{kind: errDepth, off: s.pos}
	}
	s.pos++ // '{'
	base := len(s.keys)
	err := s.members(base)
	clear(s.keys[base:]) // drop references to unescaped copies
	s.keys = s.keys[:base]
	s.depth--
	return err
}

func (s *scanner) members(base int) *scanError {
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return nil
	}
	var seen map[string]struct{}
	for {
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return s.unexpected(s.pos, "looking for an object key")
		}
		start := s.pos + 1
		end, flags, kind := jsonlex.Scan(s.data, s.pos)
		if kind != jsonlex.OK {
			return s.strError(end, kind)
		}
		s.pos = end
		key := s.data[start : end-1]
		if flags&jsonlex.Escaped != 0 {
			key = unescape(key)
		}
		if seen != nil {
			if _, dup := seen[string(key)]; dup {
				return &scanError{kind: errDuplicate, off: start - 1, what: string(key)}
			}
			seen[string(key)] = struct{}{}
		} else {
			for _, k := range s.keys[base:] {
				if bytes.Equal(k, key) {
					return &scanError{kind: errDuplicate, off: start - 1, what: string(key)}
				}
			}
			if len(s.keys)-base == mapAfter {
				seen = make(map[string]struct{}, 2*mapAfter)
				for _, k := range s.keys[base:] {
					seen[string(k)] = struct{}{}
				}
				seen[string(key)] = struct{}{}
			}
		}
		s.keys = append(s.keys, key)
		if s.depth == 1 && s.fields != nil && !s.fields[string(key)] {
			return &scanError{kind: errUnknown, off: start - 1, what: string(key)}
		}
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return s.unexpected(s.pos, "after an object key").inKey(key)
		}
		s.pos++
		if s.depth == 1 && s.required != nil {
			if i, ok := s.required[string(key)]; ok {
				s.skipSpace()
				if s.pos < len(s.data) && s.data[s.pos] != 'n' { // null is no value
					s.present |= 1 << i
				}
			}
		}
		if err := s.value(); err != nil {
			return err.inKey(key)
		}
		s.skipSpace()
		if s.pos < len(s.data) {
			switch s.data[s.pos] {
			case ',':
				s.pos++
				continue
			case '}':
				s.pos++
				return nil
			}
		}
		return s.unexpected(s.pos, "after an object value (want , or })")
	}
}

func (s *scanner) array() *scanError {
	if s.depth++; s.depth > MaxDepth {
		return &scanError{kind: errDepth, off: s.pos}
	}
	s.pos++ // '['
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		s.depth--
		return nil
	}
	for i := 0; ; i++ {
		if err := s.value(); err != nil {
			return err.inIndex(i)
		}
		s.skipSpace()
		if s.pos < len(s.data) {
			switch s.data[s.pos] {
			case ',':
				s.pos++
				continue
			case ']':
				s.pos++
				s.depth--
				return nil
			}
		}
		return s.unexpected(s.pos, "after an array element (want , or ])")
	}
}

func (s *scanner) literal(word string) *scanError {
	for i := 0; i < len(word); i++ {
		if s.pos+i >= len(s.data) || s.data[s.pos+i] != word[i] {
			return s.unexpected(s.pos+i, "in literal "+word)
		}
	}
	s.pos += len(word)
	return nil
}

// number accepts RFC 8259's grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() *scanError {
	d, i := s.data, s.pos
	if d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		return s.unexpected(i, "in a number")
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return s.unexpected(i, "after a decimal point")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return s.unexpected(i, "in a number's exponent")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	s.pos = i
	return nil
}

// strError names what jsonlex.Scan found wrong with a string, at off. It
// is apart from the callers of Scan so their hot path stays small.
func (s *scanner) strError(off int, kind jsonlex.Kind) *scanError {
	switch kind {
	case jsonlex.Unterminated:
		return s.unexpected(off, "in a string")
	case jsonlex.BadEscape:
		return s.unexpected(off, "in a string escape")
	case jsonlex.BadHex:
		return s.syntax(off, "invalid \\u escape (want four hex digits)")
	case jsonlex.Surrogate:
		return &scanError{kind: errSurrogate, off: off, what: string(s.data[off : off+6])}
	case jsonlex.Control:
		return s.syntax(off, "control character %q in a string (escape it)", s.data[off])
	}
	return &scanError{kind: errUTF8, off: off} // jsonlex.UTF8
}

// unescape decodes a key's contents, which jsonlex.Scan has accepted.
func unescape(b []byte) []byte {
	return jsonlex.AppendUnescaped(make([]byte, 0, len(b)), b)
}

package ledger

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/gowebpki/jcs"
)

// maxTransformDepth bounds nesting so hostile input cannot exhaust the stack.
const maxTransformDepth = 512

// transform rewrites any JSON text as its RFC 8785 canonical form: object
// members sorted by the UTF-16 code units of their keys, strings with only
// the escapes JCS allows, numbers as ECMAScript writes them, no
// whitespace. It rejects what JCS rejects: invalid JSON, invalid UTF-8,
// lone surrogates, duplicate keys, and numbers outside IEEE 754 doubles.
// It does in one pass, without building a tree of interfaces, what
// gowebpki/jcs does; TestTransformMatchesJCS and FuzzTransform hold the two
// to the same output.
func transform(in []byte) ([]byte, error) {
	t := transformer{in: in}
	out, err := t.value(make([]byte, 0, len(in)), 0)
	if err != nil {
		return nil, err
	}
	t.ws()
	if t.i != len(t.in) {
		return nil, t.errorf("data after the JSON value")
	}
	return out, nil
}

type transformer struct {
	in []byte
	i  int
}

func (t *transformer) errorf(format string, args ...any) error {
	return fmt.Errorf("canonical JSON: offset %d: %s", t.i, fmt.Sprintf(format, args...))
}

func (t *transformer) ws() {
	for t.i < len(t.in) {
		switch t.in[t.i] {
		case ' ', '\t', '\n', '\r':
			t.i++
		default:
			return
		}
	}
}

func (t *transformer) value(out []byte, depth int) ([]byte, error) {
	t.ws()
	if t.i >= len(t.in) {
		return nil, t.errorf("unexpected end of input")
	}
	switch c := t.in[t.i]; {
	case c == '{':
		return t.object(out, depth+1)
	case c == '[':
		return t.array(out, depth+1)
	case c == '"':
		s, err := t.str()
		if err != nil {
			return nil, err
		}
		out, _ = appendString(out, s)
		return out, nil
	case c == 't':
		return t.literal(out, "true")
	case c == 'f':
		return t.literal(out, "false")
	case c == 'n':
		return t.literal(out, "null")
	case c == '-' || c >= '0' && c <= '9':
		return t.number(out)
	default:
		return nil, t.errorf("unexpected character %q", c)
	}
}

func (t *transformer) literal(out []byte, lit string) ([]byte, error) {
	if len(t.in)-t.i < len(lit) || string(t.in[t.i:t.i+len(lit)]) != lit {
		return nil, t.errorf("invalid literal")
	}
	t.i += len(lit)
	return append(out, lit...), nil
}

func (t *transformer) array(out []byte, depth int) ([]byte, error) {
	if depth > maxTransformDepth {
		return nil, t.errorf("nesting deeper than %d", maxTransformDepth)
	}
	t.i++ // [
	out = append(out, '[')
	t.ws()
	if t.i < len(t.in) && t.in[t.i] == ']' {
		t.i++
		return append(out, ']'), nil
	}
	for n := 0; ; n++ {
		if n > 0 {
			out = append(out, ',')
		}
		var err error
		if out, err = t.value(out, depth); err != nil {
			return nil, err
		}
		t.ws()
		if t.i >= len(t.in) {
			return nil, t.errorf("unterminated array")
		}
		switch t.in[t.i] {
		case ',':
			t.i++
		case ']':
			t.i++
			return append(out, ']'), nil
		default:
			return nil, t.errorf("expected , or ] in array")
		}
	}
}

type member struct {
	key        string
	start, end int // the canonical value in the object's scratch buffer
}

func (t *transformer) object(out []byte, depth int) ([]byte, error) {
	if depth > maxTransformDepth {
		return nil, t.errorf("nesting deeper than %d", maxTransformDepth)
	}
	t.i++ // {
	t.ws()
	if t.i < len(t.in) && t.in[t.i] == '}' {
		t.i++
		return append(out, '{', '}'), nil
	}
	var members []member
	var scratch []byte
	for {
		t.ws()
		if t.i >= len(t.in) || t.in[t.i] != '"' {
			return nil, t.errorf("expected a string key")
		}
		key, err := t.str()
		if err != nil {
			return nil, err
		}
		t.ws()
		if t.i >= len(t.in) || t.in[t.i] != ':' {
			return nil, t.errorf("expected : after key")
		}
		t.i++
		start := len(scratch)
		if scratch, err = t.value(scratch, depth); err != nil {
			return nil, err
		}
		members = append(members, member{key: key, start: start, end: len(scratch)})
		t.ws()
		if t.i >= len(t.in) {
			return nil, t.errorf("unterminated object")
		}
		if t.in[t.i] == ',' {
			t.i++
			continue
		}
		if t.in[t.i] != '}' {
			return nil, t.errorf("expected , or } in object")
		}
		t.i++
		break
	}
	slices.SortFunc(members, func(a, b member) int { return compareUTF16(a.key, b.key) })
	out = append(out, '{')
	for n, m := range members {
		if n > 0 {
			if members[n-1].key == m.key {
				return nil, fmt.Errorf("canonical JSON: duplicate key %q", m.key)
			}
			out = append(out, ',')
		}
		out, _ = appendString(out, m.key)
		out = append(out, ':')
		out = append(out, scratch[m.start:m.end]...)
	}
	return append(out, '}'), nil
}

// compareUTF16 orders strings by their UTF-16 code units (RFC 8785 §3.2.3).
func compareUTF16(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			if ua, ub := utf16Lead(ra), utf16Lead(rb); ua != ub {
				return cmpRune(ua, ub)
			}
			return cmpRune(ra, rb)
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) - len(b)
}

// str decodes the JSON string at t.i; it rejects control characters,
// invalid UTF-8, bad escapes and lone surrogates.
func (t *transformer) str() (string, error) {
	t.i++ // opening quote
	start := t.i
	// Fast path: no escapes.
	for t.i < len(t.in) {
		c := t.in[t.i]
		if c == '"' {
			s := t.in[start:t.i]
			if !utf8.Valid(s) {
				return "", t.errorf("string is not valid UTF-8")
			}
			t.i++
			return string(s), nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", t.errorf("control character in string")
		}
		t.i++
	}
	buf := append([]byte(nil), t.in[start:t.i]...)
	for {
		if t.i >= len(t.in) {
			return "", t.errorf("unterminated string")
		}
		c := t.in[t.i]
		switch {
		case c == '"':
			t.i++
			if !utf8.Valid(buf) {
				return "", t.errorf("string is not valid UTF-8")
			}
			return string(buf), nil
		case c < 0x20:
			return "", t.errorf("control character in string")
		case c != '\\':
			buf = append(buf, c)
			t.i++
			continue
		}
		if t.i+1 >= len(t.in) {
			return "", t.errorf("unterminated escape")
		}
		e := t.in[t.i+1]
		t.i += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, err := t.hex4()
			if err != nil {
				return "", err
			}
			if utf16.IsSurrogate(r) {
				if r >= 0xDC00 || t.i+1 >= len(t.in) || t.in[t.i] != '\\' || t.in[t.i+1] != 'u' {
					return "", t.errorf("lone surrogate")
				}
				t.i += 2
				r2, err := t.hex4()
				if err != nil {
					return "", err
				}
				if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
					return "", t.errorf("invalid surrogate pair")
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", t.errorf("invalid escape \\%c", e)
		}
	}
}

func (t *transformer) hex4() (rune, error) {
	if len(t.in)-t.i < 4 {
		return 0, t.errorf("short \\u escape")
	}
	var r rune
	for _, c := range t.in[t.i : t.i+4] {
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		default:
			return 0, t.errorf("invalid \\u escape")
		}
		r = r<<4 | rune(v)
	}
	t.i += 4
	return r, nil
}

var errNumber = errors.New("number")

// number writes the number at t.i as ECMAScript's Number.prototype.toString
// writes its IEEE 754 double value.
func (t *transformer) number(out []byte) ([]byte, error) {
	start := t.i
	if t.in[t.i] == '-' {
		t.i++
	}
	intStart := t.i
	if t.i < len(t.in) && t.in[t.i] == '0' {
		t.i++
	} else {
		for t.i < len(t.in) && t.in[t.i] >= '0' && t.in[t.i] <= '9' {
			t.i++
		}
	}
	if t.i == intStart {
		return nil, t.errorf("invalid number")
	}
	simple := true
	if t.i < len(t.in) && t.in[t.i] == '.' {
		simple = false
		t.i++
		d := t.i
		for t.i < len(t.in) && t.in[t.i] >= '0' && t.in[t.i] <= '9' {
			t.i++
		}
		if t.i == d {
			return nil, t.errorf("invalid number")
		}
	}
	if t.i < len(t.in) && (t.in[t.i] == 'e' || t.in[t.i] == 'E') {
		simple = false
		t.i++
		if t.i < len(t.in) && (t.in[t.i] == '+' || t.in[t.i] == '-') {
			t.i++
		}
		d := t.i
		for t.i < len(t.in) && t.in[t.i] >= '0' && t.in[t.i] <= '9' {
			t.i++
		}
		if t.i == d {
			return nil, t.errorf("invalid number")
		}
	}
	tok := t.in[start:t.i]
	// Integers of up to 15 digits are exact doubles and print as written
	// (negative zero prints as 0).
	if simple && t.i-intStart <= 15 {
		if string(tok) == "-0" {
			return append(out, '0'), nil
		}
		return append(out, tok...), nil
	}
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil || math.IsInf(f, 0) {
		return nil, t.errorf("number %s is not an IEEE 754 double", tok)
	}
	s, err := jcs.NumberToJSON(f)
	if err != nil {
		return nil, t.errorf("number %s: %v", tok, err)
	}
	return append(out, s...), nil
}

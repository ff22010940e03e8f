package ledger

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/gowebpki/jcs"
	"github.com/warden-sh/warden/internal/jsonlex"
)

// maxTransformDepth bounds nesting so hostile input cannot exhaust the stack.
const maxTransformDepth = 512

// transform rewrites any JSON text as its RFC 8785 canonical form: object
// members sorted by the UTF-16 code units of their keys, strings with only
// the escapes JCS allows, numbers as ECMAScript writes them, no
// whitespace. It rejects what JCS rejects: invalid JSON, invalid UTF-8,
// lone surrogates, duplicate keys, and numbers outside IEEE 754 doubles.
// It does in one pass, without building a tree of interfaces, what
// gowebpki/jcs does; FuzzCanonicalMatchesJCS holds the two to the same
// output. Strings are lexed by jsonlex.Scan, copied as they are when
// already canonical and rewritten otherwise; keys are sorted where they
// lie in the input, never decoded into copies.
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
	// exact refuses a number whose canonical form is another number
	// (CanonicalExact).
	exact bool
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
		s, f, err := t.str()
		if err != nil {
			return nil, err
		}
		return appendContents(out, s, f), nil
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
	key        []byte        // the key's contents in the input, escapes and all
	flags      jsonlex.Flags // the key's
	start, end int           // the canonical value in the object's scratch buffer
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
		key, flags, err := t.str()
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
		members = append(members, member{key: key, flags: flags, start: start, end: len(scratch)})
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
	slices.SortFunc(members, func(a, b member) int { return compareKeys(a.key, b.key) })
	out = append(out, '{')
	for n, m := range members {
		if n > 0 {
			if compareKeys(members[n-1].key, m.key) == 0 {
				return nil, fmt.Errorf("canonical JSON: duplicate key %q", jsonlex.AppendUnescaped(nil, m.key))
			}
			out = append(out, ',')
		}
		out = appendContents(out, m.key, m.flags)
		out = append(out, ':')
		out = append(out, scratch[m.start:m.end]...)
	}
	return append(out, '}'), nil
}

// str scans the string token at t.i and returns its contents, escapes and
// all, and its flags.
func (t *transformer) str() ([]byte, jsonlex.Flags, error) {
	end, f, kind := jsonlex.Scan(t.in, t.i)
	if kind != jsonlex.OK {
		t.i = end
		return nil, 0, t.errorf("%v", kind)
	}
	s := t.in[t.i+1 : end-1]
	t.i = end
	return s, f, nil
}

// appendContents appends the canonical string of the value of s, the
// contents of a token jsonlex.Scan accepted with flags f.
func appendContents(out, s []byte, f jsonlex.Flags) []byte {
	out = append(out, '"')
	out = jsonlex.AppendCanonicalContents(out, s, f)
	return append(out, '"')
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
	if t.exact && s != string(tok) && !sameDecimal(string(tok), s) {
		t.i = start
		return nil, t.errorf("%v", inexactNumber(string(tok), s))
	}
	return append(out, s...), nil
}

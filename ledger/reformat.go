package ledger

import (
	"fmt"
	"strings"
)

// CanonicalExact returns the RFC 8785 canonical form of the JSON text b,
// whatever way b is written: indented, with its members in another order,
// with other string escapes or another spelling of the same numbers (what
// `jq .`, Python's json.dumps or an indenting encoder make of a canonical
// body). A receipt's root_hash commits to its body's canonical form, so a
// body read back in another form is checked by this one.
//
// It refuses what would let two readers see different values in b: invalid
// JSON or UTF-8, lone surrogates, a key repeated in an object (readers keep
// different copies), and a number that the canonical form would not keep
// exactly (a double cannot hold it as written: a re-formatter rounded it, or
// it was edited past a double's precision, which readers that keep decimals
// would see and the canonical form would hide).
func CanonicalExact(b []byte) ([]byte, error) {
	t := transformer{in: b, exact: true}
	out, err := t.value(make([]byte, 0, len(b)), 0)
	if err != nil {
		return nil, err
	}
	t.ws()
	if t.i != len(t.in) {
		return nil, t.errorf("data after the JSON value")
	}
	return out, nil
}

// sameDecimal reports whether the JSON number tokens a and b denote the same
// decimal value (1.50, 15e-1 and 1.5 do; so do -0 and 0). It compares
// normalised digit strings and exponents, never materialising a number, so
// an exponent of a billion costs nothing.
func sameDecimal(a, b string) bool {
	na, oka := normDecimal(a)
	nb, okb := normDecimal(b)
	return oka && okb && na == nb
}

// decimal is a JSON number as 0.digits × 10^exp, digits without leading or
// trailing zeros; zero is the zero value.
type decimal struct {
	neg    bool
	digits string
	exp    int64
}

// normDecimal normalises a JSON number token. ok is false for an exponent
// too large to compare (beyond ±10^15, which no double comes near).
func normDecimal(tok string) (decimal, bool) {
	var d decimal
	if strings.HasPrefix(tok, "-") {
		d.neg = true
		tok = tok[1:]
	}
	mant, exp := tok, ""
	if i := strings.IndexAny(tok, "eE"); i >= 0 {
		mant, exp = tok[:i], tok[i+1:]
	}
	var e int64
	if exp != "" {
		sign := int64(1)
		switch exp[0] {
		case '-':
			sign, exp = -1, exp[1:]
		case '+':
			exp = exp[1:]
		}
		exp = strings.TrimLeft(exp, "0")
		if len(exp) > 15 {
			return decimal{}, strings.Trim(mant, "0.") == "" // a zero is zero whatever its exponent
		}
		for _, c := range exp {
			e = e*10 + int64(c-'0')
		}
		e *= sign
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := intPart + frac
	point := int64(len(intPart))
	trimmed := strings.TrimLeft(digits, "0")
	point -= int64(len(digits) - len(trimmed))
	digits = strings.TrimRight(trimmed, "0")
	if digits == "" {
		return decimal{}, true
	}
	d.digits = digits
	d.exp = point + e
	return d, true
}

// inexact is the error of a number CanonicalExact refuses.
func inexactNumber(tok, canonical string) error {
	return fmt.Errorf("number %s is not exactly %s, the double its canonical form keeps (rounded by a re-formatter, or edited)", tok, canonical)
}

package ledger_test

import (
	"math/big"
	"strconv"
	"strings"
	"testing"

	"github.com/warden-sh/warden/ledger"
	"pgregory.net/rapid"
)

// TestCanonicalExact: any way of writing the same values gives the
// canonical form; what would let two readers see different values is
// refused.
func TestCanonicalExact(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{in: `{"b":1,"a":[true,false,null]}`, want: `{"a":[true,false,null],"b":1}`},
		{in: "{\n  \"a\": {\n    \"c\": \"x\",\n    \"b\": []\n  }\n}\n", want: `{"a":{"b":[],"c":"x"}}`},
		{in: `"\u003c\u0041\u00e9\ud83d\ude00\/"`, want: "\"<Aé\U0001F600/\""},
		{in: `{"\ufb33":1,"\ud800\udc00":2}`, want: "{\"\U00010000\":2,\"\ufb33\":1}"}, // UTF-16 order
		{in: `[1.0, 1e0, 10E-1, 0.10e1, -0, -0.0e5, 0e999999999999999999]`, want: `[1,1,1,1,0,0,0]`},
		{in: `[1E21, 100000000000000000000, 0.000001, 1e-7, 1.5e300]`, want: `[1e+21,100000000000000000000,0.000001,1e-7,1.5e+300]`},
		{in: `[9007199254740993]`, err: "is not exactly"}, // 2^53+1: no double holds it
		{in: `[1.0000000000000001]`, err: "is not exactly 1,"},
		{in: `[0.10000000000000001]`, err: "is not exactly 0.1,"},
		{in: `[12345678901234567891]`, err: "is not exactly"},
		{in: `[1e-400]`, err: "is not exactly 0,"},
		{in: `[1e99999999999999999999]`, err: "not an IEEE 754 double"},
		{in: `{"a":1,"a":1}`, err: "duplicate key"},
		{in: `{"a":1,"\u0061":1}`, err: "duplicate key"},
		{in: `{"a":1} {}`, err: "data after"},
		{in: `"\ud800"`, err: "surrogate"},
	} {
		got, err := ledger.CanonicalExact([]byte(c.in))
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("CanonicalExact(%s) = %s, %v; want an error with %q", c.in, got, err, c.err)
		case c.err == "" && (err != nil || string(got) != c.want):
			t.Errorf("CanonicalExact(%s) = %s, %v; want %s", c.in, got, err, c.want)
		}
	}
}

// TestCanonicalExactAgreesWithCanonical: where CanonicalExact answers, it
// answers what Canonical does, and canonical text is its own exact form.
func TestCanonicalExactAgreesWithCanonical(t *testing.T) {
	for _, in := range canonicalCheckCases {
		exact, err := ledger.CanonicalExact([]byte(in))
		if err != nil {
			continue
		}
		canon, err := ledger.Transform([]byte(in))
		if err != nil || string(canon) != string(exact) {
			t.Errorf("%s: CanonicalExact %s, Canonical %s %v", in, exact, canon, err)
		}
		again, err := ledger.CanonicalExact(exact)
		if err != nil || string(again) != string(exact) {
			t.Errorf("%s: canonical %s is not its own exact form: %s %v", in, exact, again, err)
		}
	}
}

// TestCanonicalExactNumbers: a number is accepted exactly when its decimal
// value is the decimal value of the double's canonical text (big.Rat
// decides, on exponents small enough for it).
func TestCanonicalExactNumbers(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		neg := rapid.Bool().Draw(t, "neg")
		intPart := rapid.StringMatching(`0|[1-9][0-9]{0,25}`).Draw(t, "int")
		frac := rapid.StringMatching(`(\.[0-9]{1,25})?`).Draw(t, "frac")
		exp := ""
		if rapid.Bool().Draw(t, "hasExp") {
			exp = rapid.SampledFrom([]string{"e", "E"}).Draw(t, "e") + rapid.SampledFrom([]string{"", "+", "-"}).Draw(t, "sign") +
				strconv.Itoa(rapid.IntRange(0, 330).Draw(t, "exp"))
		}
		tok := intPart + frac + exp
		if neg {
			tok = "-" + tok
		}
		f, err := strconv.ParseFloat(tok, 64)
		if err != nil {
			return // out of range: refused either way
		}
		got, err := ledger.CanonicalExact([]byte(tok))
		canon, _ := ledger.Transform([]byte(tok))
		tr, _ := new(big.Rat).SetString(tok)
		cr, _ := new(big.Rat).SetString(string(canon))
		same := tr.Cmp(cr) == 0
		switch {
		case same && (err != nil || string(got) != string(canon)):
			t.Fatalf("%s (%v) is exactly %s, but CanonicalExact says %s %v", tok, f, canon, got, err)
		case !same && err == nil:
			t.Fatalf("%s is not exactly %s, but CanonicalExact accepted it as %s", tok, canon, got)
		}
	})
}

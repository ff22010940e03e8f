package ledger_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/gowebpki/jcs"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
	"pgregory.net/rapid"
)

// CheckReceipt tests a body for canonical form with its own single-pass
// checker rather than by re-canonicalising. These tests hold that checker to
// the definition: a body passes iff jcs.Transform succeeds on it and returns
// it unchanged.

// jcsCanonical is the definition.
func jcsCanonical(b []byte) bool {
	out, err := jcs.Transform(b)
	return err == nil && bytes.Equal(out, b)
}

// bodyChecks reports whether CheckReceipt accepts an otherwise perfect
// receipt with this body, i.e. whether its canonical-form check passes.
func bodyChecks(body []byte) bool {
	r := &warden.Receipt{
		Seq: 1, SchemaVersion: warden.SchemaVersion, Type: "t", Timestamp: "2026-01-01T00:00:00Z",
		Scroll: warden.ScrollSystem, Tags: []string{}, Body: body, RootHash: ledger.BodyHash(body),
	}
	entry, err := ledger.EntryBytes(r)
	if err != nil {
		panic(err)
	}
	r.LeafHash = hex.EncodeToString(ledger.LeafHash(entry))
	_, err = ledger.CheckReceipt(r)
	return err == nil
}

var canonicalCheckCases = []string{
	// canonical
	`{}`, `[]`, `0`, `-1`, `1`, `true`, `false`, `null`, `""`, `"x"`,
	`{"a":1,"b":[true,false,null],"c":{"":0}}`,
	`[1e+21,100000000000000000000,0.1,1e-7,0.000001,5e-324,1.7976931348623157e+308,9007199254740992,-1.5,123456789012345,1234567890123456,-0.0000033333333333333333]`,
	"{\"\\r\":1,\"1\":2,\"\u0080\":3,\"\u00f6\":4,\"\u20ac\":5,\"\U0001f600\":6,\"\ufb33\":7}",
	"{\"\U00010000\":1,\"\ue000\":3,\"\uffff\":2}",
	"[\"\\u0000\\u0001\\u001f\x7f\\b\\t\\n\\f\\r\\\"\\\\\",\"\u2028\u2029\",\"/\",\"\ufffd\"]",
	`{"a":{"b":{"c":[[[]]]}}}`, `{"a":1,"aa":2,"ab":3,"b":4}`, `{"\u0000":1,"\u0001":2}`,
	// not canonical
	``, ` `, ` {}`, `{} `, `[1, 2]`, `{"a" :1}`, `{"b":1,"a":2}`, `{"a":1,"a":1}`,
	"{\"\uffff\":1,\"\U00010000\":2}", `{"aa":1,"a":2}`,
	`[1.0]`, `[1E+30]`, `[1e30]`, `[-0]`, `[0.10]`, `[01]`, `[+1]`, `[.5]`, `[1.]`, `[1e]`, `[1e+09]`,
	`[12345678901234567]`, `[9007199254740993]`, `[1e400]`, `[0x10]`, `[-]`, `[--1]`, `[1-1]`, `[1e1e1]`, `[1.5.5]`,
	`["\u0041"]`, `["\/"]`, `["\u00e9"]`, `["\u000A"]`, `["\u000a"]`, `["\u0008"]`, `["\u001F"]`, `["\u0020"]`, `["\x41"]`,
	`["\ud83d\ude00"]`, "[\"\x01\"]", "[\"\xff\"]", "[\"\xed\xa0\x80\"]", "[\"\xc0\xaf\"]", `["abc`, `["\`, `["\u00`,
	`[1,]`, `[,1]`, `{"a":1,}`, `{,}`, `{"a"}`, `{"a":}`, `{1:2}`, `[tru]`, `[truee]`, `[nul]`, `[True]`, `[1]]`, `[[1]`,
	`{"a":1}}`, `"x"y`, `1 2`, `[1 ]`, "[1\n]",
}

func TestCanonicalCheckMatchesJCS(t *testing.T) {
	for _, in := range canonicalCheckCases {
		if got, want := bodyChecks([]byte(in)), jcsCanonical([]byte(in)); got != want {
			t.Errorf("body %q: CheckReceipt accepts = %v, jcs says canonical = %v", in, got, want)
		}
	}
	// Sanity: the table has both kinds.
	if !bodyChecks([]byte(`{"a":[1,"b"]}`)) || bodyChecks([]byte(`{"a": 1}`)) {
		t.Fatal("checker does not discriminate")
	}
}

func TestCanonicalCheckDepth(t *testing.T) {
	for _, depth := range []int{9999, 10000, 10001} {
		arr := strings.Repeat("[", depth) + strings.Repeat("]", depth)
		obj := strings.Repeat(`{"a":`, depth-1) + "{}" + strings.Repeat("}", depth-1)
		for _, in := range []string{arr, obj} {
			if got, want := bodyChecks([]byte(in)), jcsCanonical([]byte(in)); got != want {
				t.Errorf("depth %d %.3s...: CheckReceipt accepts = %v, jcs = %v", depth, in, got, want)
			}
		}
	}
}

// TestCanonicalCheckProperty: Canonical's output of any JSON value passes,
// and single-byte edits of it pass exactly when jcs agrees.
func TestCanonicalCheckProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b, err := ledger.Canonical(jsonValue(3).Draw(t, "value"))
		if err != nil {
			t.Fatal(err)
		}
		if !bodyChecks(b) {
			t.Fatalf("canonical body %q fails the check", b)
		}
		m := bytes.Clone(b)
		switch op := rapid.IntRange(0, 2).Draw(t, "op"); {
		case op == 0 && len(m) > 0:
			i := rapid.IntRange(0, len(m)-1).Draw(t, "i")
			m[i] = rapid.SampledFrom([]byte(` ,:[]{}"\-+.eE0159aftnu`+"\x00\x7f\xc3\xa9\xff")).Draw(t, "byte")
		case op == 1:
			i := rapid.IntRange(0, len(m)).Draw(t, "i")
			m = append(m[:i], append([]byte{rapid.Byte().Draw(t, "byte")}, m[i:]...)...)
		case len(m) > 0:
			i := rapid.IntRange(0, len(m)-1).Draw(t, "i")
			m = append(m[:i], m[i+1:]...)
		}
		if got, want := bodyChecks(m), jcsCanonical(m); got != want {
			t.Fatalf("body %q: CheckReceipt accepts = %v, jcs = %v", m, got, want)
		}
	})
}

// FuzzCanonicalCheck: the checker agrees with jcs on arbitrary bytes.
func FuzzCanonicalCheck(f *testing.F) {
	for _, in := range canonicalCheckCases {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := bodyChecks(data), jcsCanonical(data); got != want {
			t.Fatalf("body %q: CheckReceipt accepts = %v, jcs = %v", data, got, want)
		}
		if out, err := ledger.Canonical(json.RawMessage(data)); err == nil && !bodyChecks(out) {
			t.Fatalf("Canonical output %q fails the check", out)
		}
	})
}

package ledger_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/warden-sh/warden/ledger"
)

// The expected outputs below were computed once with an independent
// canonicaliser (JavaScript's JSON.stringify, which RFC 8785 adopts for
// numbers and strings, with keys sorted by JavaScript's default UTF-16 code
// unit order) and hard-coded.
func TestCanonicalKnownAnswers(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{
			name: "RFC 8785 section 3.2.2 example",
			in:   "{\n  \"numbers\": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n  \"string\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n  \"literals\": [null, true, false]\n}",
			want: `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`,
		},
		{
			name: "RFC 8785 section 3.2.3 sorting example (UTF-16 code unit order)",
			in:   `{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}`,
			want: "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"\u00f6\":\"Latin Small Letter O With Diaeresis\",\"\u20ac\":\"Euro Sign\",\"\U0001f600\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}",
		},
		{
			// U+10000 is a surrogate pair in UTF-16 (D800 DC00), so it sorts
			// before U+E000 and U+FFFF although its code point is larger.
			name: "supplementary plane key sorts by UTF-16, not code point",
			in:   `{"\ud800\udc00":1,"\uffff":2,"\ue000":3}`,
			want: "{\"\U00010000\":1,\"\ue000\":3,\"\uffff\":2}",
		},
		{
			name: "nested objects sorted at every level, arrays keep order, empty key first",
			in:   `{"b":[],"a":{},"":0,"aa":{"z":1,"y":[{"d":1,"c":2}]}}`,
			want: `{"":0,"a":{},"aa":{"y":[{"c":2,"d":1}],"z":1},"b":[]}`,
		},
		{
			name: "numbers",
			in:   `[1e21,1e20,0.1,-0,0,1E+30,1e-7,1e-6,0.000001,123456789012345680000,5e-324,1.7976931348623157e308,9007199254740993,-1.5,100,1.0,1.5e300,2e-3,-0.0000033333333333333333,1424953923781206.2]`,
			want: `[1e+21,100000000000000000000,0.1,0,0,1e+30,1e-7,0.000001,0.000001,123456789012345680000,5e-324,1.7976931348623157e+308,9007199254740992,-1.5,100,1,1.5e+300,0.002,-0.0000033333333333333333,1424953923781206.2]`,
		},
		{
			name: "control characters escaped, short forms where JSON has them, DEL literal",
			in:   `["\u0000\u0001\u001f\u007f\b\t\n\f\r"]`,
			want: "[\"\\u0000\\u0001\\u001f\x7f\\b\\t\\n\\f\\r\"]",
		},
		{
			name: "U+2028 and U+2029 stay literal",
			in:   `["\u2028\u2029"]`,
			want: "[\"\u2028\u2029\"]",
		},
		{
			name: "non-ASCII written as UTF-8, escapes resolved",
			in:   `["\u00e9\u20ac\ud83d\ude00","é€😀","\/","<>&","a\"b\\c"]`,
			want: `["é€😀","é€😀","/","<>&","a\"b\\c"]`,
		},
		{name: "whitespace around a top-level string", in: "  \"x\"  \n", want: `"x"`},
		{name: "top-level literal", in: "true", want: "true"},
		{name: "top-level number", in: " 4.50 ", want: "4.5"},
		{name: "insignificant whitespace", in: "[\n1 , 2\t]", want: "[1,2]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ledger.Canonical(json.RawMessage(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("Canonical(%q) (-want +got):\n%s", tt.in, diff)
			}
			again, err := ledger.Canonical(json.RawMessage(got))
			if err != nil || string(again) != string(got) {
				t.Errorf("canonical form is not a fixed point: %q -> %q, %v", got, again, err)
			}
		})
	}
}

// TestCanonicalNumbers checks the number serialisation table of RFC 8785
// appendix B (IEEE-754 bits -> ECMAScript form), cross-checked with
// JSON.stringify. Each value goes through both the JSON text path and the Go
// value path of Canonical.
func TestCanonicalNumbers(t *testing.T) {
	tests := []struct{ bits, want string }{
		{"0000000000000000", "0"},
		{"8000000000000000", "0"}, // minus zero
		{"0000000000000001", "5e-324"},
		{"8000000000000001", "-5e-324"},
		{"7fefffffffffffff", "1.7976931348623157e+308"},
		{"ffefffffffffffff", "-1.7976931348623157e+308"},
		{"4340000000000000", "9007199254740992"},
		{"c340000000000000", "-9007199254740992"},
		{"4430000000000000", "295147905179352830000"},
		{"44b52d02c7e14af5", "9.999999999999997e+22"},
		{"44b52d02c7e14af6", "1e+23"},
		{"44b52d02c7e14af7", "1.0000000000000001e+23"},
		{"444b1ae4d6e2ef4e", "999999999999999700000"},
		{"444b1ae4d6e2ef4f", "999999999999999900000"},
		{"444b1ae4d6e2ef50", "1e+21"},
		{"3eb0c6f7a0b5ed8c", "9.999999999999997e-7"},
		{"3eb0c6f7a0b5ed8d", "0.000001"},
		{"41b3de4355555553", "333333333.3333332"},
		{"41b3de4355555554", "333333333.33333325"},
		{"41b3de4355555555", "333333333.3333333"},
		{"41b3de4355555556", "333333333.3333334"},
		{"41b3de4355555557", "333333333.33333343"},
		{"becbf647612f3696", "-0.0000033333333333333333"},
		{"43143ff3c1cb0959", "1424953923781206.2"},
	}
	for _, tt := range tests {
		t.Run(tt.bits, func(t *testing.T) {
			u, err := strconv.ParseUint(tt.bits, 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			f := math.Float64frombits(u)
			text := strconv.FormatFloat(f, 'e', -1, 64) // a valid JSON number that round-trips
			got, err := ledger.Canonical(json.RawMessage(text))
			if err != nil {
				t.Fatalf("Canonical(%s): %v", text, err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("Canonical(%s) (-want +got):\n%s", text, diff)
			}
			got, err = ledger.Canonical(f)
			if err != nil {
				t.Fatalf("Canonical(float64 %v): %v", f, err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("Canonical(float64 %v) (-want +got):\n%s", f, diff)
			}
		})
	}
}

// TestCanonicalReferenceData runs the RFC 8785 reference test files.
func TestCanonicalReferenceData(t *testing.T) {
	inputs, err := filepath.Glob("testdata/jcs/input/*.json")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no reference inputs: %v", err)
	}
	for _, in := range inputs {
		t.Run(filepath.Base(in), func(t *testing.T) {
			raw, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join("testdata/jcs/output", filepath.Base(in)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ledger.Canonical(json.RawMessage(raw))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestCanonicalGoValues checks the json.Marshal path: Go's HTML escaping and
// field order do not survive canonicalisation.
func TestCanonicalGoValues(t *testing.T) {
	type rec struct {
		Zeta  string  `json:"zeta"`
		Alpha float64 `json:"alpha"`
		Html  string  `json:"html"`
		Skip  string  `json:"-"`
	}
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"struct fields sorted, HTML not escaped", rec{Zeta: "z", Alpha: 1e21, Html: "<a&b>", Skip: "x"}, `{"alpha":1e+21,"html":"<a&b>","zeta":"z"}`},
		{"map", map[string]any{"b": 1, "a": []int{3, 2}}, `{"a":[3,2],"b":1}`},
		{"nil", nil, "null"},
		{"string with control and unicode", "\t\u2028é", "\"\\t\u2028é\""},
		{"invalid UTF-8 replaced by json.Marshal", "a\xffb", "\"a\ufffdb\""},
		{"uint64 beyond 2^53 becomes a double", uint64(1<<53 + 1), "9007199254740992"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ledger.Canonical(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestCanonicalRejects checks that what RFC 8785 (I-JSON) cannot represent is
// an error, never a silently different document.
func TestCanonicalRejects(t *testing.T) {
	raw := []struct{ name, in string }{
		{"empty", ""},
		{"whitespace only", "  "},
		{"duplicate key", `{"a":1,"a":2}`},
		{"duplicate key after unescaping", `{"a":1,"\u0061":2}`},
		{"lone high surrogate", `["\ud800"]`},
		{"lone low surrogate", `["\udc00"]`},
		{"reversed surrogates", `["\udc00\ud800"]`},
		{"high surrogate then non-surrogate", `["\ud800\u0041"]`},
		{"invalid UTF-8 in string", "[\"\xff\"]"},
		{"overlong UTF-8", "[\"\xc0\xaf\"]"},
		{"non-ASCII outside a string", "[1]\u00a0"},
		{"byte order mark", "\ufeff[1]"},
		{"number overflows a double", "1e400"},
		{"leading zero", "01"},
		{"leading plus", "+1"},
		{"bare fraction", ".5"},
		{"trailing dot", "1."},
		{"hex number", "0x10"},
		{"NaN", "NaN"},
		{"Infinity", "Infinity"},
		{"trailing comma in array", "[1,]"},
		{"trailing comma in object", `{"a":1,}`},
		{"leading comma", "[,1]"},
		{"missing colon", `{"a" 1}`},
		{"unquoted key", `{a:1}`},
		{"single quotes", `['a']`},
		{"unterminated string", `["a]`},
		{"raw newline in string", "[\"a\nb\"]"},
		{"bad escape", `["\x41"]`},
		{"short unicode escape", `["\u12"]`},
		{"unterminated array", "[1"},
		{"unterminated object", `{"a":1`},
		{"trailing garbage", "{} x"},
		{"two documents", "1 2"},
		{"space inside a literal", "tr ue"},
		{"space inside a number", "[1 2]"},
		{"comment", "[1]//"},
	}
	for _, tt := range raw {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := ledger.Canonical(json.RawMessage(tt.in)); err == nil {
				t.Errorf("Canonical(%q) = %q, want an error", tt.in, got)
			}
		})
	}
	values := []struct {
		name string
		in   any
	}{
		{"NaN", math.NaN()},
		{"+Inf", math.Inf(1)},
		{"channel", make(chan int)},
		{"nil RawMessage", json.RawMessage(nil)},
	}
	for _, tt := range values {
		t.Run("value "+tt.name, func(t *testing.T) {
			if got, err := ledger.Canonical(tt.in); err == nil {
				t.Errorf("Canonical(%v) = %q, want an error", tt.in, got)
			}
		})
	}
	t.Run("nesting deeper than 10000", func(t *testing.T) {
		deep := strings.Repeat("[", 10001) + strings.Repeat("]", 10001)
		if _, err := ledger.Canonical(json.RawMessage(deep)); err == nil {
			t.Error("want an error for nesting 10001 deep")
		}
	})
}

// TestBodyHash checks BodyHash against the official BLAKE3 test vectors (input
// i%251 for i < len) and against a fixed canonical body whose hash was
// computed with an independent BLAKE3 implementation (a Python transcription
// of the reference algorithm, itself checked against the official vectors).
func TestBodyHash(t *testing.T) {
	official := []struct {
		n    int
		want string
	}{
		{0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"},
		{1, "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"},
		{1023, "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11"},
		{1024, "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7"},
		{1025, "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444"},
		{2048, "e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a"},
		{4097, "9b4052b38f1c5fc8b1f9ff7ac7b27cd242487b3d890d15c96a1c25b8aa0fb995"},
	}
	for _, tt := range official {
		t.Run(strconv.Itoa(tt.n), func(t *testing.T) {
			in := make([]byte, tt.n)
			for i := range in {
				in[i] = byte(i % 251)
			}
			if diff := cmp.Diff("blake3:"+tt.want, ledger.BodyHash(in)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	t.Run("fixed body", func(t *testing.T) {
		body, err := ledger.Canonical(map[string]any{"note": "café ☕\n", "amount": 42, "actor": "alice"})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(`{"actor":"alice","amount":42,"note":"café ☕\n"}`, string(body)); diff != "" {
			t.Fatalf("canonical body (-want +got):\n%s", diff)
		}
		const want = "blake3:99bafc3e2e13b53215b9982f1049c52e5fda1bbff2b04708a3534fceb7db5693"
		if diff := cmp.Diff(want, ledger.BodyHash(body)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}

package jsonx_test

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/jsonx"
)

type args struct {
	Name     string            `json:"name"`
	Roles    []string          `json:"roles,omitempty"`
	Evidence map[string]string `json:"evidence,omitempty"`
	Any      any               `json:"any,omitempty"`
	Embedded
	Hidden string `json:"-"`
}

type Embedded struct {
	Extra int `json:"extra"`
}

func TestDecode(t *testing.T) {
	cases := map[string]bool{
		`{"name":"a"}`:                        true,
		` {"name":"a","roles":["x"]} ` + "\n": true,
		`{"name":"a","extra":1}`:              true, // embedded struct fields are known
		`{}`:                                  true,
		``:                                    false,
		`null`:                                false,
		`[]`:                                  false,
		`"x"`:                                 false,
		`{"name":"a"} {}`:                     false,
		`{"name":"a"}x`:                       false,
		`{"name":"a","name":"b"}`:             false,
		`{"NAME":"a"}`:                        false,
		`{"Hidden":"a"}`:                      false,
		`{"-":"a"}`:                           false,
		`{"name":1}`:                          false,
		`{"name":"a",}`:                       false,
		`{"unknown":{"deep":[1,2]}}`:          false,
	}
	for in, ok := range cases {
		var v args
		err := jsonx.Decode([]byte(in), &v)
		if ok && err != nil {
			t.Errorf("%q refused: %v", in, err)
		}
		if !ok && warden.ErrorCode(err) != warden.EINVALID {
			t.Errorf("%q: got %v, want EINVALID", in, err)
		}
	}
}

// nest wraps inner in n arrays under the key "any".
func nest(n int) string {
	return `{"any":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`
}

// manyKeys is an evidence object of n distinct keys, then the extra ones.
func manyKeys(n int, extra ...string) string {
	var b strings.Builder
	b.WriteString(`{"evidence":{`)
	for i := range n {
		b.WriteString(`"k` + strconv.Itoa(i) + `":"v",`)
	}
	for _, k := range extra {
		b.WriteString(`"` + k + `":"v",`)
	}
	return strings.TrimSuffix(b.String(), ",") + `}}`
}

// TestDecodeRules: each rule refuses what breaks it with a sentence naming
// the rule and the place, and accepts its near misses. want "" means the
// body is accepted.
func TestDecodeRules(t *testing.T) {
	cases := []struct {
		name, body, want string
	}{
		// Invalid UTF-8 anywhere is refused, not replaced by U+FFFD.
		{"utf8 bad bytes in value", "{\"name\":\"\xff\xfe\"}", "The request is not valid UTF-8 (byte offset 9)."},
		{"utf8 bad byte mid string", "{\"name\":\"ab\xffc\"}", "not valid UTF-8 (byte offset 11)"},
		{"utf8 in nested value", "{\"evidence\":{\"a\":\"\xfe\"}}", "not valid UTF-8 (byte offset 18)"},
		{"utf8 in key", "{\"evidence\":{\"\xff\":\"1\"}}", "not valid UTF-8 (byte offset 14)"},
		{"utf8 overlong", "{\"name\":\"\xc0\xaf\"}", "not valid UTF-8"},
		{"utf8 encoded surrogate", "{\"name\":\"\xed\xa0\x80\"}", "not valid UTF-8"},
		{"utf8 truncated sequence", "{\"name\":\"\xe2\x82\"}", "not valid UTF-8"},
		{"utf8 above U+10FFFF", "{\"name\":\"\xf4\x90\x80\x80\"}", "not valid UTF-8"},
		{"utf8 outside a string", "{\xff}", "not valid UTF-8 (byte offset 1)"},
		{"utf8 valid multibyte", "{\"name\":\"é€😀\"}", ""},
		{"utf8 literal U+FFFD", "{\"name\":\"\xef\xbf\xbd\"}", ""},

		// Escaped surrogates must pair: high then low.
		{"surrogate lone high", `{"name":"\ud800"}`, `String escape \ud800 at byte offset 9 is an unpaired UTF-16 surrogate`},
		{"surrogate lone low", `{"name":"x\udc00"}`, `String escape \udc00 at byte offset 10 is an unpaired UTF-16 surrogate`},
		{"surrogate high then letter", `{"name":"\uD800A"}`, "unpaired UTF-16 surrogate"},
		{"surrogate high then BMP escape", `{"name":"\ud800\u0041"}`, "unpaired UTF-16 surrogate"},
		{"surrogate high then high", `{"name":"\ud800\ud800"}`, "unpaired UTF-16 surrogate"},
		{"surrogate low then high", `{"name":"\udc00\ud800"}`, "unpaired UTF-16 surrogate"},
		{"surrogate at end of body", `{"name":"\ud800`, "unpaired UTF-16 surrogate"},
		{"surrogate in nested key", `{"evidence":{"\udfff":"1"}}`, "unpaired UTF-16 surrogate"},
		{"surrogate pair", `{"name":"\ud83d\ude00"}`, ""},
		{"surrogate pair upper case", `{"name":"\uD83D\uDE00"}`, ""},
		{"escaped U+FFFD", `{"name":"\ufffd"}`, ""},
		{"escaped backslash then u", `{"name":"\\ud800"}`, ""},

		// A key may appear once per object, at every depth.
		{"dup top level", `{"name":"a","name":"b"}`, `The request has duplicate key "name".`},
		{"dup top level escaped", `{"name":"a","n\u0061me":"b"}`, `duplicate key "name".`},
		{"dup nested", `{"evidence":{"a":"1","a":"2"}}`, `The request has duplicate key "a" in evidence.`},
		{"dup nested escaped", `{"evidence":{"a":"1","\u0061":"2"}}`, `duplicate key "a" in evidence.`},
		{"dup in array element", `{"any":{"x":[{"k":1},{"k":1,"k":2}]}}`, `duplicate key "k" in any.x[1].`},
		{"dup under odd key", `{"any":{"a b":{"k":1,"k":2}}}`, `duplicate key "k" in any["a b"].`},
		{"dup past the map threshold", manyKeys(40, "k39"), `duplicate key "k39" in evidence.`},
		{"dup at the map threshold", manyKeys(16, "k0"), `duplicate key "k0" in evidence.`},
		{"dup under the map threshold", manyKeys(15, "k14"), `duplicate key "k14" in evidence.`},
		{"many distinct keys", manyKeys(300), ""},
		{"keys differing in case or space", `{"evidence":{"a":"1","A":"2","a ":"3"}}`, ""},
		{"same key in sibling objects", `{"any":[{"k":1},{"k":2}]}`, ""},
		{"same key at each depth", `{"any":{"any":{"any":1}}}`, ""},

		// Depth is bounded as encoding/json bounds it, by name.
		{"depth at the limit", nest(jsonx.MaxDepth - 1), ""},
		{"depth over the limit", nest(jsonx.MaxDepth), "nests objects and arrays deeper than 10000 levels"},

		// Unknown fields, trailing data, shape.
		{"unknown top-level field", `{"nme":"a"}`, `The request has unknown field "nme".`},
		{"case-folded field", `{"Name":"a"}`, `unknown field "Name"`},
		{"trailing data", `{"name":"a"} {}`, "The request has data after the JSON object (byte offset 13)."},
		{"empty", " \n", "The request is empty; send a JSON object."},
		{"not an object", `["name"]`, "The request must be a JSON object."},
		{"trailing comma", `{"name":"a",}`, "The request is not valid JSON: invalid character '}' looking for an object key at byte offset 12."},
		{"truncated", `{"name":"a"`, "The request is not valid JSON: unexpected end of input"},
		{"control character", "{\"name\":\"a\tb\"}", "control character"},
		{"bad escape", `{"name":"\x41"}`, "not valid JSON"},
		{"leading zero", `{"extra":01}`, "not valid JSON"},
		{"bare decimal point", `{"extra":1.}`, "not valid JSON"},
		{"wrong type", `{"name":1}`, `Field "name" must be a string, not a number.`},
		{"string for a whole number", `{"extra":"5"}`, `Field "extra" must be a whole number, not a string.`},
		{"fraction for a whole number", `{"extra":1.5}`, `Field "extra" must be a whole number, not 1.5.`},
		{"boolean for a whole number", `{"extra":true}`, `Field "extra" must be a whole number, not a boolean.`},
		{"object for an array", `{"roles":{}}`, `Field "roles" must be an array, not an object.`},
		{"number in a map of strings", `{"evidence":{"k":1}}`, `Every value in field "evidence" must be a string, not a number.`},
		{"number in an array of strings", `{"roles":["a",1]}`, `Every value in field "roles" must be a string, not a number.`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var v args
			err := jsonx.Decode([]byte(tc.body), &v)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				mustMatchStdlib(t, []byte(tc.body), &v)
				return
			}
			if warden.ErrorCode(err) != warden.EINVALID {
				t.Fatalf("got %v, want EINVALID", err)
			}
			if msg := warden.ErrorMessage(err); !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q does not say %q", msg, tc.want)
			}
		})
	}
}

// mustMatchStdlib fails unless encoding/json decodes data to got.
func mustMatchStdlib[T any](tb testing.TB, data []byte, got *T) {
	tb.Helper()
	var want T
	if err := json.Unmarshal(data, &want); err != nil {
		tb.Fatalf("jsonx accepted %q, encoding/json refuses it: %v", data, err)
	}
	if reflect.DeepEqual(want, *got) { // cmp.Diff is quadratic on deep nesting
		return
	}
	if diff := cmp.Diff(want, *got); diff != "" {
		tb.Fatalf("jsonx and encoding/json disagree on %q (-encoding/json +jsonx):\n%s", data, diff)
	}
}

// FuzzDecode: jsonx never panics, refuses only with EINVALID, calls
// malformed only what encoding/json does, and whatever it accepts (into a
// struct or a map) encoding/json decodes identically, is valid UTF-8, holds
// no unpaired surrogate escape and repeats no key.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"name":"a"}`, `{"name":"a","name":"b"}`, `{"extra":1e999}`, `{`,
		`{"evidence":{"a":"1","a":"2"}}`, `{"evidence":{"a":"1","\u0061":"2"}}`,
		`{"any":[{"k":1},{"k":{"k":[true,false,null,-0.5e+3]}}]}`,
		`{"name":"\ud83d\ude00\ufffd"}`, `{"name":"\ud800"}`, `{"name":"\udc00\\u"}`,
		"{\"name\":\"\xff\xfe\"}", "{\"name\":\"\xef\xbf\xbd\xed\xa0\x80\"}", `{"Name":"a"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v args
		err := jsonx.Decode(data, &v)
		if err != nil && warden.ErrorCode(err) != warden.EINVALID {
			t.Fatalf("%q: non-EINVALID error %v", data, err)
		}
		if err == nil {
			mustMatchStdlib(t, data, &v)
			mustBeStrict(t, data)
		}
		// The scanner's grammar is JSON's: what it calls malformed,
		// encoding/json does too.
		if msg := warden.ErrorMessage(err); (strings.HasPrefix(msg, "The request is not valid JSON: ") ||
			strings.HasPrefix(msg, "The request has data after")) && json.Valid(data) {
			t.Fatalf("%q: %s, but encoding/json finds it valid", data, msg)
		}
		var m map[string]any
		if err := jsonx.Decode(data, &m); err == nil {
			mustMatchStdlib(t, data, &m)
			mustBeStrict(t, data)
		} else if warden.ErrorCode(err) != warden.EINVALID {
			t.Fatalf("%q: non-EINVALID error %v", data, err)
		}
	})
}

// mustBeStrict checks an accepted body independently of jsonx: valid UTF-8,
// no key repeated in any object (by encoding/json's tokens, so after
// unescaping), and every U+FFFD in a decoded string accounted for by a
// literal U+FFFD or a \ufffd escape in the body, so no unpaired surrogate
// escape was silently replaced.
func mustBeStrict(tb testing.TB, data []byte) {
	tb.Helper()
	if !utf8.Valid(data) {
		tb.Fatalf("accepted invalid UTF-8 %q", data)
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	type frame struct {
		keys     map[string]bool
		wantsKey bool
	}
	var stack []*frame
	replaced := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		isKey := top != nil && top.keys != nil && top.wantsKey
		if top != nil && top.keys != nil {
			top.wantsKey = !top.wantsKey
		}
		switch tok := tok.(type) {
		case json.Delim:
			switch tok {
			case '{':
				stack = append(stack, &frame{keys: map[string]bool{}, wantsKey: true})
			case '[':
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].keys != nil {
					stack[len(stack)-1].wantsKey = true
				}
			}
		case string:
			replaced += strings.Count(tok, "\uFFFD")
			if isKey {
				if top.keys[tok] {
					tb.Fatalf("accepted duplicate key %q in %q", tok, data)
				}
				top.keys[tok] = true
			}
		}
	}
	if literal := strings.Count(string(data), "\uFFFD") + countFFFDEscapes(data); replaced != literal {
		tb.Fatalf("accepted %q: %d U+FFFD decoded, %d in the body (an unpaired surrogate escape?)", data, replaced, literal)
	}
}

// countFFFDEscapes counts \ufffd escapes (any case) that are escapes, not
// an escaped backslash followed by text.
func countFFFDEscapes(data []byte) int {
	n := 0
	for i := 0; i+6 <= len(data); i++ {
		if data[i] != '\\' {
			continue
		}
		if strings.EqualFold(string(data[i:i+6]), `\ufffd`) {
			n++
		}
		i++ // skip the escaped character, so \\ufffd is not counted
	}
	return n
}

type toolArgs struct {
	BudgetID string   `json:"budget_id"`
	Amount   int64    `json:"amount"`
	Note     string   `json:"note,omitempty"`
	When     string   `json:"when,omitzero"`
	Tags     []string `json:"tags"`
	Embedded
	Hidden string `json:"-"`
}

// TestRequired: a member is required unless its tag says omitempty or
// omitzero; embedded structs contribute theirs; "-" fields are not members.
func TestRequired(t *testing.T) {
	want := []string{"budget_id", "amount", "tags", "extra"}
	if d := cmp.Diff(want, jsonx.Required(reflect.TypeOf(&toolArgs{}))); d != "" {
		t.Fatalf("Required (-want +got):\n%s", d)
	}
	if got := jsonx.Required(reflect.TypeOf(0)); got != nil {
		t.Fatalf("Required(int) = %v", got)
	}
}

// TestDecodeRequired: every required member must be present and not null;
// the first missing one (in field order) is named. Decode itself does not
// ask for them.
func TestDecodeRequired(t *testing.T) {
	cases := []struct{ body, want string }{
		{`{"budget_id":"b","amount":0,"tags":[],"extra":0}`, ""},
		{`{"budget_id":"","amount":0,"tags":[],"extra":0,"note":"n"}`, ""},
		{`{"amount":1,"tags":[],"extra":0}`, `budget_id is required.`},
		{`{"budget_id":"b","tags":[],"extra":0}`, `amount is required.`},
		{`{"budget_id":"b","amount":1,"tags":null,"extra":0}`, `tags is required.`},
		{`{"budget_id":"b","amount":1,"tags":[]}`, `extra is required.`},
		{`{"budget_id":"b","amount":1,"tags":[],"extra":0,"x":1}`, `The request has unknown field "x".`},
		{`{"budget_id":"b","amount":1,"tags":[],"extra": null }`, `extra is required.`},
		{`{"budget_id":"b","amount":1,"tags":[],"extra":nul}`, "not valid JSON"},
		{`{"b\u0075dget_id":"b","amount":1,"tags":[],"extra":0}`, ""},
		{`{}`, `budget_id is required.`},
	}
	for _, tc := range cases {
		var v toolArgs
		err := jsonx.DecodeRequired([]byte(tc.body), &v)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s refused: %v", tc.body, err)
			}
			continue
		}
		if warden.ErrorCode(err) != warden.EINVALID || !strings.Contains(warden.ErrorMessage(err), tc.want) {
			t.Errorf("%s: got %v, want EINVALID %q", tc.body, err, tc.want)
		}
		if err := jsonx.Decode([]byte(tc.body), &v); err != nil && strings.HasSuffix(tc.want, " is required.") {
			t.Errorf("Decode %s: %v, want no required check", tc.body, err)
		}
	}
}

// TestDecodeTypeErrors: a value of the wrong type is named by its JSON
// path (never a Go type name), with what it must be in plain words, the
// same sentence for every transport.
func TestDecodeTypeErrors(t *testing.T) {
	type inner struct {
		N    int64   `json:"n"`
		Conf float64 `json:"conf"`
	}
	type outer struct {
		Embedded
		Context *inner `json:"context,omitempty"`
		Count   uint32 `json:"count,omitempty"`
		On      bool   `json:"on,omitempty"`
	}
	cases := []struct {
		body string
		v    any
		want string
	}{
		{`{"context":{"n":"5"}}`, &outer{}, `Field "context.n" must be a whole number, not a string.`},
		{`{"context":{"conf":"high"}}`, &outer{}, `Field "context.conf" must be a number, not a string.`},
		{`{"context":[]}`, &outer{}, `Field "context" must be an object, not an array.`},
		{`{"extra":"5"}`, &outer{}, `Field "extra" must be a whole number, not a string.`},
		{`{"count":-1}`, &outer{}, `Field "count" must be a whole number 0 or more, not -1.`},
		{`{"on":"yes"}`, &outer{}, `Field "on" must be true or false, not a string.`},
		{`{"a":1}`, &map[string]string{}, `Every value in the request must be a string, not a number.`},
	}
	for _, tc := range cases {
		err := jsonx.Decode([]byte(tc.body), tc.v)
		if warden.ErrorCode(err) != warden.EINVALID || warden.ErrorMessage(err) != tc.want {
			t.Errorf("%s: got %v, want EINVALID %q", tc.body, err, tc.want)
		}
	}
}

package http_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/recorder"
	wardenhttp "github.com/warden-sh/warden/http"
)

// FuzzDecodeJSON: the request decoder never panics, only ever fails with
// EINVALID, and whatever it accepts is exactly one JSON object with only
// known fields, valid UTF-8, no key repeated at any depth, no U+FFFD the
// body did not spell out (an unpaired surrogate escape), and decodes
// exactly as encoding/json decodes it. Both a flat body (credentials) and
// one with a nested object (reports' evidence) are checked.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"name":"a","roles":["read"]}`, `{}`, `{"name":"a"} {}`, `{"x":1}`, ``, `[]`, `null`, `{"roles":[1]}`, `{"NAME":"a"}`, `{"name":"a","name":"b"}`, "{\"name\":\"\xff\"}",
		`{"class":"c","source":"s","description":"d","evidence":{"a":"1","b":"2"}}`,
		`{"evidence":{"a":"1","a":"2"}}`, `{"evidence":{"a":"1","\u0061":"2"}}`,
		`{"description":"\ud83d\ude00 \ufffd"}`, `{"description":"\ud800"}`, `{"evidence":{"\udc00":"x"}}`,
		"{\"evidence\":{\"k\":\"\xed\xa0\x80\"}}", "{\"source\":\"\xef\xbf\xbd\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var spec engine.CredentialSpec
		if accepted(t, data, &spec) {
			mustBeKnownOnly(t, data, "name", "roles", "source", "classes")
		}
		var rep recorder.ReportRequest
		if accepted(t, data, &rep) {
			mustBeKnownOnly(t, data, "class", "severity", "source", "description", "evidence")
		}
	})
}

// accepted decodes data into v with DecodeJSON: a refusal must be EINVALID;
// an acceptance must be strict and agree with encoding/json.
func accepted[T any](t *testing.T, data []byte, v *T) bool {
	t.Helper()
	if err := wardenhttp.DecodeJSON(data, v); err != nil {
		if warden.ErrorCode(err) != warden.EINVALID {
			t.Fatalf("error code %q for %q", warden.ErrorCode(err), data)
		}
		return false
	}
	var want T
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatalf("accepted %q, which encoding/json refuses: %v", data, err)
	}
	if !reflect.DeepEqual(want, *v) {
		t.Fatalf("accepted %q as %+v, encoding/json decodes %+v", data, *v, want)
	}
	if !utf8.Valid(data) {
		t.Fatalf("accepted invalid UTF-8 %q", data)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var keys []map[string]bool // per open container; nil for arrays
	expectKey := []bool{}
	replaced := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		n := len(keys) - 1
		isKey := n >= 0 && keys[n] != nil && expectKey[n]
		if n >= 0 && keys[n] != nil {
			expectKey[n] = !expectKey[n]
		}
		switch tok := tok.(type) {
		case json.Delim:
			switch tok {
			case '{':
				keys, expectKey = append(keys, map[string]bool{}), append(expectKey, true)
			case '[':
				keys, expectKey = append(keys, nil), append(expectKey, false)
			default:
				keys, expectKey = keys[:n], expectKey[:n]
				if n > 0 && keys[n-1] != nil {
					expectKey[n-1] = true
				}
			}
		case string:
			replaced += strings.Count(tok, "\uFFFD")
			if isKey {
				if keys[n][tok] {
					t.Fatalf("accepted duplicate key %q in %q", tok, data)
				}
				keys[n][tok] = true
			}
		}
	}
	// Each U+FFFD decoded must be spelt in the body, literally or as an
	// escape; an extra one was an unpaired surrogate escape, replaced.
	spelt := strings.Count(string(data), "\uFFFD") + strings.Count(strings.ToLower(string(data)), `\ufffd`)
	if replaced > spelt {
		t.Fatalf("accepted %q: %d U+FFFD decoded, %d spelt out", data, replaced, spelt)
	}
	return true
}

// mustBeKnownOnly fails unless data is an object with only the given keys.
func mustBeKnownOnly(t *testing.T, data []byte, known ...string) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		t.Fatalf("accepted non-object %q", data)
	}
	for k := range m {
		if !slices.Contains(known, k) {
			t.Fatalf("accepted unknown field %q", k)
		}
	}
}

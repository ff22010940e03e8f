package http_test

import (
	"encoding/json"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	wardenhttp "github.com/warden-sh/warden/http"
)

// FuzzDecodeJSON: the request decoder never panics, only ever fails with
// EINVALID, and whatever it accepts is exactly one JSON object with only
// known fields.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"name":"a","roles":["read"]}`, `{}`, `{"name":"a"} {}`, `{"x":1}`, ``, `[]`, `null`, `{"roles":[1]}`, `{"NAME":"a"}`, `{"name":"a","name":"b"}`, "{\"name\":\"\xff\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var spec engine.CredentialSpec
		err := wardenhttp.DecodeJSON(data, &spec)
		if err != nil {
			if warden.ErrorCode(err) != warden.EINVALID {
				t.Fatalf("error code %q for %q", warden.ErrorCode(err), data)
			}
			return
		}
		// Accepted input must be valid JSON that round-trips through a
		// strict decode of a map with only the known keys.
		var m map[string]json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil || m == nil {
			t.Fatalf("accepted non-object %q", data)
		}
		for k := range m {
			switch k {
			case "name", "roles", "source", "classes":
			default:
				t.Fatalf("accepted unknown field %q", k)
			}
		}
	})
}

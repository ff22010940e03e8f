package ledger_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/gowebpki/jcs"
	"github.com/warden-sh/warden/ledger"
)

// FuzzCanonicalMatchesJCS holds warden's one-pass canonicaliser to the
// output of gowebpki/jcs: same bytes when both accept, both reject together.
func FuzzCanonicalMatchesJCS(f *testing.F) {
	for _, s := range []string{
		`{"b":1,"a":[1,2.5,-0,1e21,1E-7,true,null],"c":{"\u20ac":"x","\ud83d\ude00":"y","\ue000":"z"}}`,
		`"\u2028<>&\u0001\/"`, `123456789012345678`, `-0.0`, `[]`, `{}`, ` {"a" : "b" } `,
		`{"a":1,"a":2}`, `"\ud800"`, `1e400`, `[1,]`, `{"a":01}`, "\"\xff\"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		want, werr := jcs.Transform(in)
		got, gerr := ledger.Canonical(json.RawMessage(in))
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("input %q: jcs err %v, warden err %v", in, werr, gerr)
		}
		if werr == nil && !bytes.Equal(want, got) {
			t.Fatalf("input %q: jcs %q, warden %q", in, want, got)
		}
	})
}

package cli

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRenderText: a governance answer as text keeps the server's member
// order, plain members first and aligned, nulls left out, nested objects
// indented, multi-line strings indented line by line, empty lists said,
// and lists of objects as tables of their plain members (hashes and
// nested objects are left to --json).
func TestRenderText(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"scalars in order, nulls left out", `{"success":true,"budget_id":"ops","balance":95,"note":null,"ratio":0.25}`, `
success:    true
budget_id:  ops
balance:    95
ratio:      0.25
`},
		{"nested after plain", `{"checkpoint":{"size":3,"note":"a\nb\n"},"status":"ok","tags":["x","y"]}`, `
status:  ok
tags:    x, y
checkpoint:
  size:  3
  note:
    a
    b
`},
		{"empty list", `{"count":0,"expired":[]}`, `
count:    0
expired:  (none)
`},
		{"list of objects as a table", `{"escalations":[{"escalation_id":"e1","to_profile":"operator","tem_context_hash":"blake3:aa","context":{"x":1},"tags":["a","b"]},{"escalation_id":"e2","to_profile":"guardian","tags":[],"extra":null}]}`, `
escalations:
  ESCALATION_ID  TO_PROFILE  TAGS  EXTRA
  e1             operator    a, b  -
  e2             guardian    -     -
`},
		{"list of scalars at the top", `["a","b"]`, `
- a
- b
`},
		{"big numbers as sent", `{"amount":9007199254740993}`, `
amount:  9007199254740993
`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := decodeOrdered([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			renderText(&b, v)
			if d := cmp.Diff(strings.TrimPrefix(tc.want, "\n"), b.String()); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

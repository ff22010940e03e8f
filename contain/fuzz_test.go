package contain_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/contain"
	"go.yaml.in/yaml/v3"
)

// FuzzParsePolicy: ParsePolicy never panics; every rejection is EINVALID
// with a message; everything accepted validates, digests, and survives a
// YAML round trip unchanged.
func FuzzParsePolicy(f *testing.F) {
	f.Add(contain.DefaultPolicyYAML())
	f.Add([]byte(""))
	f.Add([]byte("version: 1\n"))
	f.Add([]byte("version: 1\n---\nversion: 1\n"))
	f.Add([]byte("version: 1\nrules: {prompt_injection: &a {auto_contain: true}, tool_call_burst: *a}\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("version: 1\nrules:\n  x:\n    <<: [{auto_contain: true}]\n"))
	f.Add([]byte("targets: {retries: 3, timeout_seconds: 9, agent: 'http://h'}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := contain.ParsePolicy(data)
		if err != nil {
			if p != nil {
				t.Fatal("policy returned with an error")
			}
			if warden.ErrorCode(err) != warden.EINVALID || warden.ErrorMessage(err) == "" {
				t.Fatalf("error %v is not EINVALID with a message", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("accepted policy does not validate: %v", err)
		}
		if _, err := contain.PolicyDigest(p); err != nil {
			t.Fatalf("PolicyDigest: %v", err)
		}
		out, err := yaml.Marshal(p)
		if err != nil {
			t.Fatalf("yaml.Marshal: %v", err)
		}
		q, err := contain.ParsePolicy(out)
		if err != nil {
			t.Fatalf("re-parsing the marshalled policy: %v\n%s", err, out)
		}
		if diff := cmp.Diff(p, q); diff != "" {
			t.Fatalf("round trip changed the policy (-first +second):\n%s", diff)
		}
	})
}

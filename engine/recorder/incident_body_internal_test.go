package recorder

import (
	"bytes"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
)

// TestIncidentBodyIsCanonical: the hand-built body equals the canonical
// form of the incidentBody struct, byte for byte.
func TestIncidentBodyIsCanonical(t *testing.T) {
	inc := &warden.Incident{ID: "INC-1", Class: "prompt_injection", Severity: "high", State: "open", Source: "s\u2028<>&\"",
		Description: "d", Evidence: map[string]string{"b": "1", "a": "\u20ac"}, ContainmentActions: []string{"log_alert"},
		ContainmentResults: []warden.ContainmentResult{{Action: "log_alert", Success: true}}, Number: 1}
	for _, detail := range []any{nil, map[string]any{"z": 1, "a": []int{1}}, &warden.RecoveryRequirement{IncidentID: "INC-1"}} {
		for _, digest := range []string{"", "sha256:ab"} {
			got, err := canonicalIncidentBody(inc, "p\u00e9", digest, detail)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ledger.Canonical(incidentBody{Incident: inc, Principal: "p\u00e9", PolicyDigest: digest, Detail: detail})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("detail %v digest %q:\n got %s\nwant %s", detail, digest, got, want)
			}
		}
	}
}

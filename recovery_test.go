package warden_test

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
)

// TestRecoveryNeeds checks every class at every severity against seed 001:
// latched classes and critical incidents need a recovery requirement;
// re-attestation is needed when the severity is critical or the class is
// attestation_failure or integrity_violation.
func TestRecoveryNeeds(t *testing.T) {
	for _, class := range slices.Concat(seedClasses, []string{"bogus"}) {
		for _, sev := range []warden.Severity{"low", "medium", "high", "critical", ""} {
			t.Run(class+"/"+string(sev), func(t *testing.T) {
				critical := sev == "critical"
				if got, want := warden.NeedsRequirement(class, sev), seedLatched[class] || critical; got != want {
					t.Errorf("NeedsRequirement = %v, want %v", got, want)
				}
				if got, want := warden.NeedsReattest(class, sev), seedReattest[class] || critical; got != want {
					t.Errorf("NeedsReattest = %v, want %v", got, want)
				}
			})
		}
	}
}

func TestRecoveryRequirementSettle(t *testing.T) {
	const (
		ack      = "acknowledgment (warden recovery ack, or POST /api/v1/recovery/ack)"
		reattest = "re-attestation (warden recovery reattest, or POST /api/v1/recovery/reattest)"
	)
	tests := []struct {
		name                     string
		requireAck, requireReatt bool
		acked, reattested        string
		missing                  []string
	}{
		{"nothing required", false, false, "", "", nil},
		{"ack required, none yet", true, false, "", "", []string{ack}},
		{"ack required and given", true, false, "2026-03-14T12:00:00Z", "", nil},
		{"both required, none yet, in ceremony order", true, true, "", "", []string{ack, reattest}},
		{"both required, acked", true, true, "2026-03-14T12:00:00Z", "", []string{reattest}},
		{"both required, re-attested first", true, true, "", "2026-03-14T12:00:00Z", []string{ack}},
		{"both required and given", true, true, "2026-03-14T12:00:00Z", "2026-03-14T12:01:00Z", nil},
		{"only re-attestation required", false, true, "", "", []string{reattest}},
		{"steps not required do not count", false, false, "x", "y", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, before := range []bool{false, true} {
				r := &warden.RecoveryRequirement{RequireAck: tt.requireAck, RequireReattest: tt.requireReatt,
					AckedAt: tt.acked, ReAttestedAt: tt.reattested, RecoveryComplete: before}
				if diff := cmp.Diff(tt.missing, r.Missing()); diff != "" {
					t.Errorf("Missing (-want +got):\n%s", diff)
				}
				r.Settle()
				if want := len(tt.missing) == 0; r.RecoveryComplete != want {
					t.Errorf("after Settle from %v: RecoveryComplete = %v, want %v", before, r.RecoveryComplete, want)
				}
			}
		})
	}
}

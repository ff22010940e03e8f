package warden_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
	"pgregory.net/rapid"
)

// codeOf is an error's warden code and message, for cmp.Diff.
type codeOf struct{ Code, Message string }

func errCode(err error) codeOf {
	return codeOf{warden.ErrorCode(err), warden.ErrorMessage(err)}
}

// Seed 001's tables, written out here rather than read from the package, so
// a change to the package's copy shows up as a diff.
var (
	seedClasses = []string{"attestation_failure", "integrity_violation", "unauthorized_access", "manifest_mismatch",
		"policy_bypass_attempt", "prompt_injection", "tool_call_burst", "model_behavior_anomaly", "forbidden_airlock_request"}
	seedLatched  = map[string]bool{"attestation_failure": true, "integrity_violation": true, "unauthorized_access": true, "manifest_mismatch": true}
	seedReattest = map[string]bool{"attestation_failure": true, "integrity_violation": true}
)

func TestParseSeverity(t *testing.T) {
	const invalid = "Unknown severity %q; valid severities are low, medium, high, critical."
	tests := []struct {
		in   string
		want warden.Severity
		rank int
	}{
		{"low", warden.SeverityLow, 1},
		{"medium", warden.SeverityMedium, 2},
		{"high", warden.SeverityHigh, 3},
		{"critical", warden.SeverityCritical, 4},
		{"", "", 0},
		{"LOW", "", 0},
		{"Critical", "", 0},
		{" high", "", 0},
		{"high\n", "", 0},
		{"severe", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := warden.ParseSeverity(tt.in)
			want := codeOf{}
			if tt.rank == 0 {
				want = codeOf{warden.EINVALID, fmt.Sprintf(invalid, tt.in)}
			}
			if diff := cmp.Diff(want, errCode(err)); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if got != tt.want {
				t.Errorf("severity = %q, want %q", got, tt.want)
			}
			if r := warden.Severity(tt.in).Rank(); r != tt.rank {
				t.Errorf("Rank = %d, want %d", r, tt.rank)
			}
		})
	}
}

func TestParseIncidentState(t *testing.T) {
	tests := []struct {
		in    string
		valid bool
		open  bool
	}{
		{"open", true, true},
		{"contained", true, true},
		{"containment_failed", true, true},
		{"acknowledged", true, false},
		{"resolved", true, false},
		{"", false, false},
		{"Open", false, false},
		{"closed", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := warden.ParseIncidentState(tt.in)
			if tt.valid != (err == nil) || (tt.valid && string(got) != tt.in) || (!tt.valid && got != "") {
				t.Errorf("ParseIncidentState = %q, %v; want valid %v", got, err, tt.valid)
			}
			if !tt.valid && warden.ErrorCode(err) != warden.EINVALID {
				t.Errorf("code = %q, want invalid", warden.ErrorCode(err))
			}
			if o := warden.IncidentState(tt.in).IsOpen(); o != tt.open {
				t.Errorf("IsOpen = %v, want %v", o, tt.open)
			}
		})
	}
}

func TestIncidentClassesMatchRunbook(t *testing.T) {
	if diff := cmp.Diff(seedClasses, warden.IncidentClasses); diff != "" {
		t.Errorf("IncidentClasses (-seed +got):\n%s", diff)
	}
	for _, c := range slices.Concat(seedClasses, []string{"", "Prompt_Injection", "prompt-injection", "unknown"}) {
		valid := slices.Contains(seedClasses, c)
		if err := warden.ValidateClass(c); valid != (err == nil) || (!valid && warden.ErrorCode(err) != warden.EINVALID) {
			t.Errorf("ValidateClass(%q) = %v, want valid %v", c, err, valid)
		}
		if got := warden.IsLatched(c); got != seedLatched[c] {
			t.Errorf("IsLatched(%q) = %v, want %v", c, got, seedLatched[c])
		}
	}
}

func TestValidateAction(t *testing.T) {
	want := []string{"freeze_agent", "disable_airlock", "force_vault_relock", "quarantine_model", "log_alert"}
	if diff := cmp.Diff(want, warden.ContainmentActions); diff != "" {
		t.Errorf("ContainmentActions (-want +got):\n%s", diff)
	}
	for _, a := range want {
		if err := warden.ValidateAction(a); err != nil {
			t.Errorf("ValidateAction(%q) = %v", a, err)
		}
	}
	err := warden.ValidateAction("launch")
	wantErr := codeOf{warden.EINVALID, `Unknown containment action "launch"; valid actions are freeze_agent, disable_airlock, force_vault_relock, quarantine_model, log_alert.`}
	if diff := cmp.Diff(wantErr, errCode(err)); diff != "" {
		t.Errorf("unknown action (-want +got):\n%s", diff)
	}
}

func TestSeverityWindowsMatchRunbook(t *testing.T) {
	want := []warden.SeverityWindow{
		{Class: "prompt_injection", Threshold: 3, Window: 5 * time.Minute, Raise: "critical"},
		{Class: "tool_call_burst", Threshold: 5, Window: time.Minute, Raise: "high"},
		{Class: "policy_bypass_attempt", Threshold: 2, Window: 10 * time.Minute, Raise: "critical"},
		{Class: "forbidden_airlock_request", Threshold: 5, Window: 5 * time.Minute, Raise: "high"},
		{Class: "model_behavior_anomaly", Threshold: 3, Window: 15 * time.Minute, Raise: "critical"},
	}
	if diff := cmp.Diff(want, warden.SeverityWindows); diff != "" {
		t.Errorf("SeverityWindows (-seed +got):\n%s", diff)
	}
	for _, c := range slices.Concat(seedClasses, []string{"", "unknown"}) {
		var wantW *warden.SeverityWindow
		for i := range want {
			if want[i].Class == c {
				wantW = &want[i]
			}
		}
		if diff := cmp.Diff(wantW, warden.WindowFor(c)); diff != "" {
			t.Errorf("WindowFor(%q) (-want +got):\n%s", c, diff)
		}
	}
}

func TestEscalateSeverity(t *testing.T) {
	tests := []struct {
		name   string
		class  string
		sev    warden.Severity
		recent int
		want   warden.Severity
		raised bool
	}{
		{"first prompt injection", "prompt_injection", "high", 0, "high", false},
		{"second prompt injection", "prompt_injection", "high", 1, "high", false},
		{"third prompt injection reaches 3", "prompt_injection", "high", 2, "critical", true},
		{"many prompt injections", "prompt_injection", "high", 100, "critical", true},
		{"low prompt injection jumps to critical", "prompt_injection", "low", 2, "critical", true},
		{"already critical is not raised", "prompt_injection", "critical", 2, "critical", false},
		{"fourth tool call burst", "tool_call_burst", "medium", 3, "medium", false},
		{"fifth tool call burst reaches 5", "tool_call_burst", "medium", 4, "high", true},
		{"high burst equals the raise", "tool_call_burst", "high", 4, "high", false},
		{"critical burst never lowered", "tool_call_burst", "critical", 50, "critical", false},
		{"first policy bypass", "policy_bypass_attempt", "high", 0, "high", false},
		{"second policy bypass reaches 2", "policy_bypass_attempt", "high", 1, "critical", true},
		{"fifth forbidden airlock request", "forbidden_airlock_request", "medium", 4, "high", true},
		{"fourth forbidden airlock request", "forbidden_airlock_request", "medium", 3, "medium", false},
		{"third anomaly", "model_behavior_anomaly", "high", 2, "critical", true},
		{"second anomaly", "model_behavior_anomaly", "high", 1, "high", false},
		{"class without a window", "attestation_failure", "low", 1000, "low", false},
		{"manifest mismatch has no window", "manifest_mismatch", "high", 1000, "high", false},
		{"unknown class", "bogus", "low", 1000, "low", false},
		{"negative count", "policy_bypass_attempt", "high", -1, "high", false},
		{"unknown severity ranks lowest", "tool_call_burst", "", 4, "high", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, w := warden.EscalateSeverity(tt.class, tt.sev, tt.recent)
			if got != tt.want {
				t.Errorf("severity = %q, want %q", got, tt.want)
			}
			var wantW *warden.SeverityWindow
			if tt.raised {
				wantW = warden.WindowFor(tt.class)
			}
			if w != wantW {
				t.Errorf("window = %+v, want %+v", w, wantW)
			}
		})
	}
}

// TestEscalateSeverityProperties: severity only rises, only to the class's
// window severity, exactly when the count including this incident reaches
// the threshold, and once reached it stays reached for larger counts.
func TestEscalateSeverityProperties(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		class := rapid.SampledFrom(slices.Concat(seedClasses, []string{"bogus"})).Draw(rt, "class")
		sev := rapid.SampledFrom(slices.Concat(warden.Severities, []warden.Severity{""})).Draw(rt, "severity")
		recent := rapid.IntRange(-3, 40).Draw(rt, "recent")
		got, w := warden.EscalateSeverity(class, sev, recent)
		if got.Rank() < sev.Rank() {
			rt.Fatalf("severity fell from %q to %q", sev, got)
		}
		win := warden.WindowFor(class)
		should := win != nil && recent+1 >= win.Threshold && win.Raise.Rank() > sev.Rank()
		switch {
		case should && (w != win || got != win.Raise):
			rt.Fatalf("got %q, %+v; want %q and the class's window", got, w, win.Raise)
		case !should && (w != nil || got != sev):
			rt.Fatalf("got %q, %+v; want %q unchanged and no window", got, w, sev)
		}
		if next, nw := warden.EscalateSeverity(class, sev, recent+1); w != nil && (next != got || nw != w) {
			rt.Fatalf("raised at %d but not at %d", recent, recent+1)
		}
	})
}

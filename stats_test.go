package warden_test

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
	"pgregory.net/rapid"
)

func inc(class string, sev warden.Severity, state warden.IncidentState, auto bool) *warden.Incident {
	return &warden.Incident{Class: class, Severity: sev, State: state, AutoContained: auto}
}

func TestStatsDelta(t *testing.T) {
	pi := "prompt_injection"
	tests := []struct {
		name     string
		old, new *warden.Incident
		want     map[string]int64
	}{
		{"created open, auto-contained", nil, inc(pi, "high", "open", true),
			map[string]int64{"total": 1, "class:prompt_injection": 1, "open": 1, "open_severity:high": 1, "open_class:prompt_injection:high": 1, "contained": 1}},
		{"created contained", nil, inc(pi, "high", "contained", false),
			map[string]int64{"total": 1, "class:prompt_injection": 1, "open": 1, "open_severity:high": 1, "open_class:prompt_injection:high": 1}},
		{"created containment_failed", nil, inc(pi, "low", "containment_failed", false),
			map[string]int64{"total": 1, "class:prompt_injection": 1, "open": 1, "open_severity:low": 1, "open_class:prompt_injection:low": 1}},
		{"created acknowledged", nil, inc(pi, "low", "acknowledged", false),
			map[string]int64{"total": 1, "class:prompt_injection": 1}},
		{"created resolved", nil, inc(pi, "low", "resolved", false),
			map[string]int64{"total": 1, "class:prompt_injection": 1, "resolved": 1}},
		{"open to contained changes nothing", inc(pi, "high", "open", true), inc(pi, "high", "contained", true),
			map[string]int64{}},
		{"unchanged", inc(pi, "high", "open", true), inc(pi, "high", "open", true), map[string]int64{}},
		{"contained to resolved", inc(pi, "high", "contained", true), inc(pi, "high", "resolved", true),
			map[string]int64{"open": -1, "open_severity:high": -1, "open_class:prompt_injection:high": -1, "resolved": 1}},
		{"contained to acknowledged", inc(pi, "critical", "contained", false), inc(pi, "critical", "acknowledged", false),
			map[string]int64{"open": -1, "open_severity:critical": -1, "open_class:prompt_injection:critical": -1}},
		{"acknowledged to resolved", inc(pi, "critical", "acknowledged", false), inc(pi, "critical", "resolved", false),
			map[string]int64{"resolved": 1}},
		{"escalated while open", inc(pi, "high", "open", false), inc(pi, "critical", "open", false),
			map[string]int64{"open_severity:high": -1, "open_severity:critical": 1, "open_class:prompt_injection:high": -1, "open_class:prompt_injection:critical": 1}},
		{"escalated while acknowledged", inc(pi, "high", "acknowledged", false), inc(pi, "critical", "acknowledged", false),
			map[string]int64{}},
		{"auto-contained later", inc(pi, "high", "open", false), inc(pi, "high", "contained", true),
			map[string]int64{"contained": 1}},
		{"class changed", inc(pi, "high", "resolved", false), inc("tool_call_burst", "high", "resolved", false),
			map[string]int64{"class:prompt_injection": -1, "class:tool_call_burst": 1}},
		{"unknown state is neither open nor resolved", nil, inc(pi, "high", "paused", false),
			map[string]int64{"total": 1, "class:prompt_injection": 1}},
		{"class changed while open", inc(pi, "high", "open", false), inc("tool_call_burst", "high", "open", false),
			map[string]int64{"class:prompt_injection": -1, "class:tool_call_burst": 1, "open_class:prompt_injection:high": -1, "open_class:tool_call_burst:high": 1}},
		{"nothing to nothing", nil, nil, map[string]int64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, warden.StatsDelta(tt.old, tt.new)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestStatsFromCounters(t *testing.T) {
	tests := []struct {
		name string
		in   map[string]int64
		want *warden.IncidentStats
	}{
		{"nil", nil, &warden.IncidentStats{ByClass: map[string]int64{}, OpenBySeverity: map[string]int64{}}},
		{"every key", map[string]int64{
			"total": 7, "open": 3, "contained": 4, "resolved": 2,
			"class:prompt_injection": 5, "class:tool_call_burst": 2,
			"open_severity:high": 2, "open_severity:critical": 1,
		}, &warden.IncidentStats{
			TotalIncidents: 7, OpenIncidents: 3, ContainedCount: 4, ResolvedCount: 2,
			ByClass:        map[string]int64{"prompt_injection": 5, "tool_call_burst": 2},
			OpenBySeverity: map[string]int64{"high": 2, "critical": 1},
		}},
		{"zero groups are left out, zero totals kept", map[string]int64{
			"total": 0, "class:prompt_injection": 0, "open_severity:high": 0, "class:tool_call_burst": 1,
		}, &warden.IncidentStats{ByClass: map[string]int64{"tool_call_burst": 1}, OpenBySeverity: map[string]int64{}}},
		{"unknown and empty-named keys are ignored", map[string]int64{
			"totals": 9, "class:": 4, "open_severity:": 2, "class": 1, "severity:high": 3,
		}, &warden.IncidentStats{ByClass: map[string]int64{}, OpenBySeverity: map[string]int64{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, warden.StatsFromCounters(tt.in)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestStatsDeltaSumsToRecount: counters kept by adding StatsDelta for every
// write, creations and any later transitions in any order, equal the
// counters of a full recount of the incidents as they end up.
func TestStatsDeltaSumsToRecount(t *testing.T) {
	genIncident := rapid.Custom(func(rt *rapid.T) *warden.Incident {
		return &warden.Incident{
			Class:         rapid.SampledFrom(seedClasses[:4]).Draw(rt, "class"),
			Severity:      rapid.SampledFrom(warden.Severities).Draw(rt, "severity"),
			State:         rapid.SampledFrom(warden.IncidentStates).Draw(rt, "state"),
			AutoContained: rapid.Bool().Draw(rt, "auto"),
		}
	})
	rapid.Check(t, func(rt *rapid.T) {
		var current []*warden.Incident
		counters := map[string]int64{}
		writes := rapid.IntRange(1, 60).Draw(rt, "writes")
		for range writes {
			next := genIncident.Draw(rt, "incident")
			var old *warden.Incident
			if len(current) > 0 && rapid.Bool().Draw(rt, "update") {
				i := rapid.IntRange(0, len(current)-1).Draw(rt, "which")
				old, current[i] = current[i], next
			} else {
				current = append(current, next)
			}
			for k, v := range warden.StatsDelta(old, next) {
				if v == 0 {
					rt.Fatalf("delta holds a zero for %q", k)
				}
				counters[k] += v
			}
		}

		want := &warden.IncidentStats{ByClass: map[string]int64{}, OpenBySeverity: map[string]int64{}}
		open := []warden.IncidentState{"open", "contained", "containment_failed"}
		for _, i := range current {
			want.TotalIncidents++
			want.ByClass[i.Class]++
			if slices.Contains(open, i.State) {
				want.OpenIncidents++
				want.OpenBySeverity[string(i.Severity)]++
			}
			if i.State == "resolved" {
				want.ResolvedCount++
			}
			if i.AutoContained {
				want.ContainedCount++
			}
		}
		if diff := cmp.Diff(want, warden.StatsFromCounters(counters)); diff != "" {
			rt.Fatalf("counters differ from a recount (-recount +counters):\n%s", diff)
		}
	})
}

func TestOpenClassKey(t *testing.T) {
	k := warden.OpenClassKey("prompt_injection", warden.SeverityHigh)
	if k != "open_class:prompt_injection:high" {
		t.Fatalf("OpenClassKey = %q", k)
	}
	class, sev, ok := warden.ParseOpenClassKey(k)
	if !ok || class != "prompt_injection" || sev != warden.SeverityHigh {
		t.Fatalf("ParseOpenClassKey(%q) = %q, %q, %v", k, class, sev, ok)
	}
	for _, other := range []string{"open", "open_severity:high", "class:x", "open_class:", "open_class:nocolon"} {
		if _, _, ok := warden.ParseOpenClassKey(other); ok {
			t.Errorf("ParseOpenClassKey(%q) accepted it", other)
		}
	}
}

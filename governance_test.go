package warden_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
	"pgregory.net/rapid"
)

func TestParseProfile(t *testing.T) {
	const invalid = "Unknown profile %q; the ladder is observer, operator, guardian, phoenix, sovereign."
	for i, p := range []string{"observer", "operator", "guardian", "phoenix", "sovereign"} {
		got, err := warden.ParseProfile(p)
		if err != nil || string(got) != p || got.Rank() != i+1 {
			t.Errorf("ParseProfile(%q) = %q (rank %d), %v; want rank %d", p, got, got.Rank(), err, i+1)
		}
	}
	for _, p := range []string{"", "root", "Observer", "sovereign "} {
		got, err := warden.ParseProfile(p)
		if diff := cmp.Diff(codeOf{warden.EINVALID, fmt.Sprintf(invalid, p)}, errCode(err)); diff != "" || got != "" {
			t.Errorf("ParseProfile(%q) = %q; error (-want +got):\n%s", p, got, diff)
		}
		if r := warden.Profile(p).Rank(); r != 0 {
			t.Errorf("Rank(%q) = %d, want 0", p, r)
		}
	}
}

func TestParseEscalationTypes(t *testing.T) {
	// Seed 002's EscalationType and DeescalationType values.
	esc := []string{"threat_detected", "operator_request", "crisis_declared", "quorum_approved", "sovereign_override"}
	deesc := []string{"timeout_expired", "threat_resolved", "operator_release", "crisis_concluded", "sovereign_revoke"}
	for _, s := range esc {
		if got, err := warden.ParseEscalationType(s); err != nil || string(got) != s {
			t.Errorf("ParseEscalationType(%q) = %q, %v", s, got, err)
		}
		if _, err := warden.ParseDeescalationType(s); warden.ErrorCode(err) != warden.EINVALID {
			t.Errorf("ParseDeescalationType(%q) = %v, want invalid", s, err)
		}
	}
	for _, s := range deesc {
		if got, err := warden.ParseDeescalationType(s); err != nil || string(got) != s {
			t.Errorf("ParseDeescalationType(%q) = %q, %v", s, got, err)
		}
		if _, err := warden.ParseEscalationType(s); warden.ErrorCode(err) != warden.EINVALID {
			t.Errorf("ParseEscalationType(%q) = %v, want invalid", s, err)
		}
	}
	for _, s := range []string{"", "THREAT_DETECTED", "timeout"} {
		got, err := warden.ParseEscalationType(s)
		want := codeOf{warden.EINVALID, fmt.Sprintf("Unknown escalation_type %q; valid: threat_detected, operator_request, crisis_declared, quorum_approved, sovereign_override.", s)}
		if diff := cmp.Diff(want, errCode(err)); diff != "" || got != "" {
			t.Errorf("ParseEscalationType(%q) = %q; (-want +got):\n%s", s, got, diff)
		}
		got2, err := warden.ParseDeescalationType(s)
		want = codeOf{warden.EINVALID, fmt.Sprintf("Unknown deescalation_type %q; valid: timeout_expired, threat_resolved, operator_release, crisis_concluded, sovereign_revoke.", s)}
		if diff := cmp.Diff(want, errCode(err)); diff != "" || got2 != "" {
			t.Errorf("ParseDeescalationType(%q) = %q; (-want +got):\n%s", s, got2, diff)
		}
	}
}

func TestDeescalationToBaseline(t *testing.T) {
	want := map[warden.DeescalationType]bool{"crisis_concluded": true, "sovereign_revoke": true}
	for _, d := range slices.Concat(warden.DeescalationTypes, []warden.DeescalationType{"", "bogus"}) {
		if got := d.ToBaseline(); got != want[d] {
			t.Errorf("%q.ToBaseline() = %v, want %v", d, got, want[d])
		}
	}
}

// TestDefaultLadderMatchesSeed compares the default ladder with seed 002's
// ESCALATION_POLICIES (auto_on_threat_confidence from escalate_on_threat).
func TestDefaultLadderMatchesSeed(t *testing.T) {
	want := &warden.Ladder{Hops: []warden.HopPolicy{
		{From: "observer", To: "operator", Reversible: true, AutoDeescalate: true, DefaultTTL: 3600, MaxTTL: 3600, RequiresReason: true},
		{From: "operator", To: "guardian", Reversible: true, AutoDeescalate: true, DefaultTTL: 7200, MaxTTL: 7200, RequiresReason: true, AutoOnThreatConfidence: 0.8},
		{From: "guardian", To: "phoenix", Reversible: true, AutoDeescalate: true, DefaultTTL: 1800, MaxTTL: 1800, RequiresReason: true, RequiresApproval: true, Quorum: 1, AutoOnThreatConfidence: 0.95},
		{From: "phoenix", To: "sovereign", RequiresReason: true, RequiresApproval: true, RequiresHuman: true, Quorum: 1},
	}}
	l := warden.DefaultLadder()
	if diff := cmp.Diff(want, l); diff != "" {
		t.Errorf("DefaultLadder (-seed +got):\n%s", diff)
	}
	if err := l.Validate(); err != nil {
		t.Errorf("DefaultLadder does not validate: %v", err)
	}
	// Each call returns its own ladder.
	l.Hops[0].MaxTTL = 1
	if warden.DefaultLadder().Hops[0].MaxTTL != 3600 {
		t.Error("DefaultLadder shares its hops between calls")
	}
}

func TestLadderHop(t *testing.T) {
	l := warden.DefaultLadder()
	tests := []struct {
		from, to warden.Profile
		want     int // index into l.Hops; -1 for none
	}{
		{"observer", "operator", 0},
		{"operator", "guardian", 1},
		{"guardian", "phoenix", 2},
		{"phoenix", "sovereign", 3},
		{"operator", "observer", -1},
		{"observer", "guardian", -1},
		{"observer", "sovereign", -1},
		{"observer", "observer", -1},
		{"", "observer", -1},
		{"sovereign", "", -1},
	}
	for _, tt := range tests {
		got := l.Hop(tt.from, tt.to)
		if tt.want < 0 && got != nil || tt.want >= 0 && got != &l.Hops[tt.want] {
			t.Errorf("Hop(%q, %q) = %+v, want hop %d", tt.from, tt.to, got, tt.want)
		}
	}
}

func TestLadderValidate(t *testing.T) {
	hop := func(from, to warden.Profile) warden.HopPolicy {
		h := warden.HopPolicy{From: from, To: to, Reversible: true, AutoDeescalate: true, DefaultTTL: 60, MaxTTL: 120}
		h.RequiresHuman, h.RequiresApproval = to == warden.ProfileSovereign, to == warden.ProfileSovereign
		return h
	}
	with := func(h warden.HopPolicy, f func(*warden.HopPolicy)) warden.HopPolicy { f(&h); return h }
	tests := []struct {
		name string
		hops []warden.HopPolicy
		want string // message; "" for valid
	}{
		{"empty", nil, ""},
		{"one hop", []warden.HopPolicy{hop("guardian", "phoenix")}, ""},
		{"every hop", []warden.HopPolicy{hop("observer", "operator"), hop("operator", "guardian"), hop("guardian", "phoenix"), hop("phoenix", "sovereign")}, ""},
		{"skips a rung", []warden.HopPolicy{hop("observer", "operator"), hop("observer", "guardian")},
			"Ladder hop 1 (observer → guardian) is not an adjacent upward hop."},
		{"downward", []warden.HopPolicy{hop("operator", "observer")}, "Ladder hop 0 (operator → observer) is not an adjacent upward hop."},
		{"to itself", []warden.HopPolicy{hop("guardian", "guardian")}, "Ladder hop 0 (guardian → guardian) is not an adjacent upward hop."},
		{"unknown from", []warden.HopPolicy{hop("", "observer")}, "Ladder hop 0 ( → observer) is not an adjacent upward hop."},
		{"beyond sovereign", []warden.HopPolicy{hop("sovereign", "root")}, "Ladder hop 0 (sovereign → root) is not an adjacent upward hop."},
		{"irreversible auto-de-escalation", []warden.HopPolicy{with(hop("phoenix", "sovereign"), func(h *warden.HopPolicy) { h.Reversible = false })},
			"Ladder hop phoenix → sovereign auto-de-escalates but is not reversible; a TTL cannot undo an irreversible hop."},
		{"irreversible without auto-de-escalation", []warden.HopPolicy{with(hop("phoenix", "sovereign"), func(h *warden.HopPolicy) { h.Reversible, h.AutoDeescalate = false, false })}, ""},
		{"negative default TTL", []warden.HopPolicy{with(hop("observer", "operator"), func(h *warden.HopPolicy) { h.DefaultTTL = -1 })},
			"Ladder hop observer → operator has invalid TTLs."},
		{"negative max TTL", []warden.HopPolicy{with(hop("observer", "operator"), func(h *warden.HopPolicy) { h.MaxTTL = -1 })},
			"Ladder hop observer → operator has invalid TTLs."},
		{"default above max", []warden.HopPolicy{with(hop("observer", "operator"), func(h *warden.HopPolicy) { h.DefaultTTL = 121 })},
			"Ladder hop observer → operator has invalid TTLs."},
		{"default equals max", []warden.HopPolicy{with(hop("observer", "operator"), func(h *warden.HopPolicy) { h.DefaultTTL = 120 })}, ""},
		{"no max: any default", []warden.HopPolicy{with(hop("observer", "operator"), func(h *warden.HopPolicy) { h.DefaultTTL, h.MaxTTL = 1<<30, 0 })}, ""},
		{"sovereign without a human", []warden.HopPolicy{with(hop("phoenix", "sovereign"), func(h *warden.HopPolicy) { h.RequiresHuman = false })},
			"Ladder hop phoenix → sovereign must require a human and an approval (requires_human, requires_approval): sovereign is human-only, whatever the configuration."},
		{"sovereign without an approval", []warden.HopPolicy{with(hop("phoenix", "sovereign"), func(h *warden.HopPolicy) { h.RequiresApproval = false })},
			"Ladder hop phoenix → sovereign must require a human and an approval (requires_human, requires_approval): sovereign is human-only, whatever the configuration."},
		{"first bad hop is named", []warden.HopPolicy{hop("observer", "operator"), hop("phoenix", "guardian"), hop("sovereign", "x")},
			"Ladder hop 1 (phoenix → guardian) is not an adjacent upward hop."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&warden.Ladder{Hops: tt.hops}).Validate()
			want := codeOf{}
			if tt.want != "" {
				want = codeOf{warden.EINVALID, tt.want}
			}
			if diff := cmp.Diff(want, errCode(err)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// rungs are the ladder's adjacent upward pairs, written out.
var rungs = map[[2]warden.Profile]bool{
	{"observer", "operator"}: true, {"operator", "guardian"}: true,
	{"guardian", "phoenix"}: true, {"phoenix", "sovereign"}: true,
}

var genHop = rapid.Custom(func(rt *rapid.T) warden.HopPolicy {
	profiles := []warden.Profile{"observer", "operator", "guardian", "phoenix", "sovereign", "", "root"}
	return warden.HopPolicy{
		From:           rapid.SampledFrom(profiles).Draw(rt, "from"),
		To:             rapid.SampledFrom(profiles).Draw(rt, "to"),
		Reversible:     rapid.Bool().Draw(rt, "reversible"),
		AutoDeescalate: rapid.Bool().Draw(rt, "auto"),
		DefaultTTL:     rapid.IntRange(-2, 8000).Draw(rt, "default"),
		MaxTTL:         rapid.IntRange(-2, 8000).Draw(rt, "max"),
	}
})

// TestLadderValidateProperty: a ladder validates exactly when every hop is
// an adjacent upward rung, only reversible hops auto-de-escalate, and TTLs
// are not negative with the default within the maximum; every hop of a
// valid ladder is found by Hop and goes up one rank.
func TestLadderValidateProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		l := &warden.Ladder{Hops: rapid.SliceOfN(genHop, 0, 6).Draw(rt, "hops")}
		ok := true
		for _, h := range l.Hops {
			ok = ok && rungs[[2]warden.Profile{h.From, h.To}] &&
				(h.Reversible || !h.AutoDeescalate) &&
				h.DefaultTTL >= 0 && h.MaxTTL >= 0 && (h.MaxTTL == 0 || h.DefaultTTL <= h.MaxTTL) &&
				(h.To != warden.ProfileSovereign || h.RequiresHuman && h.RequiresApproval)
		}
		err := l.Validate()
		if ok != (err == nil) {
			rt.Fatalf("Validate = %v, want valid %v", err, ok)
		}
		if err != nil {
			if warden.ErrorCode(err) != warden.EINVALID {
				rt.Fatalf("code %q, want invalid", warden.ErrorCode(err))
			}
			return
		}
		for _, h := range l.Hops {
			if h.To.Rank() != h.From.Rank()+1 || h.From.Rank() == 0 {
				rt.Fatalf("valid ladder has hop %s → %s", h.From, h.To)
			}
			if l.Hop(h.From, h.To) == nil {
				rt.Fatalf("Hop(%s, %s) = nil", h.From, h.To)
			}
		}
	})
}

func TestHopPolicyTTL(t *testing.T) {
	tests := []struct {
		name               string
		defaultTTL, maxTTL int
		requested, want    int
	}{
		{"default", 3600, 3600, 0, 3600},
		{"shorter request", 3600, 3600, 60, 60},
		{"request at the max", 3600, 3600, 3600, 3600},
		{"request above the max is capped", 3600, 3600, 3601, 3600},
		{"huge request is capped", 1800, 1800, 1 << 40, 1800},
		{"negative request is the default", 3600, 3600, -5, 3600},
		{"default below the max", 600, 3600, 0, 600},
		{"request between default and max", 600, 3600, 1200, 1200},
		{"no TTL and no max: never expires", 0, 0, 0, 0},
		{"no max: request kept", 0, 0, 7 * 86400, 7 * 86400},
		{"no max: default", 900, 0, 0, 900},
		{"no max: request over default kept", 900, 0, 5000, 5000},
		{"no default, a max: request capped", 0, 3600, 9000, 3600},
		{"no default, a max: no request gets the max, never forever", 0, 3600, 0, 3600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &warden.HopPolicy{DefaultTTL: tt.defaultTTL, MaxTTL: tt.maxTTL}
			if got := h.TTL(tt.requested); got != tt.want {
				t.Errorf("TTL(%d) = %d, want %d", tt.requested, got, tt.want)
			}
		})
	}
}

// TestHopPolicyTTLProperty: on a hop that validates, a TTL is never
// negative; a positive TTL never exceeds the hop's maximum if it has one;
// a positive request within the maximum is granted as asked; no request
// gets the default, or the maximum when there is no default.
func TestHopPolicyTTLProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		h := genHop.Draw(rt, "hop")
		h.From, h.To = "observer", "operator"
		if (&warden.Ladder{Hops: []warden.HopPolicy{h}}).Validate() != nil {
			rt.Skip("invalid hop")
		}
		req := rapid.IntRange(-10, 20000).Draw(rt, "requested")
		got := h.TTL(req)
		switch {
		case got < 0:
			rt.Fatalf("TTL(%d) = %d", req, got)
		case h.MaxTTL > 0 && got > h.MaxTTL:
			rt.Fatalf("TTL(%d) = %d exceeds the maximum %d", req, got, h.MaxTTL)
		case req > 0 && (h.MaxTTL == 0 || req <= h.MaxTTL) && got != req:
			rt.Fatalf("TTL(%d) = %d, want the request", req, got)
		case req <= 0 && h.DefaultTTL > 0 && got != h.DefaultTTL:
			rt.Fatalf("TTL(%d) = %d, want the default %d", req, got, h.DefaultTTL)
		case req <= 0 && h.DefaultTTL == 0 && got != h.MaxTTL:
			rt.Fatalf("TTL(%d) = %d, want the maximum %d (no default)", req, got, h.MaxTTL)
		}
	})
}

func TestEscalationExpiry(t *testing.T) {
	str := func(s string) *string { return &s }
	noon := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   *string
		want time.Time
		ok   bool
	}{
		{"no TTL", nil, time.Time{}, false},
		{"UTC", str("2026-03-14T12:00:00Z"), noon, true},
		{"nanoseconds", str("2026-03-14T12:00:00.000000001Z"), noon.Add(1), true},
		{"offset, as seed 002's isoformat writes it", str("2026-03-14T13:00:00.5+01:00"), noon.Add(500 * time.Millisecond), true},
		{"empty", str(""), time.Time{}, false},
		{"not a time", str("in an hour"), time.Time{}, false},
		{"no zone", str("2026-03-14T12:00:00"), time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := (&warden.Escalation{ExpiresAt: tt.in}).Expiry()
			if ok != tt.ok || !got.Equal(tt.want) {
				t.Errorf("Expiry = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestBudgetBalance(t *testing.T) {
	tests := []struct {
		allocated, credited, spent, want int64
	}{
		{0, 0, 0, 0},
		{1000, 0, 0, 1000},
		{1000, 0, 1000, 0},
		{1000, 250, 400, 850},
		{100, 0, 150, -50},
	}
	for _, tt := range tests {
		b := &warden.Budget{Allocated: tt.allocated, Credited: tt.credited, Spent: tt.spent}
		if got := b.Balance(); got != tt.want {
			t.Errorf("Balance of %+v = %d, want %d", *b, got, tt.want)
		}
	}
}

func TestEscalationID(t *testing.T) {
	var b [12]byte
	for i := range b {
		b[i] = byte(i*17 + 1)
	}
	if got, want := warden.EscalationID(b), "esc_0112233445566778899aabbc"; got != want {
		t.Errorf("EscalationID = %q, want %q", got, want)
	}
	if got := warden.EscalationID([12]byte{}); got != "esc_"+strings.Repeat("0", 24) {
		t.Errorf("EscalationID(zero) = %q", got)
	}
}

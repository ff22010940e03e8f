package warden_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
)

// TestDefaultPolicyMatchesRunbook compares the default rules with seed
// 001's degradation-trigger table.
func TestDefaultPolicyMatchesRunbook(t *testing.T) {
	rule := func(auto bool, sev warden.Severity, actions ...string) warden.ClassRule {
		return warden.ClassRule{AutoContain: auto, Actions: actions, DefaultSeverity: sev}
	}
	want := map[string]warden.ClassRule{
		"attestation_failure":       rule(true, "critical", "freeze_agent", "disable_airlock", "force_vault_relock"),
		"integrity_violation":       rule(true, "critical", "freeze_agent", "disable_airlock", "force_vault_relock"),
		"unauthorized_access":       rule(true, "critical", "freeze_agent", "force_vault_relock", "log_alert"),
		"manifest_mismatch":         rule(true, "high", "quarantine_model", "freeze_agent"),
		"policy_bypass_attempt":     rule(true, "high", "freeze_agent", "log_alert"),
		"prompt_injection":          rule(true, "high", "freeze_agent", "log_alert"),
		"tool_call_burst":           rule(true, "medium", "freeze_agent"),
		"model_behavior_anomaly":    rule(true, "high", "quarantine_model", "log_alert"),
		"forbidden_airlock_request": rule(false, "medium", "log_alert"),
	}
	p := warden.DefaultPolicy()
	if diff := cmp.Diff(want, p.Rules); diff != "" {
		t.Errorf("rules (-seed +got):\n%s", diff)
	}
	if p.Version != 1 || p.Targets.TimeoutSeconds != 5 || p.Targets.Retries != nil || len(p.Alerting.Webhooks) != 0 {
		t.Errorf("policy = %+v", p)
	}
	if err := p.Validate(); err != nil {
		t.Errorf("default policy does not validate: %v", err)
	}
}

func TestContainmentPolicyValidate(t *testing.T) {
	intp := func(n int) *int { return &n }
	hook := func(url string, events ...string) warden.Webhook { return warden.Webhook{URL: url, Events: events} }
	tests := []struct {
		name   string
		change func(p *warden.ContainmentPolicy)
		want   string // the message, or its start when it ends in "…"; "" for valid
	}{
		{"default", func(*warden.ContainmentPolicy) {}, ""},
		{"version 0", func(p *warden.ContainmentPolicy) { p.Version = 0 }, "Policy version must be 1, not 0."},
		{"version 2", func(p *warden.ContainmentPolicy) { p.Version = 2 }, "Policy version must be 1, not 2."},
		{"unknown class", func(p *warden.ContainmentPolicy) { p.Rules["bogus"] = p.Rules["prompt_injection"] },
			`Policy rules.bogus: Unknown incident class "bogus"; valid classes are attestation_failure, integrity_violation, …`},
		{"unknown severity", func(p *warden.ContainmentPolicy) { setSeverity(p, "tool_call_burst", "urgent") },
			`Policy rules.tool_call_burst.default_severity: Unknown severity "urgent"; valid severities are low, medium, high, critical.`},
		{"missing severity", func(p *warden.ContainmentPolicy) { setSeverity(p, "prompt_injection", "") },
			`Policy rules.prompt_injection.default_severity: Unknown severity ""; valid severities are low, medium, high, critical.`},
		{"unknown action", func(p *warden.ContainmentPolicy) {
			r := p.Rules["manifest_mismatch"]
			r.Actions = append(r.Actions, "shutdown")
			p.Rules["manifest_mismatch"] = r
		}, `Policy rules.manifest_mismatch.actions: Unknown containment action "shutdown"; …`},
		{"auto-contain without actions is allowed", func(p *warden.ContainmentPolicy) {
			r := p.Rules["tool_call_burst"]
			r.Actions = nil
			p.Rules["tool_call_burst"] = r
		}, ""},
		{"missing class", func(p *warden.ContainmentPolicy) { delete(p.Rules, "prompt_injection") },
			`Policy rules has no rule for class "prompt_injection"; every class needs one.`},
		{"no rules", func(p *warden.ContainmentPolicy) { p.Rules = nil },
			`Policy rules has no rule for class "attestation_failure"; every class needs one.`},
		{"webhook", func(p *warden.ContainmentPolicy) {
			p.Alerting.Webhooks = []warden.Webhook{hook("https://hooks.example/x?k=1", "containment", "escalation", "recovery")}
		}, ""},
		{"webhook not http", func(p *warden.ContainmentPolicy) {
			p.Alerting.Webhooks = []warden.Webhook{hook("ftp://h/x", "containment")}
		},
			`Policy alerting.webhooks[0].url: "ftp://h/x" must be an absolute http or https URL`},
		{"webhook relative", func(p *warden.ContainmentPolicy) {
			p.Alerting.Webhooks = []warden.Webhook{hook("http://h", "recovery"), hook("/hook", "recovery")}
		}, `Policy alerting.webhooks[1].url: "/hook" must be an absolute http or https URL`},
		{"webhook without host", func(p *warden.ContainmentPolicy) { p.Alerting.Webhooks = []warden.Webhook{hook("http://", "recovery")} },
			`Policy alerting.webhooks[0].url: "http://" must be an absolute http or https URL`},
		{"webhook unparsable", func(p *warden.ContainmentPolicy) {
			p.Alerting.Webhooks = []warden.Webhook{hook("http://h/\x7f", "recovery")}
		},
			"Policy alerting.webhooks[0].url: \"http://h/\\x7f\" is not a URL"},
		{"webhook without events", func(p *warden.ContainmentPolicy) { p.Alerting.Webhooks = []warden.Webhook{hook("http://h")} },
			"Policy alerting.webhooks[0].events is empty."},
		{"webhook unknown event", func(p *warden.ContainmentPolicy) {
			p.Alerting.Webhooks = []warden.Webhook{hook("http://h", "containment", "incident")}
		}, `Policy alerting.webhooks[0].events: unknown event "incident" (containment, escalation, recovery).`},
		{"targets may be empty", func(p *warden.ContainmentPolicy) { p.Targets = warden.Targets{} }, ""},
		{"target not http", func(p *warden.ContainmentPolicy) { p.Targets.Registry = "unix:///run/registry.sock" },
			`Policy targets.registry: "unix:///run/registry.sock" must be an absolute http or https URL`},
		{"target without scheme", func(p *warden.ContainmentPolicy) { p.Targets.Airlock = "127.0.0.1:8490" },
			`Policy targets.airlock: "127.0.0.1:8490" is not a URL`},
		{"timeout 0 is the default", func(p *warden.ContainmentPolicy) { p.Targets.TimeoutSeconds = 0 }, ""},
		{"timeout 1", func(p *warden.ContainmentPolicy) { p.Targets.TimeoutSeconds = 1 }, ""},
		{"timeout 60", func(p *warden.ContainmentPolicy) { p.Targets.TimeoutSeconds = 60 }, ""},
		{"timeout 61", func(p *warden.ContainmentPolicy) { p.Targets.TimeoutSeconds = 61 }, "Policy targets.timeout_seconds must be between 1 and 60."},
		{"timeout -1", func(p *warden.ContainmentPolicy) { p.Targets.TimeoutSeconds = -1 }, "Policy targets.timeout_seconds must be between 1 and 60."},
		{"retries 0", func(p *warden.ContainmentPolicy) { p.Targets.Retries = intp(0) }, ""},
		{"retries 5", func(p *warden.ContainmentPolicy) { p.Targets.Retries = intp(5) }, ""},
		{"retries 6", func(p *warden.ContainmentPolicy) { p.Targets.Retries = intp(6) }, "Policy targets.retries must be between 0 and 5."},
		{"retries -1", func(p *warden.ContainmentPolicy) { p.Targets.Retries = intp(-1) }, "Policy targets.retries must be between 0 and 5."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := warden.DefaultPolicy()
			tt.change(p)
			err := p.Validate()
			got := errCode(err)
			want := codeOf{}
			if tt.want != "" {
				want = codeOf{warden.EINVALID, tt.want}
				if prefix, cut := strings.CutSuffix(tt.want, "…"); cut && strings.HasPrefix(got.Message, prefix) {
					want.Message = got.Message
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func setSeverity(p *warden.ContainmentPolicy, class string, sev warden.Severity) {
	r := p.Rules[class]
	r.DefaultSeverity = sev
	p.Rules[class] = r
}

func TestWebhooksFor(t *testing.T) {
	p := warden.DefaultPolicy()
	if got := p.WebhooksFor("containment"); got != nil {
		t.Errorf("no webhooks: %v", got)
	}
	p.Alerting.Webhooks = []warden.Webhook{
		{URL: "http://a", Events: []string{"containment", "recovery"}},
		{URL: "http://b", Events: []string{"escalation"}},
		{URL: "http://c", Events: []string{"recovery"}},
	}
	tests := map[string][]string{
		"containment": {"http://a"},
		"escalation":  {"http://b"},
		"recovery":    {"http://a", "http://c"},
		"incident":    nil,
		"":            nil,
	}
	for event, want := range tests {
		if diff := cmp.Diff(want, p.WebhooksFor(event)); diff != "" {
			t.Errorf("WebhooksFor(%q) (-want +got):\n%s", event, diff)
		}
	}
}

package warden

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
)

// ContainmentPolicy says, per incident class, whether reporting it contains
// automatically, with which actions, at what default severity, and where
// alerts go. Its YAML shape is the reference recorder's, plus targets.
type ContainmentPolicy struct {
	Version  int                  `yaml:"version" json:"version"`
	Rules    map[string]ClassRule `yaml:"rules" json:"rules"`
	Alerting Alerting             `yaml:"alerting" json:"alerting"`
	// Targets are the services containment actions call (warden addition).
	Targets Targets `yaml:"targets" json:"targets"`
}

// ClassRule is one class's containment rule.
type ClassRule struct {
	AutoContain     bool     `yaml:"auto_contain" json:"auto_contain"`
	Actions         []string `yaml:"actions" json:"actions"`
	DefaultSeverity Severity `yaml:"default_severity" json:"default_severity"`
}

// Alerting configures webhooks.
type Alerting struct {
	Webhooks []Webhook `yaml:"webhooks" json:"webhooks"`
}

// Webhook receives the events it lists (containment, escalation, recovery).
type Webhook struct {
	URL    string   `yaml:"url" json:"url"`
	Events []string `yaml:"events" json:"events"`
}

// Targets are the base URLs of the services containment acts on. An empty
// URL means the action cannot run: it is recorded as failed, never skipped.
type Targets struct {
	Agent    string `yaml:"agent" json:"agent"`       // freeze_agent, force_vault_relock
	Airlock  string `yaml:"airlock" json:"airlock"`   // disable_airlock
	Registry string `yaml:"registry" json:"registry"` // quarantine_model
	// TokenFile holds the bearer token sent to targets (never inlined in
	// the policy, so the policy can be shared and digested).
	TokenFile string `yaml:"token_file" json:"token_file"`
	// TimeoutSeconds bounds each call (default 5); Retries bounds extra
	// attempts on transient failures (default 2).
	TimeoutSeconds int  `yaml:"timeout_seconds" json:"timeout_seconds"`
	Retries        *int `yaml:"retries" json:"retries"`
}

// DefaultPolicy returns the runbook's table: its nine classes, default
// severities and containment actions.
func DefaultPolicy() *ContainmentPolicy {
	r := func(auto bool, sev Severity, actions ...string) ClassRule {
		return ClassRule{AutoContain: auto, Actions: actions, DefaultSeverity: sev}
	}
	return &ContainmentPolicy{
		Version: 1,
		Rules: map[string]ClassRule{
			ClassAttestationFailure:      r(true, SeverityCritical, ActionFreezeAgent, ActionDisableAirlock, ActionForceVaultRelock),
			ClassIntegrityViolation:      r(true, SeverityCritical, ActionFreezeAgent, ActionDisableAirlock, ActionForceVaultRelock),
			ClassUnauthorizedAccess:      r(true, SeverityCritical, ActionFreezeAgent, ActionForceVaultRelock, ActionLogAlert),
			ClassManifestMismatch:        r(true, SeverityHigh, ActionQuarantineModel, ActionFreezeAgent),
			ClassPolicyBypassAttempt:     r(true, SeverityHigh, ActionFreezeAgent, ActionLogAlert),
			ClassPromptInjection:         r(true, SeverityHigh, ActionFreezeAgent, ActionLogAlert),
			ClassToolCallBurst:           r(true, SeverityMedium, ActionFreezeAgent),
			ClassModelBehaviorAnomaly:    r(true, SeverityHigh, ActionQuarantineModel, ActionLogAlert),
			ClassForbiddenAirlockRequest: r(false, SeverityMedium, ActionLogAlert),
		},
		// The reference services' conventional local ports. A target that
		// does not answer makes containment fail, never silently pass.
		Targets: Targets{
			Agent:          "http://127.0.0.1:8476",
			Airlock:        "http://127.0.0.1:8490",
			Registry:       "http://127.0.0.1:8470",
			TimeoutSeconds: 5,
		},
	}
}

// Validate checks a policy: version 1, only known classes and actions,
// valid severities, a rule for every class, absolute http(s) URLs and known
// webhook events. Errors are EINVALID naming the offending key.
func (p *ContainmentPolicy) Validate() error {
	if p.Version != 1 {
		return Errorf(EINVALID, "Policy version must be 1, not %d.", p.Version)
	}
	classes := make([]string, 0, len(p.Rules))
	for c := range p.Rules {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	for _, c := range classes {
		rule := p.Rules[c]
		if err := ValidateClass(c); err != nil {
			return Errorf(EINVALID, "Policy rules.%s: %s", c, ErrorMessage(err))
		}
		if _, err := ParseSeverity(string(rule.DefaultSeverity)); err != nil {
			return Errorf(EINVALID, "Policy rules.%s.default_severity: %s", c, ErrorMessage(err))
		}
		for _, a := range rule.Actions {
			if err := ValidateAction(a); err != nil {
				return Errorf(EINVALID, "Policy rules.%s.actions: %s", c, ErrorMessage(err))
			}
		}
	}
	for _, c := range IncidentClasses {
		if _, ok := p.Rules[c]; !ok {
			return Errorf(EINVALID, "Policy rules has no rule for class %q; every class needs one.", c)
		}
	}
	for i, w := range p.Alerting.Webhooks {
		if err := validURL(w.URL); err != nil {
			return Errorf(EINVALID, "Policy alerting.webhooks[%d].url: %v", i, err)
		}
		if len(w.Events) == 0 {
			return Errorf(EINVALID, "Policy alerting.webhooks[%d].events is empty.", i)
		}
		for _, e := range w.Events {
			if !slices.Contains([]string{EventContainment, EventEscalation, EventRecovery}, e) {
				return Errorf(EINVALID, "Policy alerting.webhooks[%d].events: unknown event %q (containment, escalation, recovery).", i, e)
			}
		}
	}
	for name, u := range map[string]string{"agent": p.Targets.Agent, "airlock": p.Targets.Airlock, "registry": p.Targets.Registry} {
		if u == "" {
			continue
		}
		if err := validURL(u); err != nil {
			return Errorf(EINVALID, "Policy targets.%s: %v", name, err)
		}
	}
	if p.Targets.TimeoutSeconds < 0 || p.Targets.TimeoutSeconds > 60 {
		return Errorf(EINVALID, "Policy targets.timeout_seconds must be between 1 and 60.")
	}
	if p.Targets.Retries != nil && (*p.Targets.Retries < 0 || *p.Targets.Retries > 5) {
		return Errorf(EINVALID, "Policy targets.retries must be between 0 and 5.")
	}
	return nil
}

func validURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", s)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q must be an absolute http or https URL", s)
	}
	return nil
}

// WebhooksFor returns the webhook URLs subscribed to event.
func (p *ContainmentPolicy) WebhooksFor(event string) []string {
	var out []string
	for _, w := range p.Alerting.Webhooks {
		if slices.Contains(w.Events, event) {
			out = append(out, w.URL)
		}
	}
	return out
}

package contain_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/contain"
)

func TestDefaultPolicyYAMLIsDefaultPolicy(t *testing.T) {
	p, err := contain.ParsePolicy(contain.DefaultPolicyYAML())
	if err != nil {
		t.Fatalf("ParsePolicy(DefaultPolicyYAML()): %v", err)
	}
	if diff := cmp.Diff(warden.DefaultPolicy(), p); diff != "" {
		t.Errorf("DefaultPolicyYAML differs from warden.DefaultPolicy (-want +got):\n%s", diff)
	}

	// The embedded bytes are the example file, and LoadPolicy returns them.
	path := filepath.Join("testdata", "containment.yaml")
	lp, raw, err := contain.LoadPolicy(path)
	if err != nil {
		t.Fatalf("LoadPolicy: %v", err)
	}
	if !bytes.Equal(raw, contain.DefaultPolicyYAML()) {
		t.Error("LoadPolicy's raw bytes differ from DefaultPolicyYAML")
	}
	if diff := cmp.Diff(warden.DefaultPolicy(), lp); diff != "" {
		t.Errorf("LoadPolicy (-want +got):\n%s", diff)
	}

	// Callers get a copy they may change.
	b := contain.DefaultPolicyYAML()
	b[0] = 'X'
	if contain.DefaultPolicyYAML()[0] == 'X' {
		t.Error("DefaultPolicyYAML returned its backing array")
	}
}

// edit replaces old with new in the default policy YAML, failing if old is
// not there exactly once.
func edit(t *testing.T, pairs ...string) []byte {
	t.Helper()
	s := string(contain.DefaultPolicyYAML())
	for i := 0; i+1 < len(pairs); i += 2 {
		if n := strings.Count(s, pairs[i]); n != 1 {
			t.Fatalf("edit: %q occurs %d times in the default policy", pairs[i], n)
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return []byte(s)
}

// lineOf returns the 1-based line of the first occurrence of sub in data.
func lineOf(t *testing.T, data []byte, sub string) int {
	t.Helper()
	i := bytes.Index(data, []byte(sub))
	if i < 0 {
		t.Fatalf("%q not in data", sub)
	}
	return bytes.Count(data[:i], []byte("\n")) + 1
}

func TestParsePolicyRejects(t *testing.T) {
	const piRule = "  prompt_injection:\n    auto_contain: true\n"
	tests := []struct {
		name string
		data []byte
		// want are substrings of the error message; "@LINE:x" becomes
		// "line N" where N is the line of x in data.
		want []string
	}{
		{"empty", nil, []string{"Policy file is empty"}},
		{"whitespace", []byte("  \n\n"), []string{"empty"}},
		{"only comments", []byte("# nothing\n# here\n"), []string{"empty"}},
		{"null document", []byte("---\n...\n"), []string{"empty"}},
		{"explicit null", []byte("~\n"), []string{"empty"}},
		{"two documents", append(contain.DefaultPolicyYAML(), []byte("---\nversion: 1\n")...), []string{"second YAML document", "exactly one"}},
		{"second document broken", append(contain.DefaultPolicyYAML(), []byte("---\n: : [\n")...), []string{"Policy YAML is invalid"}},
		{"top level sequence", []byte("- version: 1\n"), []string{"line 1", "top level must be a mapping", "version, rules, alerting, targets"}},
		{"top level scalar", []byte("hello\n"), []string{"top level must be a mapping"}},
		{"unknown top-level key", edit(t, "version: 1\n", "version: 1\nversoin: 1\n"),
			[]string{"@LINE:versoin", `unknown key "versoin" at the top level`, "valid keys: version, rules, alerting, targets"}},
		{"unknown rule key", edit(t, piRule, piRule+"    auto_contian: false\n"),
			[]string{"@LINE:auto_contian", `unknown key "auto_contian" in rules.prompt_injection`, "valid keys: auto_contain, actions, default_severity"}},
		{"unknown targets key", edit(t, "  timeout_seconds: 5\n", "  timeout_seconds: 5\n  token: hunter2\n"),
			[]string{"@LINE:token: hunter2", `unknown key "token" in targets`, "token_file"}},
		{"unknown webhook key", edit(t, "alerting:\n", "alerting:\n  webhooks:\n    - url: https://h.example/x\n      events: [containment]\n      secret: s\n"),
			[]string{"@LINE:secret", `unknown key "secret" in alerting.webhooks[0]`, "valid keys: url, events"}},
		{"unknown key through a merge", edit(t, piRule, "  prompt_injection:\n    <<: {auto_contian: true}\n    auto_contain: true\n"),
			[]string{`unknown key "auto_contian" in rules.prompt_injection`}},
		{"wrong type", edit(t, piRule, "  prompt_injection:\n    auto_contain: maybe\n"),
			[]string{"Policy YAML is invalid", "@LINE:maybe", "(rules.prompt_injection.auto_contain)", "cannot unmarshal", "into bool"}},
		{"actions not a list", edit(t, "    actions: [freeze_agent]\n", "    actions: freeze_agent\n"),
			[]string{"(rules.tool_call_burst.actions)", "cannot unmarshal"}},
		{"duplicate key", edit(t, "version: 1\n", "version: 1\nversion: 1\n"),
			[]string{"already defined"}},
		{"duplicate class", edit(t, piRule, piRule+"    actions: []\n    default_severity: low\n  prompt_injection:\n    auto_contain: false\n"),
			[]string{`"prompt_injection" already defined`}},
		{"syntax error", []byte("version: 1\nrules: [\n"), []string{"Policy YAML is invalid", "line"}},
		{"tab indentation", []byte("version: 1\nrules:\n\tx: 1\n"), []string{"Policy YAML is invalid", "line 3"}},
		{"version", edit(t, "version: 1\n", "version: 2\n"), []string{"Policy version (@LINE:version: 2) must be 1, not 2."}},
		{"missing version", edit(t, "version: 1\n", ""), []string{"Policy version must be 1, not 0."}},
		{"missing class", edit(t, "  tool_call_burst:\n    auto_contain: true\n    actions: [freeze_agent]\n    default_severity: medium\n", ""),
			[]string{`no rule for class "tool_call_burst"`, "every class needs one"}},
		{"no rules", []byte("version: 1\n"), []string{`no rule for class "attestation_failure"`}},
		{"unknown class", edit(t, piRule, piRule+"    actions: []\n    default_severity: low\n  prompt_injektion:\n    auto_contain: true\n"),
			[]string{"Policy rules.prompt_injektion (@LINE:prompt_injektion)", `Unknown incident class "prompt_injektion"`}},
		{"bad severity", edit(t, "    default_severity: medium\n  model_behavior_anomaly", "    default_severity: severe\n  model_behavior_anomaly"),
			[]string{"Policy rules.tool_call_burst.default_severity (@LINE:severe)", `Unknown severity "severe"`}},
		{"bad action", edit(t, "    actions: [freeze_agent]\n", "    actions: [freeze_agents]\n"),
			[]string{"Policy rules.tool_call_burst.actions (@LINE:freeze_agents)", `Unknown containment action "freeze_agents"`}},
		{"timeout too big", edit(t, "  timeout_seconds: 5\n", "  timeout_seconds: 61\n"),
			[]string{"targets.timeout_seconds (@LINE:61)", "between 1 and 60"}},
		{"negative timeout", edit(t, "  timeout_seconds: 5\n", "  timeout_seconds: -1\n"), []string{"targets.timeout_seconds", "between 1 and 60"}},
		{"retries too many", edit(t, "  # retries: 2\n", "  retries: 9\n"), []string{"targets.retries (@LINE:retries: 9)", "between 0 and 5"}},
		{"relative target", edit(t, `  agent: http://127.0.0.1:8476`, `  agent: "localhost:8476"`), []string{"targets.agent", "absolute http or https URL"}},
		{"ftp target", edit(t, `  airlock: http://127.0.0.1:8490`, `  airlock: "ftp://h/x"`), []string{"targets.airlock", "absolute http or https URL"}},
		{"bad webhook url", edit(t, "alerting:\n", "alerting:\n  webhooks:\n    - url: /relative\n      events: [containment]\n"),
			[]string{"alerting.webhooks[0].url (@LINE:/relative)"}},
		{"bad webhook event", edit(t, "alerting:\n", "alerting:\n  webhooks:\n    - url: https://h.example/\n      events: [contain]\n"),
			[]string{"alerting.webhooks[0].events", `unknown event "contain"`}},
		{"webhook without events", edit(t, "alerting:\n", "alerting:\n  webhooks:\n    - url: https://h.example/\n"),
			[]string{"alerting.webhooks[0].events (@LINE:https://h.example/) is empty"}},
		{"too large", bytes.Repeat([]byte("#"), contain.MaxPolicySize+1), []string{"the limit is"}},
	}
	lineRE := regexp.MustCompile(`@LINE:([^)]*)`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := contain.ParsePolicy(tt.data)
			if err == nil {
				t.Fatalf("ParsePolicy accepted it: %+v", p)
			}
			if p != nil {
				t.Error("ParsePolicy returned a policy with its error")
			}
			if code := warden.ErrorCode(err); code != warden.EINVALID {
				t.Errorf("code = %q, want %q (err %v)", code, warden.EINVALID, err)
			}
			msg := warden.ErrorMessage(err)
			for _, w := range tt.want {
				w = lineRE.ReplaceAllStringFunc(w, func(m string) string {
					return "line " + strconv.Itoa(lineOf(t, tt.data, m[len("@LINE:"):]))
				})
				if !strings.Contains(msg, w) {
					t.Errorf("message %q\n lacks %q", msg, w)
				}
			}
		})
	}
}

func TestParsePolicyDefaultsAndOptions(t *testing.T) {
	t.Run("timeout defaults to 5, retries stay absent", func(t *testing.T) {
		p, err := contain.ParsePolicy(edit(t, "  timeout_seconds: 5\n", ""))
		if err != nil {
			t.Fatal(err)
		}
		if p.Targets.TimeoutSeconds != 5 || p.Targets.Retries != nil {
			t.Errorf("targets = %+v, want timeout 5 and retries nil", p.Targets)
		}
	})
	t.Run("explicit zero retries are kept", func(t *testing.T) {
		p, err := contain.ParsePolicy(edit(t, "  # retries: 2\n", "  retries: 0\n"))
		if err != nil {
			t.Fatal(err)
		}
		if p.Targets.Retries == nil || *p.Targets.Retries != 0 {
			t.Errorf("retries = %v, want pointer to 0", p.Targets.Retries)
		}
	})
	t.Run("targets, token file and webhooks", func(t *testing.T) {
		p, err := contain.ParsePolicy(edit(t,
			`  agent: http://127.0.0.1:8476`, `  agent: "http://10.0.0.9:8476"`,
			`  token_file: ""`, `  token_file: /etc/warden/target.token`,
			"alerting:\n", "alerting:\n  webhooks:\n    - url: https://alerts.example/hook\n      events: [containment, recovery]\n",
		))
		if err != nil {
			t.Fatal(err)
		}
		if p.Targets.Agent != "http://10.0.0.9:8476" || p.Targets.TokenFile != "/etc/warden/target.token" {
			t.Errorf("targets = %+v", p.Targets)
		}
		want := []warden.Webhook{{URL: "https://alerts.example/hook", Events: []string{"containment", "recovery"}}}
		if diff := cmp.Diff(want, p.Alerting.Webhooks); diff != "" {
			t.Errorf("webhooks (-want +got):\n%s", diff)
		}
	})
	t.Run("anchors and merge keys", func(t *testing.T) {
		data := []byte(`version: 1
rules:
  attestation_failure: &latch {auto_contain: true, actions: [freeze_agent, disable_airlock, force_vault_relock], default_severity: critical}
  integrity_violation: *latch
  unauthorized_access:
    <<: *latch
    actions: [freeze_agent, force_vault_relock, log_alert]
  manifest_mismatch: {auto_contain: true, actions: [quarantine_model, freeze_agent], default_severity: high}
  policy_bypass_attempt: &freeze_alert {auto_contain: true, actions: [freeze_agent, log_alert], default_severity: high}
  prompt_injection: *freeze_alert
  tool_call_burst: {auto_contain: true, actions: [freeze_agent], default_severity: medium}
  model_behavior_anomaly: {auto_contain: true, actions: [quarantine_model, log_alert], default_severity: high}
  forbidden_airlock_request: {auto_contain: false, actions: [log_alert], default_severity: medium}
targets: {agent: "http://127.0.0.1:8476", airlock: "http://127.0.0.1:8490", registry: "http://127.0.0.1:8470"}
`)
		p, err := contain.ParsePolicy(data)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(warden.DefaultPolicy(), p); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}

func TestLoadPolicyErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	if _, _, err := contain.LoadPolicy(missing); warden.ErrorCode(err) != warden.EINVALID || !strings.Contains(warden.ErrorMessage(err), missing) {
		t.Errorf("LoadPolicy(missing) = %v, want EINVALID naming %s", err, missing)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\nbogus: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, raw, err := contain.LoadPolicy(bad)
	if p != nil || warden.ErrorCode(err) != warden.EINVALID {
		t.Fatalf("LoadPolicy(bad) = %v, %v", p, err)
	}
	msg := warden.ErrorMessage(err)
	for _, w := range []string{bad, "line 2", `unknown key "bogus"`} {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q lacks %q", msg, w)
		}
	}
	if string(raw) != "version: 1\nbogus: true\n" {
		t.Errorf("raw = %q", raw)
	}
}

func TestPolicyDigest(t *testing.T) {
	d1, err := contain.PolicyDigest(warden.DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(d1) {
		t.Fatalf("digest %q is not sha256:<64 hex>", d1)
	}
	// Formatting and comments do not change it: the default YAML, and the
	// same policy written with anchors and flow style, digest alike.
	p, err := contain.ParsePolicy(contain.DefaultPolicyYAML())
	if err != nil {
		t.Fatal(err)
	}
	if d2, _ := contain.PolicyDigest(p); d2 != d1 {
		t.Errorf("digest of parsed default = %s, want %s", d2, d1)
	}
	// An empty list is the same as none.
	p.Alerting.Webhooks = []warden.Webhook{}
	if d2, _ := contain.PolicyDigest(p); d2 != d1 {
		t.Errorf("digest with webhooks: [] = %s, want %s", d2, d1)
	}
	if p.Alerting.Webhooks == nil {
		t.Error("PolicyDigest modified its argument")
	}
	// Any change to the policy changes it.
	changes := map[string]func(p *warden.ContainmentPolicy){
		"severity": func(p *warden.ContainmentPolicy) {
			r := p.Rules[warden.ClassToolCallBurst]
			r.DefaultSeverity = warden.SeverityHigh
			p.Rules[warden.ClassToolCallBurst] = r
		},
		"action order": func(p *warden.ContainmentPolicy) {
			r := p.Rules[warden.ClassManifestMismatch]
			r.Actions = []string{warden.ActionFreezeAgent, warden.ActionQuarantineModel}
			p.Rules[warden.ClassManifestMismatch] = r
		},
		"target":  func(p *warden.ContainmentPolicy) { p.Targets.Agent = "http://127.0.0.1:18476" },
		"retries": func(p *warden.ContainmentPolicy) { n := 2; p.Targets.Retries = &n },
		"webhook": func(p *warden.ContainmentPolicy) {
			p.Alerting.Webhooks = []warden.Webhook{{URL: "https://h.example/", Events: []string{"containment"}}}
		},
	}
	seen := map[string]string{d1: "default"}
	for name, change := range changes {
		p := warden.DefaultPolicy()
		change(p)
		d, err := contain.PolicyDigest(p)
		if err != nil {
			t.Fatal(err)
		}
		if prev, ok := seen[d]; ok {
			t.Errorf("change %q digests like %q: %s", name, prev, d)
		}
		seen[d] = name
	}
	if _, err := contain.PolicyDigest(nil); err == nil {
		t.Error("PolicyDigest(nil) succeeded")
	}
}

package contain_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/contain"
)

// policyFor returns the default policy with the given targets.
func policyFor(agent, airlock, registry string) *warden.ContainmentPolicy {
	p := warden.DefaultPolicy()
	p.Targets.Agent, p.Targets.Airlock, p.Targets.Registry = agent, airlock, registry
	return p
}

func newActuator(clock *testClock) *contain.HTTPActuator {
	log, _ := newLogger()
	return &contain.HTTPActuator{
		Clock:   clock.Now,
		Logger:  log,
		Backoff: func(int) time.Duration { return 0 },
	}
}

func TestHTTPActuatorCallsEachTarget(t *testing.T) {
	agent, airlock, registry := newTarget(t, nil), newTarget(t, nil), newTarget(t, nil)
	clock := newClock()
	a := newActuator(clock)
	p := policyFor(agent.URL, airlock.URL, registry.URL)
	inc := testIncident()
	reason := "manifest_mismatch incident INC-20260314-120000-0001: manifest hash mismatch for llama"

	tests := []struct {
		action string
		target *target
		path   string
		body   map[string]any
	}{
		{warden.ActionFreezeAgent, agent, "/api/v1/freeze",
			map[string]any{"action": "freeze", "reason": reason, "incident_id": inc.ID}},
		{warden.ActionDisableAirlock, airlock, "/api/v1/disable",
			map[string]any{"action": "disable", "reason": reason, "incident_id": inc.ID}},
		{warden.ActionForceVaultRelock, agent, "/api/v1/vault/relock",
			map[string]any{"action": "relock", "reason": reason, "incident_id": inc.ID}},
		{warden.ActionQuarantineModel, registry, "/api/v1/quarantine",
			map[string]any{"action": "quarantine", "reason": reason, "incident_id": inc.ID,
				"model_path": "/var/lib/models/llama-3.gguf", "model_name": "llama-3.gguf"}},
	}
	for _, tt := range tests {
		t.Run(tt.action, func(t *testing.T) {
			before := len(tt.target.requests())
			clock.Advance(time.Second)
			res := a.Execute(context.Background(), p, tt.action, inc)
			want := warden.ContainmentResult{Action: tt.action, Success: true, CompletedAt: warden.FormatTime(clock.Now()), Attempts: 1}
			if diff := cmp.Diff(want, res); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			reqs := tt.target.requests()[before:]
			if len(reqs) != 1 {
				t.Fatalf("target got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != http.MethodPost || r.Path != tt.path {
				t.Errorf("request = %s %s, want POST %s", r.Method, r.Path, tt.path)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if auth, ok := r.Header["Authorization"]; ok {
				t.Errorf("Authorization sent without a token: %q", auth)
			}
			var body map[string]any
			if err := json.Unmarshal(r.Body, &body); err != nil {
				t.Fatalf("body %q: %v", r.Body, err)
			}
			if diff := cmp.Diff(tt.body, body); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
	// No call went to a target it was not meant for.
	if got := len(agent.requests()) + len(airlock.requests()) + len(registry.requests()); got != len(tests) {
		t.Errorf("targets got %d requests in all, want %d", got, len(tests))
	}
}

func TestHTTPActuatorTargetDetails(t *testing.T) {
	t.Run("base URL with a path prefix", func(t *testing.T) {
		tg := newTarget(t, nil)
		res := newActuator(newClock()).Execute(context.Background(), policyFor(tg.URL+"/agent/", "", ""), warden.ActionFreezeAgent, testIncident())
		if !res.Success {
			t.Fatalf("failed: %s", res.Error)
		}
		if p := tg.requests()[0].Path; p != "/agent/api/v1/freeze" {
			t.Errorf("path = %q, want /agent/api/v1/freeze", p)
		}
	})
	t.Run("model_name from evidence", func(t *testing.T) {
		tg := newTarget(t, nil)
		inc := testIncident()
		inc.Evidence["model_name"] = "llama-3-8b"
		res := newActuator(newClock()).Execute(context.Background(), policyFor("", "", tg.URL), warden.ActionQuarantineModel, inc)
		if !res.Success {
			t.Fatalf("failed: %s", res.Error)
		}
		var body map[string]string
		json.Unmarshal(tg.requests()[0].Body, &body)
		if body["model_name"] != "llama-3-8b" || body["model_path"] != "/var/lib/models/llama-3.gguf" {
			t.Errorf("body = %v", body)
		}
	})
	t.Run("quarantine without model_path makes no call", func(t *testing.T) {
		tg := newTarget(t, nil)
		inc := testIncident()
		delete(inc.Evidence, "model_path")
		inc.Evidence["model_name"] = "llama"
		res := newActuator(newClock()).Execute(context.Background(), policyFor("", "", tg.URL), warden.ActionQuarantineModel, inc)
		if res.Success || res.Attempts != 0 || !strings.Contains(res.Error, "evidence.model_path") {
			t.Errorf("result = %+v, want failure naming evidence.model_path", res)
		}
		if n := len(tg.requests()); n != 0 {
			t.Errorf("registry got %d requests", n)
		}
	})
	t.Run("redirects are not followed", func(t *testing.T) {
		elsewhere := newTarget(t, nil)
		tg := newTarget(t, func(_ int, w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusTemporaryRedirect)
		})
		a := newActuator(newClock())
		a.Token = func() (string, error) { return "tok-redirect", nil }
		res := a.Execute(context.Background(), policyFor(tg.URL, "", ""), warden.ActionFreezeAgent, testIncident())
		if res.Success || res.Attempts != 1 || !strings.Contains(res.Error, "307") {
			t.Errorf("result = %+v, want a failed 307 without retry", res)
		}
		if n := len(elsewhere.requests()); n != 0 {
			t.Errorf("the redirect target got %d requests (and the token)", n)
		}
	})
	t.Run("reason is cut to 512 characters on a character boundary", func(t *testing.T) {
		inc := testIncident()
		inc.Description = strings.Repeat("é", 1000)
		r := contain.Reason(inc)
		if utf8.RuneCountInString(r) != contain.MaxReasonLen || !utf8.ValidString(r) {
			t.Errorf("reason has %d characters (valid UTF-8: %v), want %d", utf8.RuneCountInString(r), utf8.ValidString(r), contain.MaxReasonLen)
		}
		if !strings.HasPrefix(r, "manifest_mismatch incident INC-20260314-120000-0001: éé") {
			t.Errorf("reason = %.80q…", r)
		}
		inc.Description = "short"
		if r := contain.Reason(inc); r != "manifest_mismatch incident INC-20260314-120000-0001: short" {
			t.Errorf("reason = %q", r)
		}
	})
}

func TestHTTPActuatorMissingTargets(t *testing.T) {
	p := policyFor("", "", "")
	tests := map[string]string{
		warden.ActionFreezeAgent:      "no agent target configured (policy targets.agent)",
		warden.ActionForceVaultRelock: "no agent target configured (policy targets.agent)",
		warden.ActionDisableAirlock:   "no airlock target configured (policy targets.airlock)",
		warden.ActionQuarantineModel:  "no registry target configured (policy targets.registry)",
	}
	clock := newClock()
	for action, want := range tests {
		res := newActuator(clock).Execute(context.Background(), p, action, testIncident())
		wantRes := warden.ContainmentResult{Action: action, Error: want, CompletedAt: warden.FormatTime(clock.Now())}
		if diff := cmp.Diff(wantRes, res); diff != "" {
			t.Errorf("%s (-want +got):\n%s", action, diff)
		}
	}
	res := newActuator(clock).Execute(context.Background(), p, "launch_missiles", testIncident())
	if res.Success || !strings.Contains(res.Error, `unknown containment action "launch_missiles"`) {
		t.Errorf("unknown action: %+v", res)
	}
	res = newActuator(clock).Execute(context.Background(), nil, warden.ActionFreezeAgent, testIncident())
	if res.Success || res.Error == "" || res.CompletedAt == "" {
		t.Errorf("nil policy: %+v", res)
	}
}

func TestHTTPActuatorToken(t *testing.T) {
	const secret = "s3cret-target-token"
	t.Run("Token func", func(t *testing.T) {
		tg := newTarget(t, nil)
		a := newActuator(newClock())
		a.Token = func() (string, error) { return secret + "\n", nil }
		if res := a.Execute(context.Background(), policyFor(tg.URL, "", ""), warden.ActionFreezeAgent, testIncident()); !res.Success {
			t.Fatal(res.Error)
		}
		if got := tg.requests()[0].Header.Get("Authorization"); got != "Bearer "+secret {
			t.Errorf("Authorization = %q", got)
		}
	})
	t.Run("policy token_file, read on every call", func(t *testing.T) {
		tg := newTarget(t, nil)
		file := filepath.Join(t.TempDir(), "target.token")
		os.WriteFile(file, []byte(" first \n"), 0o600)
		p := policyFor(tg.URL, "", "")
		p.Targets.TokenFile = file
		a := newActuator(newClock())
		a.Execute(context.Background(), p, warden.ActionFreezeAgent, testIncident())
		os.WriteFile(file, []byte("rotated"), 0o600)
		a.Execute(context.Background(), p, warden.ActionFreezeAgent, testIncident())
		reqs := tg.requests()
		if len(reqs) != 2 || reqs[0].Header.Get("Authorization") != "Bearer first" || reqs[1].Header.Get("Authorization") != "Bearer rotated" {
			t.Errorf("Authorization headers = %q, %q", reqs[0].Header.Get("Authorization"), reqs[1].Header.Get("Authorization"))
		}
	})
	t.Run("unreadable or empty token file fails without calling", func(t *testing.T) {
		tg := newTarget(t, nil)
		dir := t.TempDir()
		empty := filepath.Join(dir, "empty.token")
		os.WriteFile(empty, []byte("\n"), 0o600)
		for file, want := range map[string]string{
			filepath.Join(dir, "missing.token"): "cannot read targets.token_file",
			empty:                               "is empty",
		} {
			p := policyFor(tg.URL, "", "")
			p.Targets.TokenFile = file
			res := newActuator(newClock()).Execute(context.Background(), p, warden.ActionFreezeAgent, testIncident())
			if res.Success || !strings.Contains(res.Error, want) {
				t.Errorf("token file %s: result %+v, want error containing %q", file, res, want)
			}
		}
		if n := len(tg.requests()); n != 0 {
			t.Errorf("target got %d requests without a token", n)
		}
	})
	t.Run("never in errors, even when the target echoes it", func(t *testing.T) {
		tg := newTarget(t, func(_ int, w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte("bad credential: " + r.Header.Get("Authorization")))
		})
		a := newActuator(newClock())
		a.Token = func() (string, error) { return secret, nil }
		res := a.Execute(context.Background(), policyFor(tg.URL, "", ""), warden.ActionFreezeAgent, testIncident())
		if res.Success || strings.Contains(res.Error, secret) {
			t.Errorf("error leaks the token: %q", res.Error)
		}
		if !strings.Contains(res.Error, "/api/v1/freeze") || !strings.Contains(res.Error, "401") {
			t.Errorf("error %q does not name the path and status", res.Error)
		}
	})
}

func TestHTTPActuatorRetries(t *testing.T) {
	intp := func(n int) *int { return &n }
	t.Run("4xx is not retried", func(t *testing.T) {
		tg := newTarget(t, status(http.StatusForbidden))
		res := newActuator(newClock()).Execute(context.Background(), policyFor(tg.URL, "", ""), warden.ActionFreezeAgent, testIncident())
		if res.Success || res.Attempts != 1 || len(tg.requests()) != 1 {
			t.Errorf("result %+v after %d requests, want 1 failed attempt", res, len(tg.requests()))
		}
		for _, w := range []string{"POST " + tg.URL + "/api/v1/freeze", "HTTP 403 Forbidden", "1 attempt"} {
			if !strings.Contains(res.Error, w) {
				t.Errorf("error %q lacks %q", res.Error, w)
			}
		}
	})
	for _, tt := range []struct {
		name    string
		retries *int
		want    int
	}{{"default retries", nil, 3}, {"no retries", intp(0), 1}, {"five retries", intp(5), 6}} {
		t.Run("5xx retried: "+tt.name, func(t *testing.T) {
			tg := newTarget(t, status(http.StatusServiceUnavailable))
			p := policyFor(tg.URL, "", "")
			p.Targets.Retries = tt.retries
			res := newActuator(newClock()).Execute(context.Background(), p, warden.ActionFreezeAgent, testIncident())
			if res.Success || res.Attempts != tt.want || len(tg.requests()) != tt.want {
				t.Errorf("result %+v after %d requests, want %d failed attempts", res, len(tg.requests()), tt.want)
			}
			if !strings.Contains(res.Error, "HTTP 503") {
				t.Errorf("error %q lacks the status", res.Error)
			}
		})
	}
	t.Run("5xx then success", func(t *testing.T) {
		tg := newTarget(t, func(n int, w http.ResponseWriter, _ *http.Request) {
			if n < 3 {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			w.WriteHeader(http.StatusAccepted)
		})
		res := newActuator(newClock()).Execute(context.Background(), policyFor(tg.URL, "", ""), warden.ActionFreezeAgent, testIncident())
		if !res.Success || res.Attempts != 3 || res.Error != "" {
			t.Errorf("result = %+v, want success on attempt 3", res)
		}
	})
	t.Run("hanging target times out and is retried", func(t *testing.T) {
		tg := newTarget(t, hang(t))
		a := newActuator(newClock())
		a.Timeout = 50 * time.Millisecond
		p := policyFor(tg.URL, "", "")
		p.Targets.Retries = intp(1)
		start := time.Now()
		res := a.Execute(context.Background(), p, warden.ActionFreezeAgent, testIncident())
		if elapsed := time.Since(start); elapsed > 3*time.Second {
			t.Errorf("took %s; the 50ms timeout was not applied", elapsed)
		}
		if res.Success || res.Attempts != 2 || !strings.Contains(res.Error, "timed out after 50ms") || !strings.Contains(res.Error, "/api/v1/freeze") {
			t.Errorf("result = %+v, want 2 timed-out attempts", res)
		}
	})
	t.Run("connection refused is retried", func(t *testing.T) {
		tg := newTarget(t, nil)
		url := tg.URL
		tg.Close()
		res := newActuator(newClock()).Execute(context.Background(), policyFor(url, "", ""), warden.ActionFreezeAgent, testIncident())
		if res.Success || res.Attempts != 3 || !strings.Contains(res.Error, "connection refused") || !strings.Contains(res.Error, url+"/api/v1/freeze") {
			t.Errorf("result = %+v, want 3 refused attempts naming the URL", res)
		}
	})
	t.Run("context cancellation stops retries", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		tg := newTarget(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
			cancel() // the server shuts down while the first attempt is answered
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		a := newActuator(newClock())
		a.Backoff = func(int) time.Duration { return time.Hour } // only ctx can end the wait
		res := a.Execute(ctx, policyFor(tg.URL, "", ""), warden.ActionFreezeAgent, testIncident())
		if res.Success || res.Attempts != 1 || len(tg.requests()) != 1 || !strings.Contains(res.Error, "canceled") {
			t.Errorf("result = %+v after %d requests, want 1 attempt and a cancellation", res, len(tg.requests()))
		}
	})
	t.Run("already canceled makes no successful call", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		tg := newTarget(t, nil)
		res := newActuator(newClock()).Execute(ctx, policyFor(tg.URL, "", ""), warden.ActionFreezeAgent, testIncident())
		if res.Success || res.Attempts > 1 || !strings.Contains(res.Error, "canceled") {
			t.Errorf("result = %+v", res)
		}
	})
}

func TestLogAlert(t *testing.T) {
	clock := newClock()
	log, buf := newLogger()
	a := &contain.HTTPActuator{Clock: clock.Now, Logger: log}
	// No targets at all: log_alert needs none.
	res := a.Execute(context.Background(), policyFor("", "", ""), warden.ActionLogAlert, testIncident())
	want := warden.ContainmentResult{Action: warden.ActionLogAlert, Success: true, CompletedAt: warden.FormatTime(clock.Now())}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(buf.String()), &line); err != nil {
		t.Fatalf("log %q: %v", buf.String(), err)
	}
	for k, v := range map[string]any{"level": "WARN", "msg": "containment alert", "incident_id": "INC-20260314-120000-0001",
		"class": "manifest_mismatch", "severity": "high", "source": "model-registry"} {
		if line[k] != v {
			t.Errorf("log %s = %v, want %v", k, line[k], v)
		}
	}
}

func TestDryRunActuator(t *testing.T) {
	tg := newTarget(t, func(int, http.ResponseWriter, *http.Request) { t.Error("dry run called a target") })
	clock := newClock()
	log, buf := newLogger()
	d := &contain.DryRunActuator{Clock: clock.Now, Logger: log}
	p := policyFor(tg.URL, tg.URL, "") // no registry: a dry run still succeeds
	for _, action := range warden.ContainmentActions {
		res := d.Execute(context.Background(), p, action, testIncident())
		want := warden.ContainmentResult{Action: action, Success: true, DryRun: true, CompletedAt: warden.FormatTime(clock.Now())}
		if diff := cmp.Diff(want, res); diff != "" {
			t.Errorf("%s (-want +got):\n%s", action, diff)
		}
	}
	logs := buf.String()
	for _, w := range []string{`"msg":"DRY-RUN would freeze_agent"`, `"url":"` + tg.URL + `/api/v1/freeze"`,
		`"msg":"DRY-RUN would quarantine_model"`, `"problem":"no registry target configured (policy targets.registry)"`,
		`"msg":"DRY-RUN would log_alert"`} {
		if !strings.Contains(logs, w) {
			t.Errorf("logs lack %s:\n%s", w, logs)
		}
	}
	if n := len(tg.requests()); n != 0 {
		t.Errorf("target got %d requests", n)
	}
}

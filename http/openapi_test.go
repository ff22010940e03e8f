package http_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/datadir"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/governor"
	"github.com/warden-sh/warden/engine/recorder"
	"github.com/warden-sh/warden/engine/stack"
	wardenhttp "github.com/warden-sh/warden/http"
	"github.com/warden-sh/warden/http/openapi"
	"github.com/warden-sh/warden/mcp"
	"github.com/warden-sh/warden/wardentest"
)

var captureOpenAPI = flag.String("openapi.capture", "", "write every exchange TestOpenAPIResponses validates to this file (JSON Lines): material for editing the document")

func init() {
	// MCP answers requests as server-sent events; the document gives
	// their body as a string.
	openapi3filter.RegisterBodyDecoder("text/event-stream", openapi3filter.PlainBodyDecoder)
}

// loadOpenAPI loads and validates the document served at
// /api/v1/openapi.yaml.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openapi.Document)
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		if *captureOpenAPI != "" { // capturing what to document
			t.Logf("openapi.yaml is not a valid OpenAPI document: %v", err)
			return doc
		}
		t.Fatalf("openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	return doc
}

// genericStatuses may answer any operation without being listed for it:
// they fall to the operation's default response (Error), documented once.
var genericStatuses = map[int]bool{
	http.StatusTooManyRequests:     true, // stream and session limits
	http.StatusInternalServerError: true,
	http.StatusServiceUnavailable:  true, // storage full, writes refused
}

// validator is an http.RoundTripper that checks every answer (and the
// request of every successful one) against the document with kin-openapi,
// and records which documented responses were seen.
type validator struct {
	t      *testing.T
	doc    *openapi3.T
	router routers.Router
	next   http.RoundTripper

	mu      sync.Mutex
	seen    map[string]bool // "METHOD /path/template STATUS"
	capture *json.Encoder
}

func newValidator(t *testing.T, doc *openapi3.T, bases ...string) *validator {
	t.Helper()
	// Route the test servers' URLs: the document's server is the default
	// address.
	doc.Servers = nil
	for _, b := range bases {
		doc.Servers = append(doc.Servers, &openapi3.Server{URL: b})
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	v := &validator{t: t, doc: doc, router: router, next: http.DefaultTransport, seen: map[string]bool{}}
	if *captureOpenAPI != "" {
		f, err := os.Create(*captureOpenAPI)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		v.capture = json.NewEncoder(f)
	}
	return v
}

func (v *validator) client() *http.Client { return &http.Client{Transport: v, Timeout: time.Minute} }

func (v *validator) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		var err error
		if reqBody, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	resp, err := v.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	var body []byte
	stream := req.Method == http.MethodGet && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	if !stream { // an event stream stays open: its head is checked, its events are MCP's
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
	}
	req2 := req.Clone(req.Context())
	req2.Body = io.NopCloser(bytes.NewReader(reqBody))
	v.check(req2, reqBody, resp, body)
	return resp, nil
}

// check validates one exchange and records it.
func (v *validator) check(req *http.Request, reqBody []byte, resp *http.Response, body []byte) {
	t := v.t
	name := req.Method + " " + req.URL.RequestURI()
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		t.Errorf("%s → %d: not in openapi.yaml: %v", name, resp.StatusCode, err)
		return
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	ctx := context.Background()
	if resp.StatusCode < 300 {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			t.Errorf("%s → %d: the request does not match openapi.yaml: %v", name, resp.StatusCode, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: opts}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("%s → %d: the response does not match openapi.yaml: %v\n%.600s", name, resp.StatusCode, err, body)
	}
	// kin-openapi passes what the document says nothing about; the
	// document must say something about everything.
	r := route.Operation.Responses.Status(resp.StatusCode)
	if r == nil && !genericStatuses[resp.StatusCode] {
		t.Errorf("%s → %d: openapi.yaml does not list status %d for %s %s", name, resp.StatusCode, resp.StatusCode, route.Method, route.Path)
	}
	if r == nil {
		r = route.Operation.Responses.Default()
	}
	if r != nil && r.Value != nil && len(body) > 0 {
		mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if c := r.Value.Content.Get(mt); c == nil || c.Schema == nil {
			t.Errorf("%s → %d: openapi.yaml gives no schema for its %s body", name, resp.StatusCode, mt)
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.seen[fmt.Sprintf("%s %s %d", route.Method, route.Path, resp.StatusCode)] = true
	if v.capture != nil {
		v.capture.Encode(map[string]any{"method": route.Method, "path": route.Path, "uri": req.URL.Path, "status": resp.StatusCode,
			"content_type": resp.Header.Get("Content-Type"), "headers": resp.Header, "request": string(reqBody), "body": string(body)})
	}
}

// unseen lists every response the document lists (default ones aside)
// that no exchange showed.
func (v *validator) unseen() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []string
	for path, item := range v.doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status := range op.Responses.Map() {
				if status == "default" {
					continue
				}
				if k := method + " " + path + " " + status; !v.seen[k] {
					out = append(out, k)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestOpenAPIDescribesEveryRoute keeps the document complete: every
// registered route and method appears in it, and every path it lists is
// a route (or a governance tool's path, or a mounted handler).
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	env := wardentest.MustEnv(t)
	_, api := env.MustServer(t)
	seen := map[string]bool{}
	for _, rt := range api.Routes() {
		seen[rt.Method+" "+rt.Pattern] = true
		if doc.Paths.Value(rt.Pattern) == nil || doc.Paths.Value(rt.Pattern).GetOperation(rt.Method) == nil {
			t.Errorf("route %s %s is not in openapi.yaml", rt.Method, rt.Pattern)
		}
	}
	tools := map[string]bool{}
	for _, tl := range governor.Tools() {
		tools[tl.Name] = true
		if doc.Paths.Value("/api/v1/governance/"+tl.Name) == nil {
			t.Errorf("governance tool %s has no path in openapi.yaml", tl.Name)
		}
	}
	for path, item := range doc.Paths.Map() {
		for m := range item.Operations() {
			name, isTool := strings.CutPrefix(path, "/api/v1/governance/")
			switch {
			case seen[m+" "+path]:
			case isTool && tools[name] && m == http.MethodPost:
			case path == "/metrics" || path == "/api/v1/openapi.yaml" || path == "/mcp":
			default:
				t.Errorf("openapi.yaml lists %s %s, which is not a route", m, path)
			}
		}
	}
}

// TestOpenAPIObjectsAreClosed: every object schema in the document says
// what else it may hold (additionalProperties), so a member a response
// gains without the document saying so fails validation.
func TestOpenAPIObjectsAreClosed(t *testing.T) {
	doc := loadOpenAPI(t)
	seen := map[*openapi3.Schema]bool{}
	var walk func(where string, s *openapi3.SchemaRef)
	walk = func(where string, s *openapi3.SchemaRef) {
		if s == nil || s.Value == nil || seen[s.Value] {
			return
		}
		seen[s.Value] = true
		v := s.Value
		if v.Type.Is("object") && v.AdditionalProperties.Has == nil && v.AdditionalProperties.Schema == nil {
			t.Errorf("%s: an object schema without additionalProperties", where)
		}
		for name, p := range v.Properties {
			walk(where+"."+name, p)
		}
		walk(where+"[]", v.Items)
		walk(where+"{}", v.AdditionalProperties.Schema)
		for i, x := range slices.Concat(v.OneOf, v.AnyOf, v.AllOf) {
			walk(fmt.Sprintf("%s|%d", where, i), x)
		}
	}
	for name, s := range doc.Components.Schemas {
		walk("#/components/schemas/"+name, s)
	}
	for path, item := range doc.Paths.Map() {
		for m, op := range item.Operations() {
			for status, r := range op.Responses.Map() {
				if r.Value == nil {
					continue
				}
				for ct, c := range r.Value.Content {
					walk(fmt.Sprintf("%s %s %s %s", m, path, status, ct), c.Schema)
				}
			}
			if op.RequestBody != nil && op.RequestBody.Value != nil {
				for ct, c := range op.RequestBody.Value.Content {
					walk(fmt.Sprintf("%s %s request %s", m, path, ct), c.Schema)
				}
			}
		}
	}
}

// TestOpenAPIResponses (issue 10, item 10) drives every route of a real
// server — successes, listings, refusals, every governance tool, /mcp,
// /metrics — through a client that validates each answer against
// openapi.yaml with kin-openapi (and each successful request too), and
// then requires that every response the document lists was seen. A
// member, status or header a handler gains, loses or renames without the
// document fails here; so does a documented answer nothing gives.
func TestOpenAPIResponses(t *testing.T) {
	target := wardentest.MustTarget(t)
	hook := wardentest.MustTarget(t)
	pol := wardentest.TargetPolicy(target.URL)
	pol.Alerting.Webhooks = []warden.Webhook{{URL: hook.URL + "/hook", Events: []string{warden.EventContainment, warden.EventRecovery}}}
	mirror := t.TempDir()
	var badPolicy atomic.Bool // the policy file a reload reads is broken
	env := wardentest.MustEnv(t, wardentest.Containment(pol), func(c *stack.Config) {
		c.Governor.Mirror = datadir.Mirror{Dir: mirror}
		c.Core.AuthFailureBurst = 1 << 20
		c.Recorder.LoadPolicy = func() (*warden.ContainmentPolicy, error) {
			if badPolicy.Load() {
				return nil, warden.Errorf(warden.EINVALID, "containment.yaml: line 1: did not find expected ',' or ']'")
			}
			return pol, nil
		}
	})
	api := wardenhttp.NewServer(wardenhttp.Options{Core: env.Core, Recorder: env.Recorder, Governor: env.Governor, Registry: prometheus.NewRegistry(),
		Mount: map[string]http.Handler{"/mcp": mcp.Handler(env.Core, env.Governor, "test")}})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	base := srv.URL
	// A second server, whose log was tampered with: it answers degraded.
	tampered := tamperedServer(t)
	v := newValidator(t, loadOpenAPI(t), base, tampered.base)
	client := v.client()
	tampered.check(t, client)

	// send makes one request and returns its status and decoded body.
	send := func(method, path, token, body string) (int, map[string]any) {
		t.Helper()
		var r io.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, base+path, r)
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		var out map[string]any
		_ = json.Unmarshal(data, &out)
		return resp.StatusCode, out
	}
	must := func(want int, method, path, token, body string) map[string]any {
		t.Helper()
		code, out := send(method, path, token, body)
		if code != want {
			t.Fatalf("%s %s: %d %v, want %d", method, path, code, out, want)
		}
		return out
	}
	admin := env.Admin
	tokens := map[warden.Role]string{}
	for _, role := range []warden.Role{warden.RoleRead, warden.RoleReporter, warden.RoleOperator, warden.RoleRecoveryAdmin, warden.RoleApprover, warden.RoleForensic} {
		spec := engine.CredentialSpec{Name: "role-" + string(role), Roles: []warden.Role{role}}
		if role == warden.RoleReporter {
			spec.Source = "agent-7"
			spec.Classes = []string{warden.ClassPromptInjection}
		}
		tokens[role] = env.MustCredential(t, spec)
	}

	// Before any checkpoint: the checkpoint is not found.
	must(404, "GET", "/api/v1/checkpoint", admin, "")
	mustStart(t, env)

	// Public routes.
	must(200, "GET", "/health", "", "")
	must(200, "GET", "/metrics", "", "")
	must(200, "GET", "/api/v1/openapi.yaml", "", "")
	must(200, "GET", "/api/v1/attestation/state", "", "")
	must(200, "GET", "/api/v1/integrity/state", "", "")

	// Credentials.
	created := must(201, "POST", "/api/v1/credentials", admin, `{"name":"rep","roles":["reporter"],"source":"agent-7","classes":["prompt_injection","tool_call_burst"]}`)
	rep := created["token"].(string)
	agent := must(201, "POST", "/api/v1/credentials", admin, `{"name":"agent-1","roles":["read"]}`)["token"].(string)
	appr := must(201, "POST", "/api/v1/credentials", admin, `{"name":"appr","roles":["approver"],"human":true}`)["token"].(string)
	human := must(201, "POST", "/api/v1/credentials", admin, `{"name":"carol","roles":["operator"],"human":true}`)["token"].(string)
	must(409, "POST", "/api/v1/credentials", admin, `{"name":"rep","roles":["read"]}`)
	must(200, "GET", "/api/v1/credentials?limit=2", admin, "")
	must(200, "POST", "/api/v1/credentials/human", admin, `{"name":"agent-1","human":false}`)
	must(404, "POST", "/api/v1/credentials/human", admin, `{"name":"nobody","human":true}`)
	must(201, "POST", "/api/v1/credentials", admin, `{"name":"leaver","roles":["read"]}`)
	must(200, "POST", "/api/v1/credentials/revoke", admin, `{"name":"leaver"}`)
	must(409, "POST", "/api/v1/credentials/revoke", admin, `{"name":"leaver"}`)
	must(404, "POST", "/api/v1/credentials/revoke", admin, `{"name":"nobody"}`)
	must(409, "POST", "/api/v1/credentials/human", admin, `{"name":"leaver","human":true}`)

	// Incidents: reports of every outcome, the listing, the ceremony.
	must(201, "POST", "/api/v1/incidents/report", rep, `{"class":"prompt_injection","source":"agent-7","description":"jailbreak attempt","evidence":{"prompt":"ignore previous"}}`)
	keyed := func(want int, key, body string) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+"/api/v1/incidents/report", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Idempotency-Key", key)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("keyed report: %d, want %d", resp.StatusCode, want)
		}
	}
	burst := `{"class":"tool_call_burst","source":"agent-7","description":"burst"}`
	keyed(201, "k-1", burst)
	keyed(200, "k-1", burst)
	keyed(409, "k-1", `{"class":"tool_call_burst","source":"agent-7","description":"another"}`)
	must(403, "POST", "/api/v1/incidents/report", rep, `{"class":"tool_call_burst","source":"agent-8","description":"wrong source"}`)
	alert := must(201, "POST", "/api/v1/incidents/report", admin, `{"class":"forbidden_airlock_request","source":"airlock","description":"egress","evidence":{"destination":"203.0.113.7:443"}}`)
	crit := must(201, "POST", "/api/v1/incidents/report", admin, `{"class":"unauthorized_access","severity":"critical","source":"vault","description":"vault opened"}`)
	id := crit["id"].(string)
	for range 3 {
		must(201, "POST", "/api/v1/incidents/report", admin, `{"class":"model_behavior_anomaly","source":"gpu","description":"drift"}`)
	}
	must(200, "GET", "/api/v1/incidents", agent, "")
	must(200, "GET", "/api/v1/incidents?limit=2&state=contained", agent, "")
	must(200, "GET", "/api/v1/incidents/get?id="+id, agent, "")
	must(404, "GET", "/api/v1/incidents/get?id=INC-none", agent, "")
	must(404, "POST", "/api/v1/incidents/resolve", admin, `{"id":"INC-none"}`)
	must(404, "POST", "/api/v1/incidents/acknowledge", admin, `{"id":"INC-none"}`)
	must(409, "POST", "/api/v1/incidents/resolve", admin, `{"id":"`+id+`"}`)
	must(409, "POST", "/api/v1/incidents/acknowledge", admin, `{"id":"`+id+`"}`)
	must(200, "GET", "/api/v1/recovery/status?limit=1", agent, "")
	must(404, "POST", "/api/v1/recovery/ack", admin, `{"incident_id":"INC-none","operator":"ops"}`)
	must(404, "POST", "/api/v1/recovery/reattest", admin, `{"incident_id":"INC-none"}`)
	must(409, "POST", "/api/v1/recovery/reattest", admin, `{"incident_id":"`+id+`"}`)
	must(200, "POST", "/api/v1/recovery/ack", admin, `{"incident_id":"`+id+`","operator":"admin@secai"}`)
	must(409, "POST", "/api/v1/recovery/ack", admin, `{"incident_id":"`+id+`","operator":"admin@secai"}`)
	must(200, "POST", "/api/v1/recovery/reattest", admin, `{"incident_id":"`+id+`"}`)
	must(200, "POST", "/api/v1/incidents/acknowledge", admin, `{"id":"`+alert["id"].(string)+`"}`)
	must(200, "POST", "/api/v1/incidents/resolve", admin, `{"id":"`+id+`"}`)
	must(200, "GET", "/api/v1/stats", agent, "")
	must(200, "GET", "/api/v1/webhooks/deliveries?limit=1", agent, "")
	must(200, "GET", "/api/v1/policy", agent, "")
	must(200, "POST", "/api/v1/reload", admin, "")
	badPolicy.Store(true)
	must(400, "POST", "/api/v1/reload", admin, "")

	// The integrity monitor.
	watched := filepath.Join(t.TempDir(), "watched.conf")
	if err := os.WriteFile(watched, []byte("a=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"paths": []string{watched}})
	must(200, "POST", "/api/v1/integrity/baseline", admin, string(b))
	must(200, "POST", "/api/v1/integrity/scan", admin, "")
	if err := os.WriteFile(watched, []byte("a=2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	must(200, "POST", "/api/v1/integrity/scan", admin, "")
	must(200, "GET", "/api/v1/integrity/state", "", "")
	must(200, "GET", "/api/v1/attestation/state", "", "")

	// The ledger.
	must(200, "GET", "/api/v1/pubkey", agent, "")
	must(200, "GET", "/api/v1/receipts?limit=3", agent, "")
	must(200, "GET", "/api/v1/receipts?order=desc&limit=3&tag=nope", agent, "")
	must(200, "GET", "/api/v1/receipts/1", agent, "")
	must(404, "GET", "/api/v1/receipts/999999", agent, "")
	cp := must(200, "GET", "/api/v1/checkpoint", agent, "")
	must(200, "GET", "/api/v1/checkpoint?format=note", agent, "")
	must(200, "GET", fmt.Sprintf("/api/v1/checkpoint/consistency?from=1&to=%v", cp["size"]), agent, "")
	must(200, "GET", "/api/v1/forensic/export", tokens[warden.RoleForensic], "")

	// Governance: every tool, and its refusals.
	tool := func(want int, token, name, args string) map[string]any {
		t.Helper()
		return must(want, "POST", "/api/v1/governance/"+name, token, args)
	}
	must(200, "GET", "/api/v1/governance", agent, "")
	must(404, "POST", "/api/v1/governance/no_such_tool", agent, `{}`)
	must(401, "POST", "/api/v1/governance/no_such_tool", "", `{}`)
	tool(200, agent, "cognitive_context", `{"include":["health","treasury","escalations","profile","incidents","guardian"]}`)
	esc := tool(200, agent, "escalate", `{"to_profile":"operator","escalation_type":"operator_request","reason":"maintenance"}`)
	tool(403, agent, "escalate", `{"to_profile":"phoenix","escalation_type":"crisis_declared","reason":"x"}`)
	tool(200, agent, "escalate_on_threat", `{"threat_id":"thr-1","threat_type":"exfiltration","confidence":0.85}`)
	tool(403, agent, "escalate_on_threat", `{"threat_id":"thr-2","threat_type":"probe","confidence":0.5}`)
	denied := tool(403, agent, "escalate_to_phoenix", `{"reason":"crisis","approved_by":"appr"}`)
	tool(200, appr, "approve_escalation", `{"request_digest":"`+denied["request_digest"].(string)+`"}`)
	tool(200, agent, "escalate_to_phoenix", `{"reason":"crisis","approved_by":"appr"}`)
	tool(200, agent, "get_active_escalations", `{}`)
	tool(403, agent, "get_active_escalations", `{"subject":"*"}`)
	tool(200, agent, "get_escalation_history", `{"limit":2}`)
	tool(200, agent, "cognitive_decide", `{"decision":"isolate host","reasoning":"burst","confidence":0.9,"evidence":["e1"]}`)
	tool(200, agent, "cognitive_invoke_tem", `{"threat_id":"thr-1","threat_type":"exfiltration","reason":"contain"}`)
	tool(403, rep, "cognitive_invoke_tem", `{"threat_id":"thr-1"}`)
	tool(200, agent, "cognitive_audit_trail", `{"limit":1}`)
	tool(200, agent, "guardian_status", `{}`)
	tool(200, agent, "guardian_anchor", `{}`)
	tool(403, rep, "guardian_anchor", `{}`)
	tool(403, agent, "phoenix_revoke_credentials", `{}`) // an agent is not human
	tool(200, agent, "phoenix_lockdown", `{"reason":"crisis"}`)
	tool(403, rep, "phoenix_lockdown", `{"reason":"crisis"}`)
	tool(403, agent, "phoenix_rotate_key", `{}`)
	tool(200, admin, "register_approver_key", `{"approver":"appr","public_key":"`+strings.Repeat("A", 43)+`="}`)
	tool(400, admin, "register_approver_key", `{"approver":"nobody","public_key":"`+strings.Repeat("A", 43)+`="}`)
	tool(200, admin, "treasury_create_budget", `{"budget_id":"ops-q3","name":"ops","allocated":100,"currency":"USD"}`)
	tool(409, admin, "treasury_create_budget", `{"budget_id":"ops-q3","name":"ops","allocated":100,"currency":"USD"}`)
	tool(200, admin, "treasury_debit", `{"budget_id":"ops-q3","amount":60,"description":"gpu","idempotency_key":"k1"}`)
	tool(409, admin, "treasury_debit", `{"budget_id":"ops-q3","amount":50,"description":"more"}`)
	tool(404, admin, "treasury_debit", `{"budget_id":"none","amount":1,"description":"x"}`)
	tool(200, admin, "treasury_credit", `{"budget_id":"ops-q3","amount":10,"description":"top-up"}`)
	tool(404, admin, "treasury_credit", `{"budget_id":"none","amount":1,"description":"x"}`)
	tool(200, agent, "treasury_balance", `{"budget_id":"ops-q3"}`)
	tool(404, agent, "treasury_balance", `{"budget_id":"none"}`)
	tool(200, agent, "deescalate", `{"escalation_id":"`+esc["escalation_id"].(string)+`","deescalation_type":"operator_release"}`)
	tool(404, agent, "deescalate", `{"escalation_id":"esc_none","deescalation_type":"operator_release"}`)
	tool(200, appr, "approve_escalation", `{"request_digest":"`+strings.Repeat("ab", 32)+`"}`)
	tool(403, agent, "approve_escalation", `{"request_digest":"`+strings.Repeat("ab", 32)+`"}`)
	env.Clock.Advance(3 * time.Hour)
	tool(200, admin, "check_expired_escalations", `{}`)
	// MCP: a session over streamable HTTP, through the validating client.
	mcpSession(t, base+"/mcp", admin, v)
	must(401, "POST", "/mcp", "", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	must(400, "POST", "/mcp", admin, `{"jsonrpc":`)

	// Every operation refuses what it must: no credential (401), a
	// credential without the route's role (403), a parameter it does not
	// take (400).
	for _, rt := range api.Routes() {
		path := strings.Replace(strings.Replace(rt.Pattern, "{seq}", "1", 1), "{tool}", "guardian_status", 1)
		body := ""
		if rt.Method == http.MethodPost {
			body = `{}`
		}
		if !rt.Public {
			must(401, rt.Method, path, "", body)
			for role, tok := range tokens {
				p := &warden.Principal{Roles: []warden.Role{role}}
				if !p.HasRole(rt.Roles...) {
					must(403, rt.Method, path, tok, body)
					break
				}
			}
		}
		if code, _ := send(rt.Method, path+"?bogus=1", admin, body); code != 400 {
			t.Errorf("%s %s?bogus=1: %d, want 400", rt.Method, path, code)
		}
	}
	for _, tl := range governor.Tools() {
		must(401, "POST", "/api/v1/governance/"+tl.Name, "", `{}`)
		must(400, "POST", "/api/v1/governance/"+tl.Name, admin, `{"no_such_argument":1}`)
	}

	// A human at phoenix rotates the key and revokes credentials.
	tool(200, human, "escalate", `{"to_profile":"operator","escalation_type":"operator_request","reason":"crisis"}`)
	tool(200, human, "escalate_on_threat", `{"threat_id":"thr-9","threat_type":"exfiltration","confidence":0.85}`)
	denied = tool(403, human, "escalate_to_phoenix", `{"reason":"crisis","approved_by":"appr"}`)
	tool(200, appr, "approve_escalation", `{"request_digest":"`+denied["request_digest"].(string)+`"}`)
	tool(200, human, "escalate_to_phoenix", `{"reason":"crisis","approved_by":"appr"}`)
	tool(200, human, "phoenix_rotate_key", `{}`)
	tool(200, human, "phoenix_revoke_credentials", `{}`)

	if missing := v.unseen(); len(missing) > 0 {
		t.Errorf("openapi.yaml lists responses no route gave in this test (document only what happens, and drive it here):\n%s", strings.Join(missing, "\n"))
	}
}

// mcpSession opens an MCP session with the SDK's client over the
// validating transport, lists and calls a tool, and closes the session:
// initialize, the initialized notification, the event stream, calls and
// the session's end all pass through v.
func mcpSession(t *testing.T, endpoint, token string, v *validator) {
	t.Helper()
	client := sdk.NewClient(&sdk.Implementation{Name: "openapi-test", Version: "1"}, nil)
	cs, err := client.Connect(context.Background(), &sdk.StreamableClientTransport{
		Endpoint: endpoint, HTTPClient: &http.Client{Transport: bearer{token, v}}}, nil)
	if err != nil {
		t.Fatalf("mcp connect: %v", err)
	}
	if _, err := cs.ListTools(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "guardian_status", Arguments: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	if err := cs.Close(); err != nil {
		t.Fatal(err)
	}

	// The same by hand: the event stream a client may hold open (GET), the
	// session's end (DELETE), and a request on an ended session.
	hc := &http.Client{Transport: bearer{token, v}}
	do := func(method, session, body string) *http.Response {
		t.Helper()
		var r io.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, endpoint, r)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "application/json, text/event-stream")
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
			req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := do("POST", "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	session := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != 200 || session == "" {
		t.Fatalf("initialize: %d, session %q", resp.StatusCode, session)
	}
	resp = do("POST", session, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	resp.Body.Close()
	stream := do("GET", session, "")
	if stream.StatusCode != 200 {
		t.Fatalf("GET /mcp: %d", stream.StatusCode)
	}
	resp = do("DELETE", session, "")
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("DELETE /mcp: %d", resp.StatusCode)
	}
	io.Copy(io.Discard, stream.Body) // ends with the session
	stream.Body.Close()
	resp = do("POST", session, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("a request on an ended session: %d, want 404", resp.StatusCode)
	}
}

// bearer adds a bearer credential to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// degraded is a server whose startup check found its log tampered with.
type degraded struct {
	base  string
	admin string
}

// tamperedServer serves an env whose log was edited behind its back and
// whose startup check found it: /health is 503 degraded, writes 503.
func tamperedServer(t *testing.T) *degraded {
	t.Helper()
	env := wardentest.MustEnv(t)
	ctx := context.Background()
	env.MustReport(t, nil, recorder.ReportRequest{Class: warden.ClassPromptInjection, Source: "agent-1", Description: "before the edit"})
	if _, err := env.Core.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+env.Dir.DBPath()+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`DROP TRIGGER receipts_append_only_update`,
		`UPDATE receipts SET body = replace(body, 'before the edit', 'nothing happened') WHERE type = 'incident_reported'`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	_ = env.Core.CheckAtStart(ctx, engine.StartupCheck{})
	if st := env.Core.Ledger().State; st != warden.LedgerTampered {
		t.Fatalf("the startup check of a tampered log says %q", st)
	}
	base, _ := env.MustServer(t)
	return &degraded{base: base, admin: env.Admin}
}

func (d *degraded) check(t *testing.T, client *http.Client) {
	t.Helper()
	for _, c := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/health", "", 503},
		{"POST", "/api/v1/incidents/report", `{"class":"prompt_injection","source":"agent-1","description":"refused"}`, 503},
		{"GET", "/api/v1/attestation/state", "", 200},
	} {
		var r io.Reader
		if c.body != "" {
			r = strings.NewReader(c.body)
		}
		req, _ := http.NewRequest(c.method, d.base+c.path, r)
		req.Header.Set("Authorization", "Bearer "+d.admin)
		if c.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Fatalf("tampered server: %s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.want)
		}
	}
}

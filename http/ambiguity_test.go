package http_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/stack"
	"github.com/warden-sh/warden/wardentest"
)

// errorBody is the API's JSON error.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// send makes one request with the given Host (if any) and Authorization
// header values, and returns the status and the decoded JSON error.
func send(t *testing.T, method, url, host string, auth []string) (int, errorBody, http.Header) {
	t.Helper()
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader("{}")
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for _, a := range auth {
		req.Header.Add("Authorization", a)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var e errorBody
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(data, &e); err != nil {
			t.Fatalf("%s %s: status %d with a body that is not the JSON error: %q", method, url, resp.StatusCode, data)
		}
	}
	return resp.StatusCode, e, resp.Header
}

// TestTwoAuthorizationHeadersAreRefused: a request carrying two
// Authorization headers is refused 400 on every authenticated route,
// whichever of them is valid, and receipted; before, the first one won
// silently.
func TestTwoAuthorizationHeadersAreRefused(t *testing.T) {
	env := wardentest.MustEnv(t, func(c *stack.Config) { c.Core.AuthFailureBurst = 1 << 20 })
	base, api := env.MustServer(t)
	reader := env.MustCredential(t, engine.CredentialSpec{Name: "reader", Roles: []warden.Role{warden.RoleRead}})
	pairs := map[string][]string{
		"admin then reader": {"Bearer " + env.Admin, "Bearer " + reader},
		"reader then admin": {"Bearer " + reader, "Bearer " + env.Admin},
		"admin twice":       {"Bearer " + env.Admin, "Bearer " + env.Admin},
		"admin then junk":   {"Bearer " + env.Admin, "Bearer wdn_unknown"},
	}
	n := 0
	for _, rt := range api.Routes() {
		if rt.Public {
			continue
		}
		n++
		path := strings.ReplaceAll(rt.Pattern, "{seq}", "0")
		for name, auth := range pairs {
			before := countAuthFailures(t, env)
			status, e, _ := send(t, rt.Method, base+path, "", auth)
			if status != http.StatusBadRequest || e.Code != warden.EINVALID || !strings.Contains(e.Error, "one Authorization header") {
				t.Fatalf("%s %s with %s: %d %+v, want 400 invalid naming the rule", rt.Method, rt.Pattern, name, status, e)
			}
			if after := countAuthFailures(t, env); after != before+1 {
				t.Fatalf("%s %s with %s: auth_failure receipts %d → %d, want one more", rt.Method, rt.Pattern, name, before, after)
			}
		}
	}
	if n < 8 {
		t.Fatalf("only %d authenticated routes", n)
	}
	// One header still works.
	if status, e, _ := send(t, "GET", base+"/api/v1/credentials", "", []string{"Bearer " + env.Admin}); status != http.StatusOK {
		t.Fatalf("one admin header: %d %+v", status, e)
	}
	last := env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptAuthFailure, Descending: true, Limit: 1})[0]
	var body engine.AuthFailure
	if err := json.Unmarshal(last.Body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Status != http.StatusBadRequest || body.Code != warden.EINVALID {
		t.Fatalf("auth_failure receipt %+v, want status 400 code invalid", body)
	}
}

// TestDevRefusesForeignHost: in --dev mode (no credential needed) every
// route — API, public, OpenAPI, metrics, unknown paths — refuses a request
// that reached the loopback listener under a foreign Host name (DNS
// rebinding) with the API's JSON 403, receipted; loopback names pass.
// Without --dev a foreign Host is fine (reverse proxies).
func TestDevRefusesForeignHost(t *testing.T) {
	env := wardentest.MustEnv(t, wardentest.Dev, func(c *stack.Config) { c.Core.AuthFailureBurst = 1 << 20 })
	base, api := env.MustServer(t)
	port := base[strings.LastIndex(base, ":"):]
	paths := [][2]string{{"GET", "/api/v1/openapi.yaml"}, {"GET", "/metrics"}, {"GET", "/nowhere"}}
	for _, rt := range api.Routes() {
		paths = append(paths, [2]string{rt.Method, strings.ReplaceAll(rt.Pattern, "{seq}", "0")})
	}
	for _, mp := range paths {
		method, path := mp[0], mp[1]
		for _, host := range []string{"rebind.example" + port, "rebind.example", "127.0.0.1.nip.io" + port, "[::2]" + port} {
			before := countAuthFailures(t, env)
			status, e, _ := send(t, method, base+path, host, nil)
			if status != http.StatusForbidden || e.Code != warden.EFORBIDDEN || !strings.Contains(e.Error, "DNS-rebinding") {
				t.Fatalf("%s %s Host %s: %d %+v, want the JSON 403", method, path, host, status, e)
			}
			if after := countAuthFailures(t, env); after != before+1 {
				t.Fatalf("%s %s Host %s: auth_failure receipts %d → %d, want one more", method, path, host, before, after)
			}
		}
		for _, host := range []string{"localhost" + port, "LOCALHOST", "127.0.0.1" + port, "127.9.9.9", "[::1]" + port} {
			if status, e, _ := send(t, method, base+path, host, nil); status == http.StatusForbidden {
				t.Fatalf("%s %s Host %s: refused %+v", method, path, host, e)
			}
		}
	}

	// Not in dev mode: a proxy's public name is fine.
	prod := wardentest.MustEnv(t)
	pbase, _ := prod.MustServer(t)
	if status, e, _ := send(t, "GET", pbase+"/api/v1/credentials", "warden.example.com", []string{"Bearer " + prod.Admin}); status != http.StatusOK {
		t.Fatalf("non-dev server behind a proxy: %d %+v", status, e)
	}
}

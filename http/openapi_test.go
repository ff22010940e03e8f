package http_test

import (
	"strings"
	"testing"

	"github.com/warden-sh/warden/http/openapi"
	"github.com/warden-sh/warden/wardentest"
	"go.yaml.in/yaml/v3"
)

// TestOpenAPIDescribesEveryRoute keeps the document true: every registered
// route and method appears in it, and nothing it lists is missing.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(openapi.Document, &doc); err != nil {
		t.Fatal(err)
	}
	env := wardentest.MustEnv(t)
	_, api := env.MustServer(t)
	seen := map[string]bool{}
	for _, rt := range api.Routes() {
		key := strings.ToLower(rt.Method) + " " + rt.Pattern
		seen[key] = true
		if _, ok := doc.Paths[rt.Pattern][strings.ToLower(rt.Method)]; !ok {
			t.Errorf("route %s %s is not in openapi.yaml", rt.Method, rt.Pattern)
		}
	}
	for path, methods := range doc.Paths {
		for m := range methods {
			if !seen[m+" "+path] && path != "/metrics" && path != "/api/v1/openapi.yaml" && path != "/mcp" {
				t.Errorf("openapi.yaml lists %s %s, which is not a route", m, path)
			}
		}
	}
}

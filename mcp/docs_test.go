package mcp_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/warden-sh/warden/engine/governor"
)

// docs/MCP.md cannot rot: its tool table is the engine's tools with their
// default minimum profiles and descriptions, and its JSON examples parse.
func TestDocsMatchTheTools(t *testing.T) {
	doc, err := os.ReadFile("../docs/MCP.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| ([a-z]+) \\| (.*) \\|$")
	got := map[string][2]string{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		got[m[1]] = [2]string{m[2], m[3]}
	}
	want := map[string][2]string{}
	for _, tl := range governor.Tools() {
		want[tl.Name] = [2]string{string(governor.DefaultAuthority[tl.Name]), tl.Description}
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("docs/MCP.md tool table (-engine +docs):\n%s", d)
	}

	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) < 3 {
		t.Fatalf("%d JSON examples, want the HTTP and stdio configurations and the error shape", len(blocks))
	}
	for _, b := range blocks {
		text := strings.ReplaceAll(b[1], "…", "")
		var v map[string]any
		if err := json.Unmarshal([]byte(text), &v); err != nil {
			t.Errorf("JSON example does not parse: %v\n%s", err, b[1])
		}
	}
}

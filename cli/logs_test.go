package cli_test

import (
	"bufio"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeAccessLog: `warden serve` writes one access line per request,
// successes included, in the format asked for: the route by its real name
// (a governance call names its tool), the status, the principal and a
// readable duration.
func TestServeAccessLog(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			s := startServer(t, filepath.Join(t.TempDir(), "data"), "--dev", "--log-format", format)
			if st := httpJSON(t, "GET", s.URL+"/health", "", nil, nil); st != 200 {
				t.Fatalf("health: %d", st)
			}
			if st := httpJSON(t, "POST", s.URL+"/api/v1/governance/guardian_status", "", map[string]any{}, nil); st != 200 {
				t.Fatalf("guardian_status: %d", st)
			}
			if st := httpJSON(t, "GET", s.URL+"/api/v1/receipts/999999", "", nil, nil); st != 404 {
				t.Fatalf("receipt 999999: %d", st)
			}
			s.stop(t) // every handler, and so every access line, has finished
			lines := accessLines(t, format, s.stderr.String())
			want := []map[string]string{
				{"method": "GET", "route": "/health", "status": "200"},
				{"method": "POST", "route": "/api/v1/governance/guardian_status", "status": "200", "principal": "dev"},
				{"method": "GET", "route": "/api/v1/receipts/999999", "status": "404", "principal": "dev"},
			}
			if len(lines) != len(want) {
				t.Fatalf("%d access lines, want %d:\n%s", len(lines), len(want), s.stderr.String())
			}
			for i, w := range want {
				for k, v := range w {
					if lines[i][k] != v {
						t.Errorf("line %d: %s = %q, want %q (%v)", i, k, lines[i][k], v, lines[i])
					}
				}
				if d, err := time.ParseDuration(lines[i]["duration"]); err != nil || d <= 0 {
					t.Errorf("line %d: duration %q is not a readable duration (%v)", i, lines[i]["duration"], err)
				}
			}
		})
	}
}

// accessLines parses the "http request" lines of a log in format, each
// as its attributes.
func accessLines(t *testing.T, format, log string) []map[string]string {
	t.Helper()
	var out []map[string]string
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		line := sc.Text()
		attrs := map[string]string{}
		switch format {
		case "json":
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("not a JSON log line: %q", line)
			}
			for k, v := range m {
				b, _ := json.Marshal(v)
				attrs[k] = strings.Trim(string(b), `"`)
			}
		case "text":
			if strings.HasPrefix(line, "{") {
				t.Fatalf("a JSON line in a text log: %q", line)
			}
			for _, kv := range splitLogfmt(line) {
				k, v, _ := strings.Cut(kv, "=")
				attrs[k] = strings.Trim(v, `"`)
			}
		}
		if attrs["msg"] == "http request" {
			out = append(out, attrs)
		}
	}
	return out
}

// splitLogfmt splits a slog text line into key=value fields, keeping
// quoted values whole.
func splitLogfmt(line string) []string {
	var fields []string
	var cur strings.Builder
	quoted := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\\' && quoted && i+1 < len(line):
			cur.WriteByte(c)
			i++
			cur.WriteByte(line[i])
		case c == '"':
			quoted = !quoted
			cur.WriteByte(c)
		case c == ' ' && !quoted:
			fields = append(fields, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(fields, cur.String())
}

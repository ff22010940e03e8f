package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/recorder"
	"github.com/warden-sh/warden/ledger"
	"github.com/warden-sh/warden/wardentest"
)

// reformatFixture exports a log whose bodies need every kind of rewriting a
// re-formatter does: nested objects, characters that are escaped one way
// by Go (<, >, &, U+2028) and another by Python (every non-ASCII one),
// numbers, and keys that sort differently by UTF-16 and by bytes.
func reformatFixture(t *testing.T) (*wardentest.Env, []byte, *ledger.Summary) {
	t.Helper()
	env := wardentest.MustEnv(t)
	for i, d := range []string{"plain", "<script>&amp; \u2028 é ü \U0001F600 \"quoted\" \\ tab\t", "ﬀ \ufb33 \U00010000 \ue000"} {
		env.MustReport(t, nil, recorder.ReportRequest{Class: warden.ClassPromptInjection, Source: "agent-1", Description: d,
			Evidence: map[string]string{"\ufb33": "x", "\U00010000": "y", "z": strings.Repeat("n", i)}})
	}
	if _, err := env.Core.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := env.Core.Export(context.Background(), &buf, env.Dir.Origin); err != nil {
		t.Fatal(err)
	}
	sum, _, err := engine.VerifyExport(bytes.NewReader(buf.Bytes()), mustVerifier(t, env))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Reformatted != 0 {
		t.Fatalf("the export as written has %d re-formatted bodies", sum.Reformatted)
	}
	return env, buf.Bytes(), sum
}

func mustVerifier(t *testing.T, env *wardentest.Env) *ledger.Verifier {
	t.Helper()
	known, _, err := ledger.ParseVerifiers([]byte(env.Dir.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return ledger.NewVerifier(known, "")
}

// eachLine rewrites every line of an export with f.
func eachLine(t *testing.T, export []byte, f func([]byte) []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	for _, l := range bytes.Split(bytes.TrimSuffix(export, []byte("\n")), []byte("\n")) {
		out.Write(f(l))
		out.WriteByte('\n')
	}
	return out.Bytes()
}

// filter runs an installed command over the export, or skips.
func filter(t *testing.T, export []byte, name string, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s is not installed", name)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(export)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out
}

// TestVerifyReformattedExport (issue 10, item 8): an export re-formatted by
// an indenting encoder, by a decode/re-encode (Go or Python json.dumps) or
// by jq verifies as the very same log, since root_hash commits to each
// body's canonical form (RFC 8785), not to its bytes; the summary says how
// many bodies were re-formatted. Without the canonical check every body
// was "edited".
func TestVerifyReformattedExport(t *testing.T) {
	env, export, want := reformatFixture(t)
	reencode := func(l []byte) []byte {
		var v any
		dec := json.NewDecoder(bytes.NewReader(l))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		out, err := json.MarshalIndent(v, "", "\t") // keys by bytes, <>& as \u003c…
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for name, reformat := range map[string]func(t *testing.T) []byte{
		"json.Indent": func(t *testing.T) []byte {
			return eachLine(t, export, func(l []byte) []byte {
				var b bytes.Buffer
				if err := json.Indent(&b, l, "", "    "); err != nil {
					t.Fatal(err)
				}
				return b.Bytes()
			})
		},
		"encoding/json decode and MarshalIndent": func(t *testing.T) []byte { return eachLine(t, export, reencode) },
		"jq .":                                   func(t *testing.T) []byte { return filter(t, export, "jq", ".") },
		"jq -S -c":                               func(t *testing.T) []byte { return filter(t, export, "jq", "-S", "-c", ".") },
		"python json.dumps": func(t *testing.T) []byte {
			return filter(t, export, "python3", "-c",
				"import json,sys\nfor l in sys.stdin: print(json.dumps(json.loads(l), indent=2, sort_keys=True))")
		},
	} {
		t.Run(name, func(t *testing.T) {
			re := reformat(t)
			if bytes.Equal(re, export) {
				t.Fatal("the re-formatted export is the export")
			}
			sum, _, err := engine.VerifyExport(bytes.NewReader(re), mustVerifier(t, env))
			if err != nil {
				t.Fatalf("re-formatted export: %v", err)
			}
			if sum.Count != want.Count || !bytes.Equal(sum.Root, want.Root) || sum.Checkpoints != want.Checkpoints {
				t.Fatalf("verified %+v, want the log %+v", sum, want)
			}
			if sum.Reformatted == 0 || !strings.Contains(sum.String(), "re-formatted and verified in their canonical form") {
				t.Fatalf("summary does not say bodies were re-formatted: %s", sum)
			}
		})
	}
}

// TestVerifyReformattedExportCatchesEdits: re-formatting is no cover for an
// edit. A changed value fails as "body edited" at its receipt, and so does
// a number that reads as the same double but another decimal (a reader that
// keeps decimals would see another value than the one signed); a repeated
// key (readers disagree on which copy counts) is refused at its line.
func TestVerifyReformattedExportCatchesEdits(t *testing.T) {
	env, export, _ := reformatFixture(t)
	lines := strings.Split(strings.TrimSuffix(string(export), "\n"), "\n")
	// The first incident_reported receipt: its body has "number":1.
	target, seq := -1, uint64(0)
	for i, l := range lines {
		var r warden.Receipt
		if json.Unmarshal([]byte(l), &r) == nil && r.Type == "incident_reported" {
			target, seq = i, r.Seq
			break
		}
	}
	if target < 0 || !strings.Contains(lines[target], `"number":1,`) {
		t.Fatalf("no incident_reported receipt with \"number\":1 in %s", export)
	}
	indent := func(l string) string {
		var b bytes.Buffer
		if err := json.Indent(&b, []byte(l), "", "  "); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	for name, c := range map[string]struct {
		edit func(string) string
		want string
	}{
		"value changed": {func(l string) string { return strings.Replace(indent(l), `"plain"`, `"plain!"`, 1) }, "body edited"},
		"repeated key": {func(l string) string {
			return strings.Replace(indent(l), `"number": 1,`, `"number": 2, "number": 1,`, 1)
		}, "duplicate key \"number\""},
		"number past a double's precision": {func(l string) string {
			return strings.Replace(indent(l), `"number": 1,`, `"number": 1.0000000000000001,`, 1)
		}, "is not exactly 1"},
	} {
		t.Run(name, func(t *testing.T) {
			edited := append([]string(nil), lines...)
			edited[target] = c.edit(edited[target])
			if edited[target] == indent(lines[target]) {
				t.Fatal("the edit changed nothing")
			}
			_, _, err := engine.VerifyExport(strings.NewReader(strings.Join(edited, "\n")+"\n"), mustVerifier(t, env))
			var ve *ledger.VerifyError
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if asVerify(err, &ve) && ve.Seq != seq {
				t.Fatalf("blamed seq %d, want %d: %v", ve.Seq, seq, err)
			}
		})
	}
}

func asVerify(err error, ve **ledger.VerifyError) bool {
	v, ok := err.(*ledger.VerifyError)
	if ok {
		*ve = v
	}
	return ok
}

// TestVerifyExportNamesLines: errors name the line a value starts on, in an
// export whose values span several lines too.
func TestVerifyExportNamesLines(t *testing.T) {
	env, export, _ := reformatFixture(t)
	pretty := filterIndent(t, export)
	// Break the third value (the second checkpoint or a receipt).
	values := bytes.SplitAfter(pretty, []byte("\n}\n"))
	line := 1 + bytes.Count(bytes.Join(values[:2], nil), []byte("\n"))
	values[2] = append([]byte(`{"seq": "x",`), values[2][1:]...)
	_, _, err := engine.VerifyExport(bytes.NewReader(bytes.Join(values, nil)), mustVerifier(t, env))
	if err == nil || !(strings.Contains(err.Error(), "export line "+strconv.Itoa(line)+":") || strings.Contains(err.Error(), "export line "+strconv.Itoa(line)+" ")) {
		t.Fatalf("err = %v, want it to name line %d", err, line)
	}
}

func filterIndent(t *testing.T, export []byte) []byte {
	return eachLine(t, export, func(l []byte) []byte {
		var b bytes.Buffer
		if err := json.Indent(&b, l, "", " "); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	})
}

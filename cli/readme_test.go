package cli_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeSection returns the indented code blocks of the README section
// headed title, in order, as one script.
func readmeSection(t *testing.T, title string) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "\n## "+title+"\n")
	if i < 0 {
		t.Fatalf("README has no section %q", title)
	}
	text = text[i+1:]
	if j := strings.Index(text[3:], "\n## "); j >= 0 {
		text = text[:j+3]
	}
	var script []string
	for _, line := range strings.Split(text, "\n") {
		if code, ok := strings.CutPrefix(line, "    "); ok {
			script = append(script, code)
		}
	}
	if len(script) == 0 {
		t.Fatalf("README section %q has no code", title)
	}
	return strings.Join(script, "\n") + "\n"
}

// TestReadmeFirstSession runs the README's "A first session" blocks as a
// newcomer pastes them: the server started in the background, the curls
// at once (the first must wait for it to listen), the server stopped with
// kill %1, then the offline checks. Only what a test must change is
// changed: the binary is the one this test built (not `go build` in a
// checkout), the port is a free one (WARDEN_ADDR), and the step-10 compat
// ports stay closed so parallel runs do not contend for them.
func TestReadmeFirstSession(t *testing.T) {
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	script := readmeSection(t, "A first session")
	port := freePort(t)
	for _, r := range []struct{ old, new string }{
		{"go build -o warden ./cmd/warden", `cp "$WARDEN_BIN" warden`},
		{"localhost:8515", "localhost:" + port},
		{"serve --dev", "serve --dev --compat-ports=false"},
	} {
		if !strings.Contains(script, r.old) {
			t.Fatalf("the README's first session no longer says %q; update this test:\n%s", r.old, script)
		}
		script = strings.ReplaceAll(script, r.old, r.new)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", "set -euo pipefail\n"+script)
	cmd.Dir = t.TempDir()
	cmd.Env = append(cleanEnv(), "WARDEN_BIN="+bin, "WARDEN_ADDR=127.0.0.1:"+port)
	// Its own process group, so a failed run leaves no server behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	t.Cleanup(func() {
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	})
	// A file, not a pipe: a server left running must not hold Run open.
	outFile, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = outFile, outFile
	err = cmd.Run()
	outFile.Close()
	out, rerr := os.ReadFile(outFile.Name())
	if rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil {
		t.Fatalf("the first session failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		`"status":"ok"`,         // /health
		`"type":"server_start"`, // the system scroll
		`"origin":`,             // the checkpoint
		"Admin credential",      // printed on first start
		"ok: ",                  // verify --data and verify --export
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	if n := strings.Count(string(out), "ok: "); n != 2 {
		t.Errorf("want both verifications ok, got %d:\n%s", n, out)
	}
	if _, err := os.Stat(filepath.Join(cmd.Dir, "receipts.jsonl")); err != nil {
		t.Errorf("export: %v", err)
	}
}

// freePort returns a loopback port nothing listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// cleanEnv is the environment without warden's own variables, so the
// README runs on its defaults.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WARDEN_") && !strings.HasPrefix(kv, "DRILL_MODE=") {
			env = append(env, kv)
		}
	}
	return env
}

// TestServeBusyPortBurnsNoToken: serve binds its ports before it creates
// the data directory and prints the one-time admin token, so a busy port
// leaves neither behind.
func TestServeBusyPortBurnsNoToken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	data := filepath.Join(t.TempDir(), "data")
	for _, args := range [][]string{{}, {"--dev"}} {
		args = append([]string{"serve", "--data", data, "--addr", ln.Addr().String(), "--compat-ports=false"}, args...)
		code, out, errs := run(t, args...)
		if code == 0 || !strings.Contains(errs, "listen") {
			t.Errorf("%v on a busy port: exit %d, stderr %q", args, code, errs)
		}
		if out != "" || strings.Contains(errs, "token") {
			t.Errorf("%v on a busy port printed %q (stderr %q)", args, out, errs)
		}
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			t.Fatalf("%v on a busy port left the data directory (%v)", args, err)
		}
	}

	// The step 10 ports, when asked for, are bound first too. (On
	// 127.0.0.2, so a dev server on this machine keeps its own.)
	compat, err := net.Listen("tcp", "127.0.0.2:8505")
	if err != nil {
		t.Skipf("cannot hold 127.0.0.2:8505 for the test: %v", err)
	}
	defer compat.Close()
	code, out, errs := run(t, "serve", "--data", data, "--addr", "127.0.0.2:0", "--compat-ports")
	if code == 0 || !strings.Contains(errs, "--compat-ports") || out != "" {
		t.Errorf("--compat-ports with :8505 busy: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("--compat-ports with :8505 busy left the data directory (%v)", err)
	}
}

// TestServeFailedFirstStartBurnsNoAdmin: a first start that fails after
// creating the data directory (here a policy file that does not exist)
// leaves no store without an admin: the next start mints it. The failure
// reads as a sentence, not a debugging form.
func TestServeFailedFirstStartBurnsNoAdmin(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	code, _, errs := run(t, "serve", "--data", data, "--addr", "127.0.0.1:0", "--compat-ports=false",
		"--policy", filepath.Join(t.TempDir(), "missing.yaml"))
	if code != 2 || !strings.Contains(errs, "missing.yaml") || strings.Contains(errs, "code=") {
		t.Fatalf("serve with a missing policy: exit %d, stderr %q", code, errs)
	}
	startServer(t, data).stop(t)
	code, out, errs := run(t, "credential", "list", "--data", data, "--json")
	if code != 0 || !strings.Contains(out, `"admin"`) {
		t.Fatalf("after the second start: credential list exit %d, %s %s", code, out, errs)
	}
}

package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// alwaysOK is a containment target that answers every call 200, the way a
// healthy agent, airlock or registry does, on a pooled keep-alive server.
type alwaysOK struct {
	srv   *http.Server
	URL   string
	calls atomic.Int64
}

func startAlwaysOK() (*alwaysOK, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t := &alwaysOK{URL: "http://" + ln.Addr().String()}
	t.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		t.calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`)
	}), ReadHeaderTimeout: 10 * time.Second}
	go t.srv.Serve(ln)
	return t, nil
}

func (t *alwaysOK) Close() { t.srv.Close() }

// embeddedServer is a `warden serve` child process on a temporary data
// directory whose containment policy points every target at target: the
// path a user's reports take, with a live target, on a real server.
type embeddedServer struct {
	dir   string
	cmd   *exec.Cmd
	URL   string
	Token string
	done  chan error
}

// startEmbedded initialises a data directory with `warden init`, writes a
// policy whose targets are target, and starts `warden serve` on it.
func startEmbedded(ctx context.Context, bin, target string, extra ...string) (*embeddedServer, error) {
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "warden-bench-http-")
	if err != nil {
		return nil, err
	}
	s := &embeddedServer{dir: dir, done: make(chan error, 1)}
	data := filepath.Join(dir, "data")
	out, err := exec.CommandContext(ctx, bin, "init", "--data", data, "--json").Output()
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("bench http: warden init: %w", err)
	}
	var init struct{ Token string }
	if err := json.Unmarshal(out, &init); err != nil || init.Token == "" {
		s.Close()
		return nil, fmt.Errorf("bench http: warden init printed no token: %s", out)
	}
	s.Token = init.Token
	// The default policy, with every target at the always-200 one.
	pol, err := os.ReadFile(filepath.Join(data, "containment.yaml"))
	if err != nil {
		s.Close()
		return nil, err
	}
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(string(pol)))
	for sc.Scan() {
		line := sc.Text()
		for _, k := range []string{"agent:", "airlock:", "registry:"} {
			if strings.HasPrefix(strings.TrimSpace(line), k) && strings.Contains(line, "http://") {
				line = "  " + k + " " + target
			}
		}
		b.WriteString(line + "\n")
	}
	policy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte(b.String()), 0o600); err != nil {
		s.Close()
		return nil, err
	}
	ready := filepath.Join(dir, "ready")
	args := append([]string{"serve", "--data", data, "--policy", policy, "--addr", "127.0.0.1:0", "--ready-file", ready,
		"--integrity-interval", "0", "--log-level", "error"}, extra...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = io.Discard, io.Discard
	if err := s.cmd.Start(); err != nil {
		s.Close()
		return nil, err
	}
	go func() { s.done <- s.cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if addr, err := os.ReadFile(ready); err == nil && strings.HasSuffix(string(addr), "\n") {
			s.URL = "http://" + strings.TrimSpace(string(addr))
			return s, nil
		}
		select {
		case err := <-s.done:
			s.cmd = nil
			s.Close()
			return nil, fmt.Errorf("bench http: warden serve exited: %v", err)
		case <-time.After(20 * time.Millisecond): // waiting for a real process to listen
		}
		if time.Now().After(deadline) {
			s.Close()
			return nil, fmt.Errorf("bench http: warden serve did not start within a minute")
		}
	}
}

// cpuSeconds returns the CPU time (user and system) the server process has
// used so far, from /proc (Linux); ok is false where it cannot be read.
func (s *embeddedServer) cpuSeconds() (float64, bool) {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0, false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0, false
	}
	// Fields after the parenthesised command name: state is field 3,
	// utime and stime fields 14 and 15, in clock ticks (USER_HZ, 100 on
	// Linux).
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return (ut + st) / 100, true
}

// Close stops the server (as SIGTERM would) and removes its data.
func (s *embeddedServer) Close() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
		}
	}
	os.RemoveAll(s.dir)
}

package cli_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/cli"
)

// TestCredentialHumanCLI: `credential add --human` and `credential human
// NAME true|false` set the attribute, on the data directory and through a
// server (--url, as admin), and `credential list` shows it.
func TestCredentialHumanCLI(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	code, out, _ := run(t, "init", "--data", data, "--json")
	if code != 0 {
		t.Fatal(out)
	}
	var init struct{ Token string }
	json.Unmarshal([]byte(out), &init)
	cred := func(args ...string) *warden.Credential {
		t.Helper()
		code, out, errs := run(t, append(args, "--json")...)
		if code != 0 {
			t.Fatalf("warden %s: %d %s %s", strings.Join(args, " "), code, out, errs)
		}
		var c warden.Credential
		if err := json.Unmarshal([]byte(out), &c); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return &c
	}
	if c := cred("credential", "add", "--data", data, "--name", "alice", "--role", "approver", "--human"); !c.Human {
		t.Fatalf("add --human: %+v", c)
	}
	if c := cred("credential", "add", "--data", data, "--name", "bot", "--role", "read"); c.Human {
		t.Fatalf("add without --human: %+v", c)
	}
	if c := cred("credential", "human", "--data", data, "alice", "false"); c.Human {
		t.Fatalf("human alice false: %+v", c)
	}
	if code, _, errs := run(t, "credential", "human", "--data", data, "alice", "maybe"); code != cli.ExitUsage || !strings.Contains(errs, "true or false") {
		t.Fatalf("human alice maybe: %d %s", code, errs)
	}

	s := startServer(t, data)
	t.Setenv("WARDEN_TOKEN", init.Token)
	if c := cred("credential", "human", "--url", s.URL, "bot", "true"); !c.Human || c.Name != "bot" {
		t.Fatalf("human bot true through the server: %+v", c)
	}
	code, out, errs := run(t, "credential", "list", "--url", s.URL)
	if code != 0 {
		t.Fatal(errs)
	}
	human := map[string]string{}
	for _, line := range strings.Split(out, "\n")[1:] {
		if f := strings.Fields(line); len(f) > 2 {
			human[f[0]] = f[2]
		}
	}
	if human["alice"] != "no" || human["bot"] != "yes" || human["admin"] != "no" {
		t.Fatalf("list:\n%s", out)
	}
}

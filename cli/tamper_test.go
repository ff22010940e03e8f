package cli_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/cli"
	"github.com/warden-sh/warden/datadir"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/ledger"
	"github.com/warden-sh/warden/sqlite"
	_ "modernc.org/sqlite"
)

// buildStoppedLog makes a data directory whose log has 1 bootstrap receipt
// and n credential receipts, checkpointed at size 5 and at the end, and
// closes it, as a stopped server leaves it.
func buildStoppedLog(t *testing.T, n int) string {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	dir, err := datadir.Init(data)
	if err != nil {
		t.Fatal(err)
	}
	st, core := openCore(t, dir)
	ctx := context.Background()
	if _, err := core.Bootstrap(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	admin := &warden.Principal{Name: "t", Roles: []warden.Role{warden.RoleAdmin}}
	for i := 0; i < n; i++ {
		if _, err := core.AddCredential(ctx, admin, engine.CredentialSpec{Name: fmt.Sprintf("cred-%02d", i), Roles: []warden.Role{warden.RoleRead}}); err != nil {
			t.Fatal(err)
		}
		if i == 3 {
			if _, err := core.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := core.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return data
}

// openCore opens dir's store and the engine core on it, as a server would,
// without starting anything.
func openCore(t *testing.T, dir *datadir.Dir) (*sqlite.DB, *engine.Core) {
	t.Helper()
	st, err := sqlite.Open(dir.DBPath(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	core, err := engine.New(engine.Options{Store: st, Signer: dir.Signer, PublicKey: dir.PublicKey})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	return st, core
}

// headAt returns the SQL that sets the cached ledger head to the tree of
// the first size receipts, as an attacker covering a truncation would.
func headAt(t *testing.T, data string, size uint64) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, datadir.DBFile)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT leaf_hash FROM receipts WHERE seq < ? ORDER BY seq`, size)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	tree := ledger.NewTree()
	for rows.Next() {
		var leaf []byte
		if err := rows.Scan(&leaf); err != nil {
			t.Fatal(err)
		}
		if err := tree.Append(leaf, nil); err != nil {
			t.Fatal(err)
		}
	}
	return fmt.Sprintf(`UPDATE ledger_head SET size = %d, state = x'%x' WHERE id = 1`, tree.Size(), tree.State())
}

// copyDir copies a stopped data directory.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	// CopyFS drops the modes, which datadir checks.
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		return os.Chmod(filepath.Join(dst, rel), fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// attack opens the stopped database as an attacker would: directly, with
// the append-only triggers dropped.
func attack(t *testing.T, data string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, datadir.DBFile)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'trigger'`)
	if err != nil {
		t.Fatal(err)
	}
	var triggers []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		triggers = append(triggers, n)
	}
	rows.Close()
	for _, tr := range triggers {
		if _, err := db.Exec(`DROP TRIGGER ` + tr); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// forgedRow returns an INSERT for a receipt at seq whose hashes are all
// correctly computed: only a signed checkpoint can expose it.
func forgedRow(t *testing.T, seq uint64) string {
	t.Helper()
	r, leaf, err := ledger.NewReceipt(seq, warden.Draft{Type: warden.ReceiptCredential, Scroll: warden.ScrollIdentity,
		Tags: []string{"credential"}, Time: wardenNow(), Body: map[string]any{"name": "backdoor", "roles": []string{"admin"}, "by": "admin"}})
	if err != nil {
		t.Fatal(err)
	}
	tags, _ := json.Marshal(r.Tags)
	return fmt.Sprintf(`INSERT INTO receipts (seq, schema_version, type, timestamp, scroll, tags, root_hash, body, leaf_hash) VALUES (%d, '%s', '%s', '%s', '%s', '%s', '%s', '%s', x'%x')`,
		seq, r.SchemaVersion, r.Type, r.Timestamp, r.Scroll, tags, r.RootHash, strings.ReplaceAll(string(r.Body), "'", "''"), leaf)
}

func TestVerifyNamesFirstBadSequenceNumberOnDiskTamper(t *testing.T) {
	const n = 10 // receipts 0..10, checkpoints at 5 and 11
	cases := []struct {
		name    string
		stmts   func(t *testing.T) []string
		wantSeq uint64
	}{
		{"edit one byte of a body", func(*testing.T) []string {
			return []string{`UPDATE receipts SET body = replace(body, 'cred-04', 'cred-0X') WHERE seq = 5`}
		}, 5},
		{"change a type", func(*testing.T) []string {
			return []string{`UPDATE receipts SET type = 'credential_revoked' WHERE seq = 7`}
		}, 7},
		{"change a timestamp", func(*testing.T) []string {
			return []string{`UPDATE receipts SET timestamp = '2020-01-01T00:00:00Z' WHERE seq = 2`}
		}, 2},
		{"delete a row", func(*testing.T) []string { return []string{`DELETE FROM receipts WHERE seq = 6`} }, 6},
		{"swap two rows", func(*testing.T) []string {
			return []string{
				`UPDATE receipts SET seq = 999999 WHERE seq = 3`,
				`UPDATE receipts SET seq = 3 WHERE seq = 8`,
				`UPDATE receipts SET seq = 8 WHERE seq = 999999`,
			}
		}, 3},
		{"truncate", func(*testing.T) []string { return []string{`DELETE FROM receipts WHERE seq >= 9`} }, 9},
		{"truncate below a checkpoint and its successors", func(*testing.T) []string {
			return []string{`DELETE FROM receipts WHERE seq >= 4`, `DELETE FROM checkpoints WHERE size > 5`}
		}, 4},
		{"insert a forged row at the end", func(t *testing.T) []string { return []string{forgedRow(t, n+1)} }, n + 1},
		{"replace a row with a self-consistent forgery", func(t *testing.T) []string {
			return []string{`DELETE FROM receipts WHERE seq = 8`, forgedRow(t, 8)}
		}, 5},
		{"forge the latest checkpoint", func(*testing.T) []string {
			return []string{`UPDATE checkpoints SET note = replace(note, '— ', '— x') WHERE size = 11`}
		}, 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := buildStoppedLog(t, n)
			if code, out, errs := run(t, "verify", "--data", data); code != 0 {
				t.Fatalf("untampered log fails: %d %s %s", code, out, errs)
			}
			export := filepath.Join(t.TempDir(), "before.jsonl")
			if code, _, errs := run(t, "export", "receipts", "--data", data, "-o", export); code != 0 {
				t.Fatal(errs)
			}
			attack(t, data, tc.stmts(t)...)
			code, _, errs := run(t, "verify", "--data", data)
			want := fmt.Sprintf("first bad sequence number %d:", tc.wantSeq)
			if code != cli.ExitVerify || !strings.Contains(errs, want) {
				t.Fatalf("verify: exit %d, stderr %q; want exit %d naming %q", code, errs, cli.ExitVerify, want)
			}
			var failed struct {
				OK          *bool   `json:"ok"`
				FirstBadSeq *uint64 `json:"first_bad_seq"`
			}
			code, out, _ := run(t, "verify", "--data", data, "--json")
			if err := json.Unmarshal([]byte(out), &failed); err != nil || code != cli.ExitVerify || failed.OK == nil || *failed.OK ||
				failed.FirstBadSeq == nil || *failed.FirstBadSeq != tc.wantSeq {
				t.Fatalf("verify --json: exit %d, %v, stdout %q", code, err, out)
			}
			// The tampered store exported and verified offline fails too.
			after := filepath.Join(t.TempDir(), "after.jsonl")
			if code, _, errs := run(t, "export", "receipts", "--data", data, "-o", after); code != 0 {
				t.Fatal(errs)
			}
			pub := filepath.Join(data, datadir.PubFile)
			code, _, errs = run(t, "verify", "--export", after, "--pubkey", pub)
			if code != cli.ExitVerify || !strings.Contains(errs, want) {
				t.Fatalf("verify --export: exit %d, stderr %q; want %q", code, errs, want)
			}
			// The export taken before the attack still verifies.
			if code, _, errs := run(t, "verify", "--export", export, "--pubkey", pub); code != 0 {
				t.Fatalf("pre-attack export: %d %s", code, errs)
			}
		})
	}
}

func TestVerifyRejectsAnotherKey(t *testing.T) {
	data := buildStoppedLog(t, 3)
	other, err := ledger.GenerateKeys("warden/someone-else")
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(t.TempDir(), "other.pub")
	os.WriteFile(pub, []byte(other.Verifier+"\n"), 0o644)
	code, _, errs := run(t, "verify", "--data", data, "--pubkey", pub)
	if code != cli.ExitVerify || !strings.Contains(errs, "first bad sequence number 0:") {
		t.Fatalf("verify with a foreign key: %d %s", code, errs)
	}
}

func TestExportVerifyEditedExport(t *testing.T) {
	data := buildStoppedLog(t, 6)
	export := filepath.Join(t.TempDir(), "x.jsonl")
	if code, _, errs := run(t, "export", "receipts", "--data", data, "-o", export); code != 0 {
		t.Fatal(errs)
	}
	b, _ := os.ReadFile(export)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	// header, 2 checkpoints, then receipts 0..6.
	if len(lines) != 1+2+7 {
		t.Fatalf("export has %d lines", len(lines))
	}
	pub := filepath.Join(data, datadir.PubFile)
	edits := map[string]struct {
		mutate func([]string) []string
		seq    uint64
	}{
		"reorder":  {func(l []string) []string { l[3+2], l[3+4] = l[3+4], l[3+2]; return l }, 2},
		"drop":     {func(l []string) []string { return append(l[:3+3], l[3+4:]...) }, 3},
		"truncate": {func(l []string) []string { return l[:3+5] }, 5},
		"duplicate": {func(l []string) []string {
			return append(l[:3+2], append([]string{l[3+1]}, l[3+2:]...)...)
		}, 2},
		"edit body": {func(l []string) []string { l[3+4] = strings.Replace(l[3+4], "cred-", "cred_", 1); return l }, 4},
	}
	for name, e := range edits {
		t.Run(name, func(t *testing.T) {
			l := e.mutate(append([]string{}, lines...))
			f := filepath.Join(t.TempDir(), "e.jsonl")
			os.WriteFile(f, []byte(strings.Join(l, "\n")+"\n"), 0o644)
			code, _, errs := run(t, "verify", "--export", f, "--pubkey", pub)
			want := fmt.Sprintf("first bad sequence number %d:", e.seq)
			if code != cli.ExitVerify || !strings.Contains(errs, want) {
				t.Fatalf("exit %d %q, want %q", code, errs, want)
			}
		})
	}
}

// TestVerifyWithSavedCheckpointCatchesStrippedTail: an attacker who deletes
// the tail AND every checkpoint covering it leaves a log that is consistent
// on its own; a checkpoint saved earlier exposes it.
func TestVerifyWithSavedCheckpointCatchesStrippedTail(t *testing.T) {
	data := buildStoppedLog(t, 8)
	code, out, _ := run(t, "receipts", "list", "--data", data, "--json")
	if code != 0 {
		t.Fatal(out)
	}
	saved := filepath.Join(t.TempDir(), "cp.note")
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, datadir.DBFile)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	var note string
	if err := db.QueryRow(`SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1`).Scan(&note); err != nil {
		t.Fatal(err)
	}
	db.Close()
	os.WriteFile(saved, []byte(note), 0o644)
	careless := copyDir(t, data)
	attack(t, careless, `DELETE FROM receipts WHERE seq >= 5`, `DELETE FROM checkpoints WHERE size > 5`)
	if code, _, errs := run(t, "verify", "--data", careless); code != cli.ExitVerify || !strings.Contains(errs, "first bad sequence number 5:") {
		t.Fatalf("a stripped tail with the ledger head left as it was: %d %s", code, errs)
	}
	// A thorough attacker also rewrites the cached head and drops the rows
	// the stripped receipts created, leaving a log consistent on its own.
	attack(t, data, `DELETE FROM receipts WHERE seq >= 5`, `DELETE FROM checkpoints WHERE size > 5`,
		`DELETE FROM credentials WHERE name >= 'cred-04'`, headAt(t, data, 5))
	if code, _, errs := run(t, "verify", "--data", data); code != 0 {
		t.Fatalf("without the saved checkpoint the stripped log should look consistent: %d %s", code, errs)
	}
	code, _, errs := run(t, "verify", "--data", data, "--checkpoint", saved)
	if code != cli.ExitVerify || !strings.Contains(errs, "first bad sequence number 5:") {
		t.Fatalf("with the saved checkpoint: %d %s", code, errs)
	}
}

// TestOfflineCommandsSignWhatTheyAppend: receipts an offline command
// appends (credential add/revoke on the data directory) are covered by a
// checkpoint it signs on the way out, so verify passes; but a tail that no
// checkpoint covered before the command ran stays uncovered, for verify to
// report.
func TestOfflineCommandsSignWhatTheyAppend(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	if code, _, errs := run(t, "init", "--data", data); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := run(t, "credential", "add", "--data", data, "--name", "bob", "--role", "read"); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := run(t, "credential", "revoke", "--data", data, "bob"); code != 0 {
		t.Fatal(errs)
	}
	if code, out, errs := run(t, "verify", "--data", data); code != 0 {
		t.Fatalf("after offline credential commands: %d %s %s", code, out, errs)
	}

	// A receipt appended with no checkpoint after it, as by a server that
	// died before signing.
	data = buildStoppedLog(t, 4)
	dir, err := datadir.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	st, core := openCore(t, dir)
	admin := &warden.Principal{Name: "t", Roles: []warden.Role{warden.RoleAdmin}}
	if _, err := core.AddCredential(t.Context(), admin, engine.CredentialSpec{Name: "unsigned", Roles: []warden.Role{warden.RoleRead}}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if code, _, errs := run(t, "credential", "add", "--data", data, "--name", "carol", "--role", "read"); code != 0 {
		t.Fatal(errs)
	}
	code, _, errs := run(t, "verify", "--data", data)
	if code != cli.ExitVerify || !strings.Contains(errs, "first bad sequence number 5:") {
		t.Fatalf("an offline command vouched for a tail nobody had signed: %d %s", code, errs)
	}
}

package datadir_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/warden-sh/warden/datadir"
	"github.com/warden-sh/warden/ledger"
)

func TestInitLoadAndModes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d")
	d, err := datadir.Init(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(d.Origin, "warden/") || d.Signer.Name() != d.Origin || len(d.HMACKey) != 32 ||
		len(d.WebhookKey) != 32 || bytes.Equal(d.HMACKey, d.WebhookKey) {
		t.Fatalf("init: %+v", d)
	}
	if _, err := datadir.Init(path); err == nil {
		t.Fatal("a second init replaced the keys")
	}
	l, err := datadir.Load(path)
	if err != nil || l.Origin != d.Origin || l.PublicKey != d.PublicKey {
		t.Fatalf("load: %v", err)
	}
	// A private key readable by others is refused.
	os.Chmod(filepath.Join(path, datadir.KeyFile), 0o644)
	if _, err := datadir.Load(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key accepted: %v", err)
	}
	if _, err := datadir.Load(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Fatal("loaded an empty directory")
	}
}

func TestMirrorNeverOverwrites(t *testing.T) {
	m := datadir.Mirror{Dir: filepath.Join(t.TempDir(), "mirror")}
	if err := m.Put("checkpoint-1.note", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := m.Put("checkpoint-1.note", []byte("b")); err == nil {
		t.Fatal("mirror overwrote an anchored checkpoint")
	}
	for _, bad := range []string{"", ".", "..", "a/b", `a\b`} {
		if err := m.Put(bad, []byte("x")); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
	b, _ := os.ReadFile(filepath.Join(m.Dir, "checkpoint-1.note"))
	if string(b) != "a" {
		t.Fatalf("mirror content %q", b)
	}
}

func TestKeyStagingCommitAndAbandon(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d")
	d, err := datadir.Init(path)
	if err != nil {
		t.Fatal(err)
	}
	first := d.PublicKey
	k, _ := ledger.GenerateKeys(d.Origin)
	if err := d.StageKey(k.Signer, k.Verifier); err != nil {
		t.Fatal(err)
	}
	if d.StagedKey() != k.Verifier {
		t.Fatalf("staged %q", d.StagedKey())
	}
	d.AbandonKey()
	if d.StagedKey() != "" {
		t.Fatal("abandoned key still staged")
	}
	if err := d.StageKey(k.Signer, k.Verifier); err != nil {
		t.Fatal(err)
	}
	if err := d.CommitKey(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(d.PublicKey), "\n")
	if len(lines) != 2 || lines[0] != first || lines[1] != k.Verifier {
		t.Fatalf("ledger.pub after rotation: %q", d.PublicKey)
	}
	reloaded, err := datadir.Load(path)
	if err != nil || reloaded.Signer.KeyHash() == 0 || reloaded.PublicKey != d.PublicKey {
		t.Fatalf("reload after rotation: %v", err)
	}
	if _, vs, _ := ledger.ParseVerifiers([]byte(reloaded.PublicKey)); vs[1].KeyHash() != reloaded.Signer.KeyHash() {
		t.Fatal("the current signer is not the newest public key")
	}
}

// TestEnsureWebhookKeyForOlderDirectories: a directory from before
// webhooks had their own key loads without one (loading writes nothing);
// EnsureWebhookKey creates it (0600, distinct from the forensic key) and
// says so once; racing processes end up with the same key.
func TestEnsureWebhookKeyForOlderDirectories(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d")
	d, err := datadir.Init(path)
	if err != nil {
		t.Fatal(err)
	}
	if created, err := d.EnsureWebhookKey(); err != nil || created {
		t.Fatalf("a new directory's key was created again: %v %v", created, err)
	}
	if err := os.Remove(filepath.Join(path, datadir.WebhookFile)); err != nil {
		t.Fatal(err)
	}
	l, err := datadir.Load(path)
	if err != nil || l.WebhookKey != nil {
		t.Fatalf("load of an older directory: %v %x", err, l.WebhookKey)
	}
	if _, err := os.Stat(filepath.Join(path, datadir.WebhookFile)); !os.IsNotExist(err) {
		t.Fatalf("Load wrote the webhook key: %v", err)
	}
	keys := make([][]byte, 8)
	created := make([]bool, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			d, err := datadir.Load(path)
			if err != nil {
				t.Error(err)
				return
			}
			if created[i], err = d.EnsureWebhookKey(); err != nil {
				t.Error(err)
			}
			keys[i] = d.WebhookKey
		})
	}
	wg.Wait()
	n := 0
	for i := range keys {
		if created[i] {
			n++
		}
		if len(keys[i]) != 32 || !bytes.Equal(keys[i], keys[0]) || bytes.Equal(keys[i], l.HMACKey) {
			t.Fatalf("process %d has key %x, process 0 %x", i, keys[i], keys[0])
		}
	}
	st, err := os.Stat(filepath.Join(path, datadir.WebhookFile))
	if n != 1 || err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("%d processes created the key; file %v %v", n, st, err)
	}
	entries, _ := os.ReadDir(path)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Fatalf("left behind %s", e.Name())
		}
	}
}

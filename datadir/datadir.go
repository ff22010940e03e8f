// Package datadir lays out and loads a warden data directory: the SQLite
// database, the ledger signing key, its public key and the HMAC keys.
//
//	DIR/             0700
//	DIR/warden.db    SQLite database (WAL files beside it)
//	DIR/ledger.key   ed25519 signed-note private key, 0600
//	DIR/ledger.pub   signed-note public key, 0644: give it to verifiers
//	DIR/hmac.key     32 random bytes, hex, 0600: the forensic key (bundle HMACs)
//	DIR/webhook.key  32 random bytes, hex, 0600: webhook signatures; share it
//	                 with webhook receivers. A separate key, so a receiver
//	                 that can check webhooks cannot forge forensic bundles.
package datadir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/warden-sh/warden/ledger"
	"golang.org/x/mod/sumdb/note"
)

// File names inside a data directory.
const (
	DBFile      = "warden.db"
	KeyFile     = "ledger.key"
	PubFile     = "ledger.pub"
	HMACFile    = "hmac.key"
	WebhookFile = "webhook.key"
)

// Dir is a loaded data directory.
type Dir struct {
	Path      string
	Origin    string // the log's origin line and key name
	Signer    note.Signer
	PublicKey string // signed-note verifier key text
	HMACKey   []byte // the forensic key
	// WebhookKey signs webhook deliveries (never forensic bundles). It is
	// nil in a directory from before webhooks had their own key, until
	// EnsureWebhookKey creates it.
	WebhookKey []byte
}

// DBPath returns the database file's path.
func (d *Dir) DBPath() string { return filepath.Join(d.Path, DBFile) }

// Initialized reports whether path holds an initialised data directory.
func Initialized(path string) bool {
	_, err := os.Stat(filepath.Join(path, KeyFile))
	return err == nil
}

// Init creates the data directory (0700) with a fresh signing key and HMAC
// key (0600). It refuses a directory that already holds a key, so keys are
// never silently replaced. The database is created by the store on open.
func Init(path string) (*Dir, error) {
	if Initialized(path) {
		return nil, fmt.Errorf("%s is already initialised (it has %s); warden never replaces a data directory's keys", path, KeyFile)
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("datadir.Init: %w", err)
	}
	if err := os.Chmod(path, 0o700); err != nil {
		return nil, fmt.Errorf("datadir.Init: %w", err)
	}
	var id [6]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("datadir.Init: %w", err)
	}
	origin := "warden/" + hex.EncodeToString(id[:])
	keys, err := ledger.GenerateKeys(origin)
	if err != nil {
		return nil, fmt.Errorf("datadir.Init: %w", err)
	}
	var hk, wk [32]byte
	if _, err := rand.Read(hk[:]); err != nil {
		return nil, fmt.Errorf("datadir.Init: %w", err)
	}
	if _, err := rand.Read(wk[:]); err != nil {
		return nil, fmt.Errorf("datadir.Init: %w", err)
	}
	// The private key is written last: its presence marks the directory
	// initialised, so a crash mid-init leaves a directory Init can redo.
	for _, f := range []struct {
		name string
		data string
		mode os.FileMode
	}{
		{HMACFile, hex.EncodeToString(hk[:]) + "\n", 0o600},
		{WebhookFile, hex.EncodeToString(wk[:]) + "\n", 0o600},
		{PubFile, keys.Verifier + "\n", 0o644},
		{KeyFile, keys.Signer + "\n", 0o600},
	} {
		if err := writeInitFile(filepath.Join(path, f.name), []byte(f.data), f.mode); err != nil {
			return nil, fmt.Errorf("datadir.Init: %w", err)
		}
	}
	return Load(path)
}

// Load reads an initialised data directory. It refuses private key files
// readable by group or others.
func Load(path string) (*Dir, error) {
	if !Initialized(path) {
		return nil, fmt.Errorf("%s is not a warden data directory (run `warden init --data %s`)", path, path)
	}
	d := &Dir{Path: path}
	skey, err := readSecret(filepath.Join(path, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("datadir.Load: %w", err)
	}
	if d.Signer, err = note.NewSigner(skey); err != nil {
		return nil, fmt.Errorf("datadir.Load: %s: %w", KeyFile, err)
	}
	d.Origin = d.Signer.Name()
	pub, err := os.ReadFile(filepath.Join(path, PubFile))
	if err != nil {
		return nil, fmt.Errorf("datadir.Load: %w", err)
	}
	// ledger.pub lists every key the log was signed with, oldest first.
	d.PublicKey = strings.TrimSpace(string(pub))
	for _, line := range strings.Split(d.PublicKey, "\n") {
		if _, err := note.NewVerifier(strings.TrimSpace(line)); err != nil {
			return nil, fmt.Errorf("datadir.Load: %s: %w", PubFile, err)
		}
	}
	hk, err := readSecret(filepath.Join(path, HMACFile))
	if err != nil {
		return nil, fmt.Errorf("datadir.Load: %w", err)
	}
	if d.HMACKey, err = hex.DecodeString(hk); err != nil || len(d.HMACKey) < 32 {
		return nil, fmt.Errorf("datadir.Load: %s is not 32+ bytes of hex", HMACFile)
	}
	if d.WebhookKey, err = readWebhookKey(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("datadir.Load: %w", err)
	}
	return d, nil
}

// EnsureWebhookKey creates webhook.key in a directory initialised before
// webhooks had a key of their own, and loads it. created says it did:
// webhooks of that directory were signed with hmac.key, so receivers need
// the new key, and hmac.key, the forensic key they held, should be
// rotated. The file appears whole or not at all: it is written beside,
// synced, then linked into place, so a crash never leaves an empty key,
// and of two processes creating it at once both read the one linked first.
func (d *Dir) EnsureWebhookKey() (created bool, err error) {
	if d.WebhookKey != nil {
		return false, nil
	}
	name := filepath.Join(d.Path, WebhookFile)
	if created, err = createWebhookKey(name); err != nil {
		return false, fmt.Errorf("datadir.EnsureWebhookKey: %w", err)
	}
	if d.WebhookKey, err = readWebhookKey(d.Path); err != nil {
		return false, fmt.Errorf("datadir.EnsureWebhookKey: %w", err)
	}
	return created, nil
}

// readWebhookKey reads webhook.key; an fs.ErrNotExist error if absent.
func readWebhookKey(path string) ([]byte, error) {
	text, err := readSecret(filepath.Join(path, WebhookFile))
	if err != nil {
		return nil, err
	}
	key, err := hex.DecodeString(text)
	if err != nil || len(key) < 32 {
		return nil, fmt.Errorf("%s is not 32+ bytes of hex", WebhookFile)
	}
	return key, nil
}

func createWebhookKey(name string) (bool, error) {
	var wk [32]byte
	if _, err := rand.Read(wk[:]); err != nil {
		return false, err
	}
	tmp := fmt.Sprintf("%s.%x.tmp", name, wk[:4])
	if err := writeFileSync(tmp, []byte(hex.EncodeToString(wk[:])+"\n"), 0o600); err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, name); errors.Is(err, fs.ErrExist) {
		return false, nil // another process won
	} else if err != nil {
		return false, err
	}
	return true, syncDir(filepath.Dir(name))
}

func readSecret(name string) (string, error) {
	st, err := os.Stat(name)
	if err != nil {
		return "", err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s is readable by group or others (mode %v); chmod 600 it", name, st.Mode().Perm())
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// writeFileSync writes a new file (never overwriting) and fsyncs it and its
// directory.
func writeFileSync(name string, data []byte, mode os.FileMode) error {
	return writeNew(name, data, mode, false)
}

// writeInitFile is writeFileSync for init, which may redo a file an
// interrupted init left behind.
func writeInitFile(name string, data []byte, mode os.FileMode) error {
	return writeNew(name, data, mode, true)
}

func writeNew(name string, data []byte, mode os.FileMode, replaceLeftover bool) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, fs.ErrExist) && replaceLeftover {
		// Left by an interrupted init; the private key is absent, so
		// nothing was ever signed with these.
		if err = os.Remove(name); err == nil {
			f, err = os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		}
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(name))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// Key rotation files: the next key is staged beside the current one, the
// hand-over is committed to the log, then the staged key replaces the
// current one and its public key is appended to ledger.pub (which keeps
// every key the log was ever signed with).
const (
	NextKeyFile = "ledger.key.next"
	NextPubFile = "ledger.pub.next"
)

// StageKey writes a new key pair beside the current one (0600).
func (d *Dir) StageKey(signer, verifier string) error {
	for _, n := range []string{NextKeyFile, NextPubFile} {
		os.Remove(filepath.Join(d.Path, n)) // an earlier, abandoned rotation
	}
	if err := writeFileSync(filepath.Join(d.Path, NextPubFile), []byte(verifier+"\n"), 0o644); err != nil {
		return fmt.Errorf("datadir.StageKey: %w", err)
	}
	if err := writeFileSync(filepath.Join(d.Path, NextKeyFile), []byte(signer+"\n"), 0o600); err != nil {
		return fmt.Errorf("datadir.StageKey: %w", err)
	}
	return nil
}

// StagedKey returns the staged public key, or "" when none is staged.
func (d *Dir) StagedKey() string {
	b, err := os.ReadFile(filepath.Join(d.Path, NextPubFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// CommitKey makes the staged key current: ledger.pub gains its public key,
// ledger.key is replaced, and the directory is reloaded into d.
func (d *Dir) CommitKey() error {
	next := filepath.Join(d.Path, NextKeyFile)
	pub := d.StagedKey()
	if pub == "" {
		return fmt.Errorf("datadir.CommitKey: no staged key")
	}
	cur, err := os.ReadFile(filepath.Join(d.Path, PubFile))
	if err != nil {
		return fmt.Errorf("datadir.CommitKey: %w", err)
	}
	if !strings.Contains(string(cur), pub) {
		tmp := filepath.Join(d.Path, PubFile+".tmp")
		os.Remove(tmp)
		if err := writeFileSync(tmp, []byte(strings.TrimSpace(string(cur))+"\n"+pub+"\n"), 0o644); err != nil {
			return fmt.Errorf("datadir.CommitKey: %w", err)
		}
		if err := os.Rename(tmp, filepath.Join(d.Path, PubFile)); err != nil {
			return fmt.Errorf("datadir.CommitKey: %w", err)
		}
	}
	if err := os.Rename(next, filepath.Join(d.Path, KeyFile)); err != nil {
		return fmt.Errorf("datadir.CommitKey: %w", err)
	}
	os.Remove(filepath.Join(d.Path, NextPubFile))
	if err := syncDir(d.Path); err != nil {
		return err
	}
	nd, err := Load(d.Path)
	if err != nil {
		return err
	}
	*d = *nd
	return nil
}

// AbandonKey removes a staged key the log never handed over to.
func (d *Dir) AbandonKey() {
	os.Remove(filepath.Join(d.Path, NextKeyFile))
	os.Remove(filepath.Join(d.Path, NextPubFile))
}

func syncDir(path string) error {
	dir, err := os.Open(path)
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

package ledger

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// CheckpointBody is the signed text of a C2SP tlog-checkpoint:
//
//	<origin>\n<size>\n<base64 root>\n[<extension line>\n]...
//
// warden writes one extension line per scroll with at least one receipt:
// "scroll <name> <size> <base64 root>", sorted by name.
type CheckpointBody struct {
	Origin  string
	Size    uint64
	Root    []byte
	Scrolls []ScrollRoot
}

// ScrollRoot is one scroll's size and Merkle root at a checkpoint.
type ScrollRoot struct {
	Name string
	Size uint64
	Root []byte
}

// Text returns the note text to be signed.
func (c *CheckpointBody) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root))
	for _, s := range c.Scrolls {
		fmt.Fprintf(&b, "scroll %s %d %s\n", s.Name, s.Size, base64.StdEncoding.EncodeToString(s.Root))
	}
	return b.String()
}

// ParseCheckpointText parses a checkpoint's note text (without signatures).
func ParseCheckpointText(text string) (*CheckpointBody, error) {
	if !strings.HasSuffix(text, "\n") {
		return nil, errors.New("checkpoint text does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return nil, errors.New("checkpoint has fewer than three lines")
	}
	c := &CheckpointBody{Origin: lines[0]}
	if c.Origin == "" {
		return nil, errors.New("checkpoint origin is empty")
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return nil, fmt.Errorf("checkpoint size %q is not a decimal number", lines[1])
	}
	c.Size = size
	if c.Root, err = decodeHash(lines[2]); err != nil {
		return nil, fmt.Errorf("checkpoint root: %w", err)
	}
	prev := ""
	for _, l := range lines[3:] {
		f := strings.Split(l, " ")
		if len(f) != 4 || f[0] != "scroll" {
			return nil, fmt.Errorf("checkpoint extension line %q is not \"scroll NAME SIZE ROOT\"", l)
		}
		if f[1] <= prev {
			return nil, fmt.Errorf("checkpoint scroll lines are not sorted and unique at %q", f[1])
		}
		prev = f[1]
		n, err := strconv.ParseUint(f[2], 10, 64)
		if err != nil || strconv.FormatUint(n, 10) != f[2] || n > c.Size {
			return nil, fmt.Errorf("checkpoint scroll %s size %q is invalid", f[1], f[2])
		}
		root, err := decodeHash(f[3])
		if err != nil {
			return nil, fmt.Errorf("checkpoint scroll %s root: %w", f[1], err)
		}
		c.Scrolls = append(c.Scrolls, ScrollRoot{Name: f[1], Size: n, Root: root})
	}
	return c, nil
}

func decodeHash(s string) ([]byte, error) {
	// The decoder skips CR and LF even in strict mode; requiring the exact
	// length of an encoded hash makes the encoding canonical, so parsed text
	// always re-serialises to itself.
	if len(s) != base64.StdEncoding.EncodedLen(HashSize) {
		return nil, fmt.Errorf("hash is %d base64 characters, want %d", len(s), base64.StdEncoding.EncodedLen(HashSize))
	}
	h, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not base64: %w", err)
	}
	if len(h) != HashSize {
		return nil, fmt.Errorf("hash is %d bytes, want %d", len(h), HashSize)
	}
	return h, nil
}

// SignCheckpoint signs c with signer and returns the complete signed note.
func SignCheckpoint(c *CheckpointBody, signer note.Signer) ([]byte, error) {
	if signer.Name() != c.Origin {
		return nil, fmt.Errorf("ledger.SignCheckpoint: key name %q differs from origin %q", signer.Name(), c.Origin)
	}
	msg, err := note.Sign(&note.Note{Text: c.Text()}, signer)
	if err != nil {
		return nil, fmt.Errorf("ledger.SignCheckpoint: %w", err)
	}
	return msg, nil
}

// OpenCheckpoint verifies a signed checkpoint note against the known keys and
// parses it. It fails unless at least one signature verifies with a known
// key named as the checkpoint's origin, and the text is a valid checkpoint.
func OpenCheckpoint(msg []byte, known note.Verifiers) (*CheckpointBody, error) {
	n, err := note.Open(msg, known)
	if err != nil {
		return nil, fmt.Errorf("checkpoint signature: %w", err)
	}
	c, err := ParseCheckpointText(n.Text)
	if err != nil {
		return nil, err
	}
	signed := false
	for _, s := range n.Sigs {
		// note.Open decodes signatures leniently: the two unused bits of
		// the last base64 character may be set, giving one signature
		// several spellings. Accept only the canonical one.
		if _, err := base64.StdEncoding.Strict().DecodeString(s.Base64); err != nil {
			return nil, fmt.Errorf("checkpoint signature by %q is not canonical base64", s.Name)
		}
		signed = signed || s.Name == c.Origin
	}
	if !signed {
		return nil, fmt.Errorf("checkpoint for origin %q is signed only by other keys", c.Origin)
	}
	return c, nil
}

// Keys is a ledger signing key pair in signed-note encoding.
type Keys struct {
	Signer   string // "PRIVATE+KEY+name+hash+base64"; keep secret
	Verifier string // "name+hash+base64"; publish freely
}

// GenerateKeys returns a new ed25519 key pair named origin.
func GenerateKeys(origin string) (Keys, error) {
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return Keys{}, fmt.Errorf("ledger.GenerateKeys: %w", err)
	}
	// note.GenerateKey does not check the name; a key named with a space or
	// a '+' could never be loaded to sign.
	if _, err := note.NewSigner(skey); err != nil {
		return Keys{}, fmt.Errorf("ledger.GenerateKeys: origin %q cannot name a key: %w", origin, err)
	}
	return Keys{Signer: skey, Verifier: vkey}, nil
}

// ParseVerifiers parses one or more verifier keys, one per line.
func ParseVerifiers(text []byte) (note.Verifiers, []note.Verifier, error) {
	var list []note.Verifier
	for _, l := range bytes.Split(bytes.TrimSpace(text), []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) == 0 {
			continue
		}
		v, err := note.NewVerifier(string(l))
		if err != nil {
			return nil, nil, fmt.Errorf("ledger.ParseVerifiers: %w", err)
		}
		list = append(list, v)
	}
	if len(list) == 0 {
		return nil, nil, errors.New("ledger.ParseVerifiers: no key")
	}
	return note.VerifierList(list...), list, nil
}

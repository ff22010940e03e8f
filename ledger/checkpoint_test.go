package ledger_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/warden-sh/warden/ledger"
	"golang.org/x/mod/sumdb/note"
)

func seqHash(start byte) []byte {
	h := make([]byte, ledger.HashSize)
	for i := range h {
		h[i] = start + byte(i)
	}
	return h
}

func fixedCheckpoint() *ledger.CheckpointBody {
	return &ledger.CheckpointBody{
		Origin: testOrigin,
		Size:   42,
		Root:   seqHash(0),
		Scrolls: []ledger.ScrollRoot{
			{Name: "identity", Size: 3, Root: seqHash(32)},
			{Name: "treasury", Size: 39, Root: seqHash(64)},
		},
	}
}

func TestCheckpointText(t *testing.T) {
	const want = "warden.test/log\n42\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n" +
		"scroll identity 3 ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=\n" +
		"scroll treasury 39 QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=\n"
	c := fixedCheckpoint()
	if diff := cmp.Diff(want, c.Text()); diff != "" {
		t.Fatalf("Text (-want +got):\n%s", diff)
	}
	got, err := ledger.ParseCheckpointText(want)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, got); diff != "" {
		t.Errorf("ParseCheckpointText (-want +got):\n%s", diff)
	}
	empty := &ledger.CheckpointBody{Origin: "o", Size: 0, Root: ledger.EmptyRoot()}
	got, err = ledger.ParseCheckpointText(empty.Text())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(empty, got); diff != "" {
		t.Errorf("empty checkpoint round trip (-want +got):\n%s", diff)
	}
}

func TestSignAndOpenCheckpoint(t *testing.T) {
	k, signer, known := MustKeys(t, testOrigin)
	c := fixedCheckpoint()
	msg, err := ledger.SignCheckpoint(c, signer)
	if err != nil {
		t.Fatal(err)
	}
	text, sig, ok := strings.Cut(string(msg), "\n\n")
	if !ok || text+"\n" != c.Text() || !strings.HasPrefix(sig, "— "+testOrigin+" ") || !strings.HasSuffix(sig, "\n") {
		t.Fatalf("signed note is not text, blank line, signature line:\n%s", msg)
	}
	got, err := ledger.OpenCheckpoint(msg, known)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, got); diff != "" {
		t.Errorf("OpenCheckpoint (-want +got):\n%s", diff)
	}

	// A cosignature by an unknown key does not hurt; one by a known key of
	// another name does not either, as long as the origin's key signed.
	wk, witness, _ := MustKeys(t, "witness.test")
	cosigned, err := note.Sign(&note.Note{Text: c.Text()}, signer, witness)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.OpenCheckpoint(cosigned, known); err != nil {
		t.Errorf("cosigned checkpoint, witness unknown: %v", err)
	}
	both, _, err := ledger.ParseVerifiers([]byte(k.Verifier + "\n\n  " + wk.Verifier + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.OpenCheckpoint(cosigned, both); err != nil {
		t.Errorf("cosigned checkpoint, both known: %v", err)
	}

	if _, err := ledger.SignCheckpoint(&ledger.CheckpointBody{Origin: "other.test", Root: ledger.EmptyRoot()}, signer); err == nil {
		t.Error("SignCheckpoint with a key named differently from the origin: want an error")
	}
}

func TestParseCheckpointTextRejects(t *testing.T) {
	root := base64.StdEncoding.EncodeToString(seqHash(0))
	short := base64.StdEncoding.EncodeToString(seqHash(0)[:31])
	// Same 32 bytes, but with non-zero padding bits: not the canonical
	// encoding (the last character carries two unused bits).
	sloppy := root[:len(root)-2] + string(root[len(root)-2]+1) + "="
	tests := []struct{ name, text string }{
		{"empty", ""},
		{"no trailing newline", "o\n1\n" + root},
		{"two lines", "o\n1\n"},
		{"empty origin", "\n1\n" + root + "\n"},
		{"size not a number", "o\nx\n" + root + "\n"},
		{"size with plus", "o\n+1\n" + root + "\n"},
		{"size with leading zero", "o\n01\n" + root + "\n"},
		{"size negative", "o\n-1\n" + root + "\n"},
		{"size overflows", "o\n18446744073709551616\n" + root + "\n"},
		{"size with space", "o\n1 \n" + root + "\n"},
		{"root not base64", "o\n1\n!!!!\n"},
		{"root 31 bytes", "o\n1\n" + short + "\n"},
		{"root with non-zero padding bits", "o\n1\n" + sloppy + "\n"},
		{"root unpadded", "o\n1\n" + strings.TrimSuffix(root, "=") + "\n"},
		{"root with embedded CR", "o\n1\n" + root[:10] + "\r" + root[10:] + "\n"},
		{"root with trailing CR", "o\n1\n" + root + "\r\n"},
		{"blank extension line", "o\n1\n" + root + "\n\n"},
		{"extension not a scroll", "o\n1\n" + root + "\nfoo a 1 " + root + "\n"},
		{"extension with five fields", "o\n1\n" + root + "\nscroll a 1 " + root + " x\n"},
		{"scroll with empty name", "o\n1\n" + root + "\nscroll  1 " + root + "\n"},
		{"scroll bigger than the log", "o\n1\n" + root + "\nscroll a 2 " + root + "\n"},
		{"scroll size not canonical", "o\n9\n" + root + "\nscroll a 01 " + root + "\n"},
		{"scroll root bad", "o\n9\n" + root + "\nscroll a 1 " + short + "\n"},
		{"scrolls out of order", "o\n9\n" + root + "\nscroll b 1 " + root + "\nscroll a 1 " + root + "\n"},
		{"scroll repeated", "o\n9\n" + root + "\nscroll a 1 " + root + "\nscroll a 1 " + root + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := ledger.ParseCheckpointText(tt.text); err == nil {
				t.Errorf("ParseCheckpointText(%q) = %+v, want an error", tt.text, c)
			}
		})
	}
}

// checkpointMutants returns edits of a signed checkpoint note that no one
// without the origin's key can make verify.
func checkpointMutants(t *testing.T, msg []byte) map[string][]byte {
	t.Helper()
	s := string(msg)
	text, sigBlock, ok := strings.Cut(s, "\n\n")
	if !ok {
		t.Fatalf("not a signed note: %q", s)
	}
	text += "\n"
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	sigLine := strings.TrimSuffix(sigBlock, "\n")
	prefix, sigB64, _ := strings.Cut(sigLine, " "+testOrigin+" ")
	m := map[string][]byte{}
	withText := func(name string, lines []string) {
		m[name] = []byte(strings.Join(lines, "\n") + "\n\n" + sigBlock)
	}
	edit := func(name string, i int, v string) {
		l := append([]string(nil), lines...)
		l[i] = v
		withText(name, l)
	}
	edit("origin changed", 0, "warden.test/lag")
	edit("origin extended", 0, testOrigin+" ")
	var size uint64
	fmt.Sscan(lines[1], &size)
	edit("size+1", 1, fmt.Sprint(size+1))
	edit("size-1", 1, fmt.Sprint(size-1))
	edit("size with leading zero", 1, "0"+lines[1])
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil {
		t.Fatal(err)
	}
	for i := range root {
		r := bytes.Clone(root)
		r[i] ^= 1 << (i % 8)
		edit(fmt.Sprintf("root byte %d bit %d", i, i%8), 2, base64.StdEncoding.EncodeToString(r))
	}
	for i := range lines[2] {
		b := []byte(lines[2])
		b[i] ^= 1
		edit(fmt.Sprintf("root char %d bit 0", i), 2, string(b))
	}
	for i := 3; i < len(lines); i++ {
		f := strings.Split(lines[i], " ")
		edit(fmt.Sprintf("scroll line %d name", i), i, strings.Join([]string{f[0], f[1] + "x", f[2], f[3]}, " "))
		var n uint64
		fmt.Sscan(f[2], &n)
		edit(fmt.Sprintf("scroll line %d size+1", i), i, strings.Join([]string{f[0], f[1], fmt.Sprint(n + 1), f[3]}, " "))
		sr, _ := base64.StdEncoding.DecodeString(f[3])
		sr[0] ^= 0x80
		edit(fmt.Sprintf("scroll line %d root", i), i, strings.Join([]string{f[0], f[1], f[2], base64.StdEncoding.EncodeToString(sr)}, " "))
		withText(fmt.Sprintf("scroll line %d deleted", i), append(append([]string(nil), lines[:i]...), lines[i+1:]...))
		withText(fmt.Sprintf("scroll line %d duplicated", i), append(append(append([]string(nil), lines[:i+1]...), lines[i]), lines[i+1:]...))
	}
	withText("scroll line added", append(append([]string(nil), lines...), "scroll zzz 1 "+lines[2]))
	if len(lines) > 4 {
		l := append([]string(nil), lines...)
		l[3], l[4] = l[4], l[3]
		withText("scroll lines swapped", l)
	}
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil {
		t.Fatal(err)
	}
	for i := range sig {
		for bit := 0; bit < 8; bit++ {
			if bit != i%8 && i >= 4 && i < len(sig)-1 {
				continue // every bit of the key hash and the last byte; one bit elsewhere
			}
			sg := bytes.Clone(sig)
			sg[i] ^= 1 << bit
			m[fmt.Sprintf("signature byte %d bit %d", i, bit)] = []byte(text + "\n" + prefix + " " + testOrigin + " " + base64.StdEncoding.EncodeToString(sg) + "\n")
		}
	}
	for i := range sigB64 {
		if sigB64[i] == '=' {
			continue
		}
		for _, bit := range []byte{1, 2} {
			b := []byte(sigB64)
			b[i] ^= bit
			m[fmt.Sprintf("signature char %d xor %d", i, bit)] = []byte(text + "\n" + prefix + " " + testOrigin + " " + string(b) + "\n")
		}
	}
	// The last base64 character before "=" carries two bits that decode to
	// nothing; a lax decoder accepts them set, so the same signature has
	// four spellings.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	last := strings.TrimRight(sigB64, "=")
	for _, bit := range []int{1, 2, 3} {
		v := strings.IndexByte(alphabet, last[len(last)-1]) ^ bit
		spelled := last[:len(last)-1] + string(alphabet[v]) + sigB64[len(last):]
		m[fmt.Sprintf("signature padding bits %d", bit)] = []byte(text + "\n" + prefix + " " + testOrigin + " " + spelled + "\n")
	}
	m["signature truncated"] = []byte(text + "\n" + prefix + " " + testOrigin + " " + base64.StdEncoding.EncodeToString(sig[:len(sig)-1]) + "\n")
	m["signature removed"] = []byte(text + "\n")
	m["signature block removed"] = []byte(text)
	m["signature line without newline"] = []byte(text + "\n" + sigLine)
	m["signature name changed"] = []byte(text + "\n" + prefix + " " + testOrigin + "x " + sigB64 + "\n")
	m["blank line before signature"] = []byte(text + "\n\n" + sigBlock)
	m["blank line after signature"] = []byte(s + "\n")
	m["blank line before text"] = []byte("\n" + s)
	m["blank line inside text"] = []byte(lines[0] + "\n\n" + strings.Join(lines[1:], "\n") + "\n\n" + sigBlock)
	m["missing trailing newline"] = []byte(strings.TrimSuffix(s, "\n"))
	m["CRLF line endings"] = []byte(strings.ReplaceAll(s, "\n", "\r\n"))
	m["text missing trailing newline"] = []byte(strings.TrimSuffix(text, "\n") + "\n" + sigBlock)
	m["trailing space on origin"] = []byte(lines[0] + " \n" + strings.Join(lines[1:], "\n") + "\n\n" + sigBlock)
	return m
}

// TestCheckpointCorruption edits a signed checkpoint every way and requires
// OpenCheckpoint (and a Verifier) to reject each mutant; it also rejects
// honest signatures by the wrong key.
func TestCheckpointCorruption(t *testing.T) {
	l := MustLog(t, 12, 12)
	msg := l.checkpoints[0]
	if _, err := ledger.OpenCheckpoint(msg, l.verifiers); err != nil {
		t.Fatalf("valid checkpoint: %v", err)
	}
	if _, err := runVerifier(l.verifiers, [][]byte{msg}, l.receipts, verifyModes[0], false); err != nil {
		t.Fatalf("valid log: %v", err)
	}
	c, err := ledger.OpenCheckpoint(msg, l.verifiers)
	if err != nil {
		t.Fatal(err)
	}
	mutants := checkpointMutants(t, msg)

	// Honest signatures by keys the verifier must not accept.
	_, impostor, _ := MustKeys(t, testOrigin) // same name, different key
	forged, err := ledger.SignCheckpoint(c, impostor)
	if err != nil {
		t.Fatal(err)
	}
	mutants["signed by another key with the origin's name"] = forged
	sk, stranger, _ := MustKeys(t, "stranger.test")
	byStranger, err := note.Sign(&note.Note{Text: c.Text()}, stranger)
	if err != nil {
		t.Fatal(err)
	}
	mutants["signed by a key of another name"] = byStranger
	bothImpostors, err := note.Sign(&note.Note{Text: c.Text()}, impostor, stranger)
	if err != nil {
		t.Fatal(err)
	}
	mutants["signed by two wrong keys"] = bothImpostors

	for name, m := range mutants {
		t.Run(name, func(t *testing.T) {
			if got, err := ledger.OpenCheckpoint(m, l.verifiers); err == nil {
				t.Fatalf("OpenCheckpoint accepts mutant %q:\n%s\n=> %+v", name, m, got)
			}
			// The verifier, given the mutant instead of the real checkpoint,
			// must not vouch for the log.
			if s, err := runVerifier(l.verifiers, [][]byte{m}, l.receipts, verifyModes[0], false); err == nil {
				t.Fatalf("verifier accepts the log with mutant %q: %v", name, s)
			}
		})
	}

	// A key of another name that the verifier does know still cannot sign
	// for the origin.
	t.Run("signed by a known key of another name", func(t *testing.T) {
		vs, _, err := ledger.ParseVerifiers([]byte(l.keys.Verifier + "\n" + sk.Verifier))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := ledger.OpenCheckpoint(byStranger, vs); err == nil {
			t.Fatalf("OpenCheckpoint accepts a checkpoint for %q signed only by %q: %+v", testOrigin, "stranger.test", got)
		}
	})
}

func TestGenerateKeysAndParseVerifiers(t *testing.T) {
	a, err := ledger.GenerateKeys("a.test")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ledger.GenerateKeys("b.test")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a.Signer, "PRIVATE+KEY+a.test+") || !strings.HasPrefix(a.Verifier, "a.test+") {
		t.Errorf("keys not in signed-note encoding: %q", a.Verifier)
	}
	if a.Verifier == b.Verifier || a.Signer == b.Signer {
		t.Error("two generated key pairs are equal")
	}
	known, list, err := ledger.ParseVerifiers([]byte("\n  " + a.Verifier + "\r\n\n" + b.Verifier + "  \n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name() != "a.test" || list[1].Name() != "b.test" {
		t.Fatalf("ParseVerifiers list = %v", list)
	}
	if _, err := known.Verifier("b.test", list[1].KeyHash()); err != nil {
		t.Errorf("b.test not known: %v", err)
	}
	for name, text := range map[string]string{
		"empty":       "",
		"blank lines": "\n \n",
		"garbage":     a.Verifier + "\nnot-a-key",
		"private key": a.Signer,
	} {
		if _, _, err := ledger.ParseVerifiers([]byte(text)); err == nil {
			t.Errorf("ParseVerifiers(%s): want an error", name)
		}
	}
	if _, err := ledger.GenerateKeys("bad name"); err == nil {
		t.Error("GenerateKeys with a space in the name: want an error")
	}
}

func TestVerifyErrorText(t *testing.T) {
	err := &ledger.VerifyError{Seq: 17, Reason: "body edited"}
	if got, want := err.Error(), "first bad sequence number 17: body edited"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

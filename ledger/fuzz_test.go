package ledger_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
	"golang.org/x/mod/sumdb/note"
)

// FuzzCanonical: Canonical never panics; what it accepts is valid JSON with
// the same meaning as the input, and canonical output is a fixed point.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{
		`{"b":1,"a":[1.0,2e3,-0,"\u00e9\ud83d\ude00",null,true,false,{}]}`,
		`{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"x","1":"One","\ud83d\ude00":"e","\u0080":"c","\u00f6":"o"}`,
		`[1e21,1e-7,0.000001,333333333.33333329,5e-324,1.7976931348623157e308]`,
		"\"\\u0000\\u001f\\u2028\x7f\\/\"",
		` 42 `, `"x"`, `[]`, `{"a":{"a":{"a":[]}}}`, `{"a":1,"a":2}`, `["\ud800"]`, "[\"\xff\"]", `1e400`,
	} {
		f.Add([]byte(s))
	}
	inputs, _ := filepath.Glob("testdata/jcs/input/*.json")
	for _, in := range inputs {
		if b, err := os.ReadFile(in); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := ledger.Canonical(json.RawMessage(data))
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("Canonical(%q) = %q, not valid JSON", data, out)
		}
		again, err := ledger.Canonical(json.RawMessage(out))
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", data, out, again, err)
		}
		var in, got any
		if err := json.Unmarshal(data, &in); err != nil {
			t.Fatalf("Canonical accepts %q, which encoding/json rejects: %v", data, err)
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(in, got) {
			t.Fatalf("meaning changed: %q -> %q", data, out)
		}
	})
}

// FuzzParseCheckpointText: never panics, and accepted text round-trips
// through Text exactly (one text, one checkpoint).
func FuzzParseCheckpointText(f *testing.F) {
	f.Add(fixedCheckpoint().Text())
	f.Add((&ledger.CheckpointBody{Origin: "o", Root: ledger.EmptyRoot()}).Text())
	f.Add("o\n1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\nscroll a 1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n")
	f.Add("o\n01\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := ledger.ParseCheckpointText(text)
		if err != nil {
			return
		}
		if got := c.Text(); got != text {
			t.Fatalf("ParseCheckpointText(%q).Text() = %q", text, got)
		}
		if len(c.Root) != ledger.HashSize {
			t.Fatalf("root is %d bytes", len(c.Root))
		}
		for _, s := range c.Scrolls {
			if len(s.Root) != ledger.HashSize || s.Size > c.Size {
				t.Fatalf("bad scroll %+v in %+v", s, c)
			}
		}
	})
}

// fuzzSigner returns a fixed key, so saved fuzz inputs stay meaningful.
func fuzzSigner(tb testing.TB, name string) (note.Signer, note.Verifiers) {
	tb.Helper()
	seed := bytes.Repeat([]byte(name[:1]), 32)
	skey, vkey, err := note.GenerateKey(bytes.NewReader(seed), name)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		tb.Fatal(err)
	}
	vs, _, err := ledger.ParseVerifiers([]byte(vkey))
	if err != nil {
		tb.Fatal(err)
	}
	return s, vs
}

// FuzzOpenCheckpoint: never panics; anything accepted is a checkpoint text
// the test actually signed (nothing else can carry a valid signature) and
// re-serialises to the signed text.
func FuzzOpenCheckpoint(f *testing.F) {
	signer, known := fuzzSigner(f, testOrigin)
	other, _ := fuzzSigner(f, "other.test")
	signed := map[string]bool{}
	bodies := []*ledger.CheckpointBody{
		fixedCheckpoint(),
		{Origin: testOrigin, Size: 0, Root: ledger.EmptyRoot()},
		{Origin: testOrigin, Size: 1 << 40, Root: seqHash(9), Scrolls: []ledger.ScrollRoot{{Name: "system", Size: 1, Root: seqHash(1)}}},
	}
	for _, c := range bodies {
		msg, err := ledger.SignCheckpoint(c, signer)
		if err != nil {
			f.Fatal(err)
		}
		signed[c.Text()] = true
		f.Add(msg)
		cosigned, err := note.Sign(&note.Note{Text: c.Text()}, signer, other)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(cosigned)
	}
	f.Add([]byte("garbage\n\n— x y\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		c, err := ledger.OpenCheckpoint(msg, known)
		if err != nil {
			return
		}
		text := c.Text()
		if !signed[text] {
			t.Fatalf("OpenCheckpoint accepts a text nobody signed:\n%q", msg)
		}
		if !bytes.HasPrefix(msg, []byte(text+"\n")) {
			t.Fatalf("accepted note %q does not start with its checkpoint text %q", msg, text)
		}
	})
}

// fuzzTree is a fixed 16-leaf log with the root of every prefix.
func fuzzTree(tb testing.TB) *nodeStore { return MustNodeStore(tb, refLeaves(16)) }

func splitHashes(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := min(len(b), ledger.HashSize)
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// FuzzVerifyInclusion: arbitrary proofs never panic and never verify against
// a real root unless they are the real proof of the real leaf.
func FuzzVerifyInclusion(f *testing.F) {
	s := fuzzTree(f)
	for _, c := range [][2]uint8{{0, 1}, {3, 7}, {5, 13}, {15, 16}, {8, 9}} {
		p, err := ledger.InclusionProof(uint64(c[0]), uint64(c[1]), s.fetch)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(c[0], c[1], c[0], []byte(nil), bytes.Join(p, nil))
	}
	f.Add(uint8(2), uint8(3), uint8(2), []byte("not a hash"), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, index, size, leafIdx uint8, leaf, proof []byte) {
		n := uint64(size % 17)
		if len(leaf) == 0 {
			leaf = s.leaves[leafIdx%16]
		}
		p := splitHashes(proof)
		if ledger.VerifyInclusion(uint64(index), n, leaf, p, s.roots[n]) != nil {
			return
		}
		if uint64(index) >= n || !bytes.Equal(leaf, s.leaves[index]) {
			t.Fatalf("leaf %x verifies at index %d of %d", leaf, index, n)
		}
		real, err := ledger.InclusionProof(uint64(index), n, s.fetch)
		if err != nil || !equalProofs(real, p) {
			t.Fatalf("a proof other than the real one verifies leaf %d of %d: %x", index, n, p)
		}
	})
}

// FuzzVerifyConsistency does the same for consistency proofs.
func FuzzVerifyConsistency(f *testing.F) {
	s := fuzzTree(f)
	for _, c := range [][2]uint8{{1, 2}, {3, 7}, {4, 8}, {6, 13}, {16, 16}, {1, 16}} {
		p, err := ledger.ConsistencyProof(uint64(c[0]), uint64(c[1]), s.fetch)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(c[0], c[1], []byte(nil), bytes.Join(p, nil))
	}
	f.Add(uint8(5), uint8(3), []byte(nil), []byte{0})
	f.Fuzz(func(t *testing.T, size1, size2 uint8, root1, proof []byte) {
		n1, n2 := uint64(size1%17), uint64(size2%17)
		if len(root1) == 0 {
			root1 = s.roots[n1]
		}
		p := splitHashes(proof)
		if ledger.VerifyConsistency(n1, n2, p, root1, s.roots[n2]) != nil {
			return
		}
		if n1 > n2 {
			t.Fatalf("consistency verifies from %d down to %d", n1, n2)
		}
		if n1 == 0 {
			return // every tree extends the empty tree; the proof is empty
		}
		if !bytes.Equal(root1, s.roots[n1]) {
			t.Fatalf("wrong root1 %x verifies from %d to %d", root1, n1, n2)
		}
		real, err := ledger.ConsistencyProof(n1, n2, s.fetch)
		if err != nil || !equalProofs(real, p) {
			t.Fatalf("a proof other than the real one verifies %d to %d: %x", n1, n2, p)
		}
	})
}

// decodeReceiptStrict decodes exactly one receipt with no unknown fields, as
// the export verifier does.
func decodeReceiptStrict(data []byte) (*warden.Receipt, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	r := new(warden.Receipt)
	if err := dec.Decode(r); err != nil {
		return nil, err
	}
	return r, nil
}

// FuzzReceiptDecode: decoding then checking a receipt never panics; a
// receipt that checks still checks, with the same leaf, after a JSON round
// trip, and feeds a Verifier without panicking.
func FuzzReceiptDecode(f *testing.F) {
	l := MustLog(f, 3)
	for _, r := range append(l.receipts, fixedReceipt()) {
		b, err := json.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"seq":1,"body":{},"tags":null}`))
	f.Add([]byte(`{"seq":9007199254740993,"schema_version":"2.0.0","scroll":"system","body":{"a":1},"root_hash":"","leaf_hash":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeReceiptStrict(data)
		if err != nil {
			return
		}
		leaf, err := ledger.CheckReceipt(r)
		v := ledger.NewVerifier(nil, testOrigin)
		v.AllowUnanchored = true
		_ = v.Add(r)
		_, _ = v.Finish()
		if err != nil {
			var ve *ledger.VerifyError
			if !errors.As(err, &ve) || ve.Seq != r.Seq {
				t.Fatalf("CheckReceipt error %v is not a VerifyError at seq %d", err, r.Seq)
			}
			return
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := decodeReceiptStrict(b)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", b, err)
		}
		leaf2, err := ledger.CheckReceipt(r2)
		if err != nil || !bytes.Equal(leaf, leaf2) {
			t.Fatalf("receipt checks, but not after a JSON round trip: %v", err)
		}
	})
}

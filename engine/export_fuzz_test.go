package engine_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/ledger"
	"github.com/warden-sh/warden/wardentest"
)

// FuzzVerifyExport: the export reader and verifier never panic on any
// input, and never accept a mutated export of a real log as the original.
func FuzzVerifyExport(f *testing.F) {
	env := wardentest.MustEnv(f)
	if _, err := env.Core.Checkpoint(context.Background()); err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if err := env.Core.Export(context.Background(), &buf, env.Dir.Origin); err != nil {
		f.Fatal(err)
	}
	valid := buf.Bytes()
	f.Add(valid)
	f.Add([]byte(`{"format":"warden-receipts/v1"}` + "\n" + `{"seq":0}`))
	f.Add([]byte(``))
	known, _, err := ledger.ParseVerifiers([]byte(env.Dir.PublicKey))
	if err != nil {
		f.Fatal(err)
	}
	wantSum, _, err := engine.VerifyExport(bytes.NewReader(valid), ledger.NewVerifier(known, ""))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sum, hdr, err := engine.VerifyExport(bytes.NewReader(data), ledger.NewVerifier(known, ""))
		if err != nil || hdr == nil {
			return
		}
		// Anything accepted must describe the very same log.
		if sum.Count != wantSum.Count || !bytes.Equal(sum.Root, wantSum.Root) {
			t.Fatalf("accepted a different log: %d receipts", sum.Count)
		}
	})
}

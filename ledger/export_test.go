package ledger

// Transform exposes the one-pass canonicaliser to the benchmarks, which
// compare it with gowebpki/jcs without Canonical's already-canonical check.
func Transform(in []byte) ([]byte, error) { return transform(in) }

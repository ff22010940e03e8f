package engine

import warden "github.com/warden-sh/warden"

// IntegrityChecker snapshots and checks the files the integrity monitor
// watches. Package integrity implements it; the engine only decides.
type IntegrityChecker interface {
	// Snapshot hashes paths into a baseline.
	Snapshot(paths []string) (*warden.IntegrityBaseline, error)
	// Check re-hashes a baseline. clean is true when nothing changed;
	// otherwise evidence names the changed, added and removed files, and
	// fingerprint identifies this exact set of findings.
	Check(b *warden.IntegrityBaseline) (clean bool, evidence map[string]string, fingerprint string, err error)
}

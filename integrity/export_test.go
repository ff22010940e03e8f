package integrity

import (
	"context"

	warden "github.com/warden-sh/warden"
)

// Snapshot and Scan are the algorithms unconfined, for the tests of the
// algorithms themselves (the package offers only Checker).
func Snapshot(paths []string, clock warden.Clock) (*warden.IntegrityBaseline, error) {
	return snapshot(context.Background(), hostFS{}, paths, clock)
}

func Scan(b *warden.IntegrityBaseline) ([]Finding, error) {
	return scan(context.Background(), hostFS{}, b)
}

// SetOpenHook makes every file open call h first (a blocking read
// stand-in) until the returned function is called.
func SetOpenHook(h func(path string)) (restore func()) {
	openHook.Store(&h)
	return func() { openHook.Store(nil) }
}

package integrity

// SetOpenHook makes every file open call h first (a blocking read
// stand-in) until the returned function is called.
func SetOpenHook(h func(path string)) (restore func()) {
	openHook.Store(&h)
	return func() { openHook.Store(nil) }
}

package cli

// SetPageSize makes the CLI ask for pages of n items, so a test pages
// through a short listing; the returned function restores the size.
func SetPageSize(n int) (restore func()) {
	old := pageSize
	pageSize = n
	return func() { pageSize = old }
}

package warden

// Page is one page of a listing, read in one snapshot: its items in the
// listing's order, where the next page starts (nil on the last page), and
// how many items the whole listing has across its pages (nil where counting
// them would cost more than the page; each listing says when).
//
// Pages are consistent one by one. A listing followed page by page may see
// changes made between two pages: an item that moves in the order (an
// incident whose severity rises) may be missed or seen twice, and Total may
// differ from page to page.
type Page[T, C any] struct {
	Items []T
	Next  *C
	Total *int64
}

// CheckPageLimit returns EINVALID unless 1 ≤ limit ≤ MaxPageSize.
func CheckPageLimit(limit int) error {
	if limit < 1 || limit > MaxPageSize {
		return Errorf(EINVALID, "limit must be between 1 and %d; page on with the Link header's next URL.", MaxPageSize)
	}
	return nil
}

package http

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	warden "github.com/warden-sh/warden"
)

// Every listing pages the same way: limit (1 to warden.MaxPageSize,
// default warden.DefaultPageSize), a cursor parameter, and the headers
// below. A page is read in one snapshot; pages followed one after another
// may see changes made between them (warden.Page).
const (
	// HeaderTotalCount is how many items the whole listing has across its
	// pages, where counting is affordable (each route says).
	HeaderTotalCount = "X-Total-Count"
	// HeaderLink carries the next page's URL (RFC 8288, rel="next"), on
	// every page but the last.
	HeaderLink = "Link"
)

// pageLimit parses the limit parameter.
func pageLimit(q url.Values) (int, error) {
	l := q.Get("limit")
	if l == "" {
		return warden.DefaultPageSize, nil
	}
	n, err := strconv.Atoi(l)
	if err != nil {
		return 0, warden.Errorf(warden.EINVALID, "limit must be between 1 and %d, not %q.", warden.MaxPageSize, l)
	}
	return n, warden.CheckPageLimit(n)
}

// pageHeaders sets the total-count header (if total is known) and, if next
// is not nil, the Link to the next page: this request's URL with the
// parameters in next set (the cursor) and the others kept.
func pageHeaders(w http.ResponseWriter, r *http.Request, total *int64, next url.Values) {
	if total != nil {
		w.Header().Set(HeaderTotalCount, strconv.FormatInt(*total, 10))
	}
	if next == nil {
		return
	}
	q := r.URL.Query()
	for k, vs := range next {
		q[k] = vs
	}
	u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
	w.Header().Set(HeaderLink, "<"+u.String()+`>; rel="next"`)
}

// Opaque cursors (incidents, recovery requirements, credentials) are the
// base64url of their kind and fields, NUL-separated, so a cursor of one
// listing is refused by another rather than misread.

func encodeCursor(kind string, fields ...string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + "\x00" + strings.Join(fields, "\x00")))
}

// decodeCursor returns the n fields of a cursor of kind, or EINVALID.
func decodeCursor(kind, s string, n int) ([]string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	parts := strings.Split(string(b), "\x00")
	if err != nil || len(parts) != n+1 || parts[0] != kind {
		return nil, warden.Errorf(warden.EINVALID, "cursor %q is not one this listing gave; follow the Link header's next URL.", truncate(s, 64))
	}
	return parts[1:], nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// incidentCursor and the others below encode and decode each listing's
// cursor.
func incidentCursor(c *warden.IncidentCursor) string {
	return encodeCursor("incidents", strconv.Itoa(c.Rank), strconv.FormatUint(c.Number, 10))
}

func parseIncidentCursor(s string) (*warden.IncidentCursor, error) {
	f, err := decodeCursor("incidents", s, 2)
	if err != nil {
		return nil, err
	}
	rank, err1 := strconv.Atoi(f[0])
	num, err2 := strconv.ParseUint(f[1], 10, 63)
	if err1 != nil || err2 != nil || rank < 1 || rank > len(warden.Severities) {
		return nil, warden.Errorf(warden.EINVALID, "cursor %q is not one this listing gave; follow the Link header's next URL.", truncate(s, 64))
	}
	return &warden.IncidentCursor{Rank: rank, Number: num}, nil
}

func requirementCursor(c *warden.RequirementCursor) string {
	return encodeCursor("recoveries", strconv.FormatInt(c.CreatedNs, 10), c.IncidentID)
}

func parseRequirementCursor(s string) (*warden.RequirementCursor, error) {
	f, err := decodeCursor("recoveries", s, 2)
	if err != nil {
		return nil, err
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return nil, warden.Errorf(warden.EINVALID, "cursor %q is not one this listing gave; follow the Link header's next URL.", truncate(s, 64))
	}
	return &warden.RequirementCursor{CreatedNs: ns, IncidentID: f[1]}, nil
}

func credentialCursor(name string) string { return encodeCursor("credentials", name) }

func parseCredentialCursor(s string) (string, error) {
	f, err := decodeCursor("credentials", s, 1)
	if err != nil {
		return "", err
	}
	return f[0], nil
}

package cli

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// pageSize is what the CLI asks the server for per page (the most it
// gives), so a long listing costs few round trips.
var pageSize = 1000

// pages GETs path, then every next page named by the answers' Link
// headers (rel="next"), handing each page's body to each until it returns
// false or the last page is read. A next page must be on the same server:
// the bearer token is never sent elsewhere.
func (c *apiClient) pages(path string, each func(body []byte) (more bool, err error)) error {
	if c.err != nil {
		return c.err
	}
	tap := &linkTap{}
	hc := *c.http
	tap.next = hc.Transport
	if tap.next == nil {
		tap.next = http.DefaultTransport
	}
	hc.Transport = tap
	c2 := *c
	c2.http = &hc
	for path != "" {
		body, err := c2.open("GET", path, nil)
		if err != nil {
			return err
		}
		data, err := io.ReadAll(io.LimitReader(body, 64<<20))
		body.Close()
		if err != nil {
			return fmt.Errorf("GET %s: %w", path, err)
		}
		more, err := each(data)
		if err != nil || !more {
			return err
		}
		if path, err = c.nextPath(tap.link()); err != nil {
			return err
		}
	}
	return nil
}

// nextPath returns the path and query of the rel="next" target in a Link
// header value ("" if there is none), resolved against the server's URL.
func (c *apiClient) nextPath(link string) (string, error) {
	for _, part := range strings.Split(link, ",") {
		target, params, ok := strings.Cut(strings.TrimSpace(part), ";")
		if !ok || !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") {
			continue
		}
		next := false
		for _, p := range strings.Split(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(k, "rel") && strings.Trim(v, `"`) == "next" {
				next = true
			}
		}
		if !next {
			continue
		}
		base, err := url.Parse(c.base + "/")
		if err != nil {
			return "", err
		}
		u, err := base.Parse(target[1 : len(target)-1])
		if err != nil || u.Scheme != base.Scheme || u.Host != base.Host {
			return "", fmt.Errorf("the server's next page %s is not on %s; not following it", target, c.base)
		}
		return u.RequestURI(), nil
	}
	return "", nil
}

// linkTap remembers the Link header of the last answer it passed on.
type linkTap struct {
	next http.RoundTripper
	mu   sync.Mutex
	last string
}

func (t *linkTap) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err == nil {
		t.mu.Lock()
		t.last = resp.Header.Get("Link")
		t.mu.Unlock()
	}
	return resp, err
}

func (t *linkTap) link() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

package contain

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Bounds on what post reads of an answer.
const (
	// postSnippet is how much of a failed answer's body post reads for its
	// error (beyond the longest secret, so a secret that starts inside it is
	// read whole and redacted).
	postSnippet = 512
	// postDrain is how much more post reads and discards so the connection
	// can be reused; an answer longer than that closes it instead.
	postDrain = 64 << 10
	// postShown caps, in characters, the body snippet and the network error
	// text in post's errors.
	postShown = 200
)

// minURLSecret is the shortest username, query value or valueless query key
// redacted on its own: shorter ones ("v=1") are not credentials, and
// replacing them everywhere would garble the message (every "1" in an
// address). The password, the whole userinfo and the whole query are
// redacted whatever their length.
const minURLSecret = 4

// redacted replaces a secret in error text.
const redacted = "[REDACTED]"

// defaultClient is the client post uses when given none: its own
// connection pool, and no redirects (a 3xx is a failure, so a token or a
// payload never moves hosts). The pool keeps enough idle connections per
// target for concurrent containments to reuse them: with Go's default of
// two, most calls under load dialled a new connection and left thousands
// of sockets in TIME_WAIT.
var defaultClient = &http.Client{
	Transport: pooledTransport(),
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// MaxIdlePerTarget bounds the idle keep-alive connections kept per target.
const MaxIdlePerTarget = 128

func pooledTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = MaxIdlePerTarget
	t.MaxIdleConns = 4 * MaxIdlePerTarget
	return t
}

// postCall is one JSON POST.
type postCall struct {
	// URL is the absolute http(s) URL; its userinfo and query may carry
	// secrets, which post keeps out of its errors.
	URL string
	// Body is sent as it is, with Content-Type application/json.
	Body []byte
	// Header holds further request headers; post sets Content-Type.
	Header http.Header
	// Timeout bounds the call, reading the answer included.
	Timeout time.Duration
	// Token, unless "", is sent as a bearer token (Authorization) and kept
	// out of post's errors.
	Token string
}

// post makes one POST of c with client (defaultClient when nil). It returns
// the HTTP status (0 if no answer came) and an error unless the answer was
// 2xx; retry reports whether another attempt might succeed (a network
// error, a timeout or a 5xx; not a cancellation of ctx, an invalid request,
// a 3xx or a 4xx).
//
// Errors start "POST <URL with userinfo and query redacted>: " and then
// say "invalid request: …", "canceled: …", "timed out after <timeout>",
// the network error (unwrapped from *url.Error), or "HTTP <status>" and
// the start of the body. Nothing in them comes from the server or the
// network unredacted: c.Token and the URL's secrets are replaced by
// [REDACTED] wherever they appear.
//
// post reads at most postSnippet + the longest secret + postDrain bytes of
// a body, always within c.Timeout, and closes it; a body it read to the
// end leaves the connection free for the next call.
func post(ctx context.Context, client *http.Client, c postCall) (status int, retry bool, err error) {
	shown := redactURL(c.URL)
	r := newRedactor(c.URL, c.Token)
	cctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodPost, c.URL, bytes.NewReader(c.Body))
	if err != nil {
		return 0, false, fmt.Errorf("POST %s: invalid request: %s", shown, r.text(unwrapURLError(err).Error()))
	}
	for k, v := range c.Header {
		req.Header[k] = slices.Clone(v)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if client == nil {
		client = defaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return 0, false, fmt.Errorf("POST %s: canceled: %v", shown, ctx.Err())
		case errors.Is(cctx.Err(), context.DeadlineExceeded):
			return 0, true, fmt.Errorf("POST %s: timed out after %s", shown, c.Timeout)
		}
		return 0, true, fmt.Errorf("POST %s: %s", shown, r.text(unwrapURLError(err).Error()))
	}
	defer resp.Body.Close()
	limit := int64(postSnippet + r.longest())
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, limit))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, postDrain))
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return resp.StatusCode, false, nil
	}
	code := strconv.Itoa(resp.StatusCode)
	msg := "POST " + shown + ": HTTP " + code
	// The reason phrase is the server's; the code is ours to show.
	if reason := r.text(strings.TrimPrefix(resp.Status, code)); reason != "" {
		msg += " " + reason
	}
	body := r.apply(string(snippet))
	if int64(len(snippet)) == limit {
		body = r.trimPartial(body)
	}
	if s := printable(body, postShown); s != "" {
		msg += ": " + s
	}
	return resp.StatusCode, resp.StatusCode >= 500, errors.New(msg)
}

// redactor keeps secrets out of text from a server or the network. Its
// secrets are sorted longest first, so a whole userinfo or query is
// replaced before its parts.
type redactor []string

// newRedactor returns the redactor for a call to rawURL with token.
func newRedactor(rawURL, token string) redactor {
	var r redactor
	add := func(s string, minLen int) {
		if s != "" && len(s) >= minLen && !slices.Contains(r, s) {
			r = append(r, s)
		}
	}
	add(token, 1)
	if u, err := url.Parse(rawURL); err == nil {
		if u.User != nil {
			add(u.User.String(), 1) // escaped "user:pass"
			// What net/http sends as Basic auth, should a server echo it.
			p, _ := u.User.Password()
			add(base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+p)), 1)
			add(u.User.Username(), minURLSecret)
			if p, ok := u.User.Password(); ok {
				add(p, 1)
				if _, esc, ok := strings.Cut(u.User.String(), ":"); ok {
					add(esc, 1)
				}
			}
		}
		add(u.RawQuery, 1)
		for part := range strings.SplitSeq(u.RawQuery, "&") {
			k, v, hasValue := strings.Cut(part, "=")
			if !hasValue || v == "" {
				v = k // "?apikey": the key is the secret
			}
			add(v, minURLSecret)
			if dec, err := url.QueryUnescape(v); err == nil {
				add(dec, minURLSecret)
			}
		}
	}
	slices.SortStableFunc(r, func(a, b string) int { return len(b) - len(a) })
	return r
}

// apply replaces every secret in s.
func (r redactor) apply(s string) string {
	for _, secret := range r {
		s = strings.ReplaceAll(s, secret, redacted)
	}
	return s
}

// text redacts s and keeps its first postShown characters on one line.
func (r redactor) text(s string) string {
	return printable(r.apply(s), postShown)
}

// longest is the length of the longest secret.
func (r redactor) longest() int {
	if len(r) == 0 {
		return 0
	}
	return len(r[0])
}

// trimPartial drops a tail of s that is the start of a secret: what a read
// limit left of a secret cut off.
func (r redactor) trimPartial(s string) string {
	cut := len(s)
	for _, secret := range r {
		for n := min(len(secret)-1, len(s)); n > 0; n-- {
			if strings.HasSuffix(s, secret[:n]) {
				cut = min(cut, len(s)-n)
				break
			}
		}
	}
	return s[:cut]
}

// redactURL is rawURL for messages: any userinfo is replaced by xxxxx, the
// query (where receivers often put secrets) by REDACTED, and the fragment
// dropped.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	if u.User != nil {
		u.User = url.User("xxxxx")
	}
	if u.RawQuery != "" {
		u.RawQuery = "REDACTED"
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// unwrapURLError returns the cause of a *url.Error, whose text would repeat
// the URL, or err itself.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

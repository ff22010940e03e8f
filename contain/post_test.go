package contain_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/warden-sh/warden/contain"
)

// Secrets a call carries in its URL and its bearer token; none may appear
// in an error.
const (
	urlUser     = "alice-key"
	urlPassword = "hunter2"
	urlToken    = "s3cr3t-q"
	bearer      = "bearer-s3cret"
)

var postSecrets = []string{urlUser, urlPassword, urlToken, bearer,
	base64.StdEncoding.EncodeToString([]byte(urlUser + ":" + urlPassword))}

// countingClient is a client like the default one (no redirects) whose
// transport counts the response body bytes read.
type countingClient struct {
	*http.Client
	read atomic.Int64
}

func newCountingClient(t *testing.T) *countingClient {
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	c := &countingClient{}
	c.Client = &http.Client{
		Transport:     roundTripFunc(func(r *http.Request) (*http.Response, error) { return c.roundTrip(base, r) }),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (c *countingClient) roundTrip(base http.RoundTripper, r *http.Request) (*http.Response, error) {
	resp, err := base.RoundTrip(r)
	if resp != nil {
		resp.Body = &countingBody{ReadCloser: resp.Body, n: &c.read}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// raw answers with the bytes given, as they are, and closes the connection.
func raw(answer string) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		defer conn.Close()
		buf.WriteString(answer)
		buf.Flush()
	}
}

// reset answers with a TCP reset.
func reset(_ int, w http.ResponseWriter, _ *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	conn.(*net.TCPConn).SetLinger(0)
	conn.Close()
}

// endless answers code and a body of x's that ends only when the client
// stops reading (or after 1 GiB).
func endless(code int) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(code)
		chunk := []byte(strings.Repeat("x", 32<<10))
		for range 1 << 15 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}
}

// body answers code and b.
func body(code int, b string) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(code)
		io.WriteString(w, b)
	}
}

// echo answers 401 and the credentials it was sent.
func echo(_ int, w http.ResponseWriter, r *http.Request) {
	user, pass, _ := r.BasicAuth()
	w.WriteHeader(http.StatusUnauthorized)
	fmt.Fprintf(w, "auth %s; uri %s; user %s:%s; token %s; v=1 from 127.0.0.1",
		r.Header.Get("Authorization"), r.RequestURI, user, pass, r.URL.Query().Get("token"))
}

func TestPost(t *testing.T) {
	withSecrets := func(base string) string {
		return strings.Replace(base, "http://", "http://"+urlUser+":"+urlPassword+"@", 1) + "/hook?token=" + urlToken + "&v=1"
	}
	plain := func(base string) string { return base + "/hook" }
	// limit is what post reads of a body besides the drain when bearer is
	// the only secret.
	limit := contain.PostSnippet + len(bearer)
	tests := []struct {
		name    string
		respond func(int, http.ResponseWriter, *http.Request) // nil: the server is closed before the call
		hang    bool                                          // the server never answers
		url     func(base string) string                      // withSecrets when nil
		token   string
		timeout time.Duration // 5 s when 0
		ctx     func() context.Context
		status  int
		retry   bool
		// err is the error, "{URL}" standing for the URL as shown; when it
		// is "", errHas lists alternatives one of which the error holds
		// after "POST {URL}: ".
		err    string
		errHas []string
	}{
		{name: "200", respond: body(200, "ok"), status: 200},
		{name: "204 with a token", respond: status(204), token: bearer, status: 204},
		{name: "2xx with an endless body", respond: endless(200), status: 200},
		{name: "302 is a failure, not followed", respond: func(_ int, w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://127.0.0.1:1/elsewhere", http.StatusFound)
		}, status: 302, err: "POST {URL}: HTTP 302 Found"},
		{name: "404 is final", respond: body(404, "no such\nhook"), status: 404, err: "POST {URL}: HTTP 404 Not Found: no such hook"},
		{name: "503 is transient", respond: status(503), status: 503, retry: true,
			err: "POST {URL}: HTTP 503 Service Unavailable: Service Unavailable"},
		{name: "echoed URL secrets", respond: echo, status: 401,
			err: "POST {URL}: HTTP 401 Unauthorized: auth Basic [REDACTED]; uri /hook?[REDACTED]; user [REDACTED]; token [REDACTED]; v=1 from 127.0.0.1"},
		{name: "echoed bearer token", respond: echo, token: bearer, status: 401,
			err: "POST {URL}: HTTP 401 Unauthorized: auth Bearer [REDACTED]; uri /hook?[REDACTED]; user :; token [REDACTED]; v=1 from 127.0.0.1"},
		{name: "secret in the reason phrase", respond: raw("HTTP/1.1 418 " + urlPassword + " says\tno\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope"),
			status: 418, err: "POST {URL}: HTTP 418 [REDACTED] says no: nope"},
		{name: "endless 500 body", respond: endless(500), status: 500, retry: true,
			err: "POST {URL}: HTTP 500 Internal Server Error: " + strings.Repeat("x", 200) + "…"},
		{name: "token just inside the snippet is read whole", url: plain, token: bearer,
			respond: body(500, strings.Repeat(" ", contain.PostSnippet-1)+bearer+strings.Repeat(" ", 100<<10)),
			status:  500, retry: true, err: "POST {URL}: HTTP 500 Internal Server Error: [REDACTED]"},
		{name: "token cut by the read limit is dropped", url: plain, token: bearer,
			respond: body(500, strings.Repeat(" ", limit-3)+bearer+" and more"),
			status:  500, retry: true, err: "POST {URL}: HTTP 500 Internal Server Error"},
		{name: "timeout", hang: true, timeout: 50 * time.Millisecond, status: 0, retry: true,
			err: "POST {URL}: timed out after 50ms"},
		{name: "connection refused", status: 0, retry: true, errHas: []string{"connection refused"}},
		{name: "connection reset", respond: reset, status: 0, retry: true,
			errHas: []string{"connection reset by peer", "EOF"}},
		{name: "canceled", respond: status(200), status: 0,
			ctx: func() context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx
			}, err: "POST {URL}: canceled: context canceled"},
		{name: "invalid URL", url: func(base string) string { return withSecrets(base) + "\x7f" }, respond: status(200),
			err: "POST (invalid URL): invalid request: net/url: invalid control character in URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			respond := tt.respond
			if tt.hang {
				respond = hang(t)
			}
			tg := newTarget(t, respond)
			if respond == nil {
				tg.Close()
			}
			u := withSecrets(tg.URL)
			if tt.url != nil {
				u = tt.url(tg.URL)
			}
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			ctx := context.Background()
			if tt.ctx != nil {
				ctx = tt.ctx()
			}
			client := newCountingClient(t)
			st, retry, err := contain.Post(ctx, client.Client, contain.PostCall{
				URL: u, Body: []byte(`{}`), Timeout: timeout, Token: tt.token,
			})
			if st != tt.status || retry != tt.retry {
				t.Errorf("status, retry = %d, %v; want %d, %v (error %v)", st, retry, tt.status, tt.retry, err)
			}
			shown := contain.RedactURL(u)
			switch {
			case tt.err == "" && tt.errHas == nil:
				if err != nil {
					t.Errorf("error %q, want none", err)
				}
			case err == nil:
				t.Fatal("no error")
			case tt.err != "":
				if diff := cmp.Diff(strings.ReplaceAll(tt.err, "{URL}", shown), err.Error()); diff != "" {
					t.Errorf("error (-want +got):\n%s", diff)
				}
			default:
				rest, ok := strings.CutPrefix(err.Error(), "POST "+shown+": ")
				if !ok || !containsAny(rest, tt.errHas) || strings.Contains(rest, "Post ") {
					t.Errorf("error %q, want POST %s: and one of %q, unwrapped", err, shown, tt.errHas)
				}
			}
			if err != nil {
				for _, s := range postSecrets {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error %q holds the secret %q", err, s)
					}
				}
			}
			// The longest secret is at most 64 bytes here.
			if n, most := client.read.Load(), int64(contain.PostSnippet+64+contain.PostDrain); n > most {
				t.Errorf("read %d bytes of the body, want at most %d", n, most)
			}
		})
	}
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func TestPostSendsBodyAndHeaders(t *testing.T) {
	tg := newTarget(t, nil)
	h := http.Header{}
	h.Set("X-Warden-Event", "containment")
	h.Set("Content-Type", "text/plain") // post's own wins
	h.Set("Authorization", "Basic x")   // so does the token
	payload := []byte(`{"a": 1,  "b":[]}`)
	st, _, err := contain.Post(context.Background(), nil, contain.PostCall{URL: tg.URL + "/p", Body: payload, Header: h, Timeout: 5 * time.Second, Token: bearer})
	if st != 200 || err != nil {
		t.Fatalf("status %d, error %v", st, err)
	}
	r := tg.requests()[0]
	got := []string{r.Method, r.Path, string(r.Body), r.Header.Get("Content-Type"), r.Header.Get("X-Warden-Event"), r.Header.Get("Authorization")}
	want := []string{"POST", "/p", string(payload), "application/json", "containment", "Bearer " + bearer}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
	if h.Get("Content-Type") != "text/plain" || h.Get("Authorization") != "Basic x" {
		t.Error("post changed the caller's header")
	}
}

// TestPostReusesConnections: answers post reads to the end leave the
// connection open for the next call; a body past the drain bound closes it.
func TestPostReusesConnections(t *testing.T) {
	answers := []func(int, http.ResponseWriter, *http.Request){
		body(200, strings.Repeat("a", 1<<10)),
		body(500, strings.Repeat("b", 10<<10)),
		body(404, strings.Repeat("c", contain.PostDrain)), // snippet + drain covers it
		status(204),
		body(502, strings.Repeat("d", 2*contain.PostDrain)), // too long: closed
		status(200),
	}
	wantConns := []int64{1, 1, 1, 1, 1, 2}
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		n := int(r.Header.Get("X-N")[0] - '0')
		answers[n](n, w, r)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	client := newCountingClient(t)
	for i := range answers {
		h := http.Header{}
		h.Set("X-N", fmt.Sprint(i))
		contain.Post(context.Background(), client.Client, contain.PostCall{URL: srv.URL, Body: []byte(`{}`), Header: h, Timeout: 5 * time.Second})
		if got := conns.Load(); got != wantConns[i] {
			t.Errorf("after call %d: %d connections, want %d", i+1, got, wantConns[i])
		}
	}
}

func TestRedactURL(t *testing.T) {
	tests := map[string]string{
		"http://h/p":                            "http://h/p",
		"https://user:pass@h:8443/p":            "https://xxxxx@h:8443/p",
		"https://apikey@h/p":                    "https://xxxxx@h/p",
		"http://h/hook?token=abc&v=1":           "http://h/hook?REDACTED",
		"http://h/hook#frag":                    "http://h/hook",
		"http://u:p@h/a%2Fb?x#y":                "http://xxxxx@h/a%2Fb?REDACTED",
		"http://h/\x7f":                         "(invalid URL)",
		"http://[::1]:9/x?sig=" + urlPassword:   "http://[::1]:9/x?REDACTED",
		"HTTP://" + urlUser + "@Example.COM/:x": "http://xxxxx@Example.COM/:x",
	}
	for in, want := range tests {
		if got := contain.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

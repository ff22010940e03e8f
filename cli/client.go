package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	warden "github.com/warden-sh/warden"
)

// apiClient talks to a running warden server for commands given --url.
type apiClient struct {
	base   string
	token  string
	http   *http.Client
	header http.Header // sent with every request (e.g. Idempotency-Key)
	err    error       // the client could not be built (bad --ca, say)
}

// with returns a copy of c that also sends header k: v.
func (c *apiClient) with(k, v string) *apiClient {
	c2 := *c
	c2.header = c.header.Clone()
	if c2.header == nil {
		c2.header = http.Header{}
	}
	c2.header.Set(k, v)
	return &c2
}

func (e *env) client() *apiClient {
	hc, err := e.httpClient(60 * time.Second)
	return &apiClient{base: strings.TrimRight(e.url, "/"), token: e.bearer(), http: hc, err: err}
}

// do sends a JSON request and decodes the JSON answer into out. An error
// answer becomes a *warden.Error with the server's code and sentence.
func (c *apiClient) do(method, path string, in, out any) error {
	body, err := c.open(method, path, in)
	if err != nil {
		return err
	}
	defer body.Close()
	data, err := io.ReadAll(io.LimitReader(body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decoding answer: %w", method, path, err)
	}
	return nil
}

// open sends a request and returns the body of a successful answer for
// the caller to stream; an error answer is mapped as in do.
func (c *apiClient) open(method, path string, in any) (io.ReadCloser, error) {
	if c.err != nil {
		return nil, c.err
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	for k, vs := range c.header {
		req.Header[k] = vs
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.transportError(method, path, err)
	}
	if resp.StatusCode < 400 {
		return resp.Body, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if we := c.refusal(resp, data); we != nil {
		return nil, we
	}
	return nil, fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(data))
}

// refusal turns an error answer {"error", "code", ...data} into the
// *warden.Error the server refused with, keeping its data (a request
// digest, say: the next step needs it) and Retry-After; nil if the answer
// is not one.
func (c *apiClient) refusal(resp *http.Response, data []byte) *warden.Error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if dec.Decode(&m) != nil {
		return nil
	}
	msg, _ := m["error"].(string)
	code, _ := m["code"].(string)
	if code == "" {
		return nil
	}
	for _, k := range []string{"error", "code", "success"} {
		delete(m, k)
	}
	we := &warden.Error{Code: code, Message: msg}
	if len(m) > 0 {
		we.Data = m
	}
	if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && n > 0 {
		we.RetryAfter = time.Duration(n) * time.Second
	}
	switch {
	case code == warden.EUNAUTHORIZED && c.token == "":
		// The server's sentence is for HTTP clients; say it in flags.
		we.Message = fmt.Sprintf("The server at %s needs a token: pass --token or set WARDEN_TOKEN (warden init printed the admin's; warden credential add makes more).", c.base)
	case code == warden.EUNAUTHORIZED:
		we.Message += " Check the token given by --token or WARDEN_TOKEN."
	}
	return we
}

// transportError says what went wrong on the way to the server. A server
// that cannot be dialed got nothing, so the refusal is unavailable (exit
// 75: the same command may work once a server runs there).
func (c *apiClient) transportError(method, path string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return &warden.Error{Code: warden.EUNAVAILABLE, Message: fmt.Sprintf(
			"No warden server answers at %s (%v): start one with warden serve, or point --url or WARDEN_URL at a running one.", c.base, oe.Err)}
	}
	return fmt.Errorf("%s %s%s: %w", method, c.base, path, err)
}

package http

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/jsonx"
)

// MaxBodyBytes bounds every JSON request body.
const MaxBodyBytes = 64 << 10

func asError(err error, target **warden.Error) bool { return errors.As(err, target) }

// DecodeJSON decodes exactly one JSON object from data into v, strictly
// (see package jsonx, the one decoder every transport shares).
func DecodeJSON(data []byte, v any) error { return jsonx.Decode(data, v) }

// readJSON reads the request body (see readBody) and decodes it strictly.
func readJSON(r *http.Request, v any) error {
	data, err := readBody(r)
	if err != nil {
		return err
	}
	return DecodeJSON(data, v)
}

// readBody reads a JSON request body: at most MaxBodyBytes, and a
// Content-Type, if any, of application/json (a browser's cross-site form
// post cannot send that without a preflight).
func readBody(r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if err := checkContentType(ct); err != nil {
			return nil, err
		}
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return nil, warden.Errorf(warden.EINVALID, "Request body could not be read.")
	}
	if len(data) > MaxBodyBytes {
		return nil, warden.Errorf(warden.ETOOLARGE, "Request body exceeds %d bytes.", MaxBodyBytes)
	}
	return data, nil
}

// checkContentType accepts the media type application/json in any case,
// with any parameters, but a charset only if it is utf-8 (jsonx refuses
// anything but UTF-8, so another label would be a lie). A prefix match
// would let application/jsonx or application/json-seq through.
func checkContentType(ct string) error {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return warden.Errorf(warden.EINVALID, "Content-Type must be application/json, not %q.", ct)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return warden.Errorf(warden.EINVALID, "Content-Type charset must be utf-8, not %q.", cs)
	}
	return nil
}

// query validates the query string against the allowed parameter names, so
// a misspelt filter is an error rather than silently ignored.
func query(r *http.Request, allowed ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, warden.Errorf(warden.EINVALID, "Query string is malformed.")
	}
	for k, vs := range q {
		ok := false
		for _, a := range allowed {
			if k == a {
				ok = true
			}
		}
		if !ok {
			if len(allowed) == 0 {
				return nil, warden.Errorf(warden.EINVALID, "Unknown query parameter %q; this endpoint takes none.", k)
			}
			return nil, warden.Errorf(warden.EINVALID, "Unknown query parameter %q; allowed: %s.", k, strings.Join(allowed, ", "))
		}
		if len(vs) > 1 {
			return nil, warden.Errorf(warden.EINVALID, "Query parameter %q is given more than once.", k)
		}
	}
	return q, nil
}

// uintParam parses an optional unsigned integer parameter.
func uintParam(q url.Values, name string) (*uint64, error) {
	s := q.Get(name)
	if s == "" {
		return nil, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return nil, warden.Errorf(warden.EINVALID, "Query parameter %q must be a non-negative integer, not %q.", name, s)
	}
	return &n, nil
}

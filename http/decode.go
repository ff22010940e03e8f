package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"

	warden "github.com/warden-sh/warden"
)

// MaxBodyBytes bounds every JSON request body.
const MaxBodyBytes = 64 << 10

func asError(err error, target **warden.Error) bool { return errors.As(err, target) }

// DecodeJSON decodes exactly one JSON object from data into v, strictly:
// unknown fields, trailing data, and an empty body are errors (EINVALID).
// It is the one decoder every JSON request body goes through.
//
// Beyond encoding/json it also rejects a body that is not an object,
// duplicate top-level keys, and keys that match a field only
// case-insensitively, so what an auditor reads is what warden acted on.
func DecodeJSON(data []byte, v any) error {
	if err := checkTopLevelKeys(data, v); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		switch {
		case errors.Is(err, io.EOF):
			return warden.Errorf(warden.EINVALID, "Request body is empty; send a JSON object.")
		default:
			return warden.Errorf(warden.EINVALID, "Request body is not valid JSON for this endpoint: %s.", cleanJSONError(err))
		}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return warden.Errorf(warden.EINVALID, "Request body has data after the JSON object.")
	}
	return nil
}

// checkTopLevelKeys scans the top-level object's keys: each must appear
// once and exactly match a json tag of v's struct type.
func checkTopLevelKeys(data []byte, v any) error {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return warden.Errorf(warden.EINVALID, "Request body is empty; send a JSON object.")
	}
	if trimmed[0] != '{' {
		return warden.Errorf(warden.EINVALID, "Request body must be a JSON object.")
	}
	fields := jsonFields(reflect.TypeOf(v))
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if _, err := dec.Token(); err != nil {
		return warden.Errorf(warden.EINVALID, "Request body is not valid JSON: %s.", cleanJSONError(err))
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return warden.Errorf(warden.EINVALID, "Request body is not valid JSON: %s.", cleanJSONError(err))
		}
		key, _ := tok.(string)
		if seen[key] {
			return warden.Errorf(warden.EINVALID, "Request body repeats the field %q.", key)
		}
		seen[key] = true
		if fields != nil && !fields[key] {
			return warden.Errorf(warden.EINVALID, "Request body has unknown field %q.", key)
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return warden.Errorf(warden.EINVALID, "Request body is not valid JSON: %s.", cleanJSONError(err))
		}
	}
	return nil
}

var fieldCache sync.Map // reflect.Type → map[string]bool

// jsonFields returns the exact JSON names of a struct type's fields
// (including embedded structs), or nil for non-struct types.
func jsonFields(t reflect.Type) map[string]bool {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]bool)
	}
	out := map[string]bool{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
				walk(f.Type)
				continue
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			out[name] = true
		}
	}
	walk(t)
	fieldCache.Store(t, out)
	return out
}

func cleanJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q must be %s", te.Field, te.Type.String())
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// readJSON reads the request body (at most MaxBodyBytes) and decodes it.
func readJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return warden.Errorf(warden.EINVALID, "Content-Type must be application/json, not %q.", ct)
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return warden.Errorf(warden.EINVALID, "Request body could not be read.")
	}
	if len(data) > MaxBodyBytes {
		return warden.Errorf(warden.ETOOLARGE, "Request body exceeds %d bytes.", MaxBodyBytes)
	}
	return DecodeJSON(data, v)
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

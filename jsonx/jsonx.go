// Package jsonx is warden's one strict JSON decoder, shared by every
// transport (HTTP, MCP, CLI): exactly one object, no unknown, repeated or
// case-folded keys, no trailing data. It performs no I/O.
package jsonx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"

	warden "github.com/warden-sh/warden"
)

// Decode decodes exactly one JSON object from data into v, strictly.
// Errors are EINVALID with a sentence naming the problem.
func Decode(data []byte, v any) error {
	if err := checkTopLevelKeys(data, v); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return warden.Errorf(warden.EINVALID, "Request body is empty; send a JSON object.")
		}
		return warden.Errorf(warden.EINVALID, "Request body is not valid JSON for this endpoint: %s.", cleanError(err))
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
		return warden.Errorf(warden.EINVALID, "Request body is not valid JSON: %s.", cleanError(err))
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return warden.Errorf(warden.EINVALID, "Request body is not valid JSON: %s.", cleanError(err))
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
			return warden.Errorf(warden.EINVALID, "Request body is not valid JSON: %s.", cleanError(err))
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

func cleanError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q must be %s", te.Field, te.Type.String())
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// Package jsonx is warden's one strict JSON decoder, shared by every
// transport (HTTP, MCP, CLI): exactly one object of valid UTF-8, no
// unpaired surrogate escapes, no unknown or case-folded keys in the
// object's own members, no key repeated at any depth, no trailing data. It
// performs no I/O.
package jsonx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	warden "github.com/warden-sh/warden"
)

// Decode decodes exactly one JSON object from data into v, strictly: data
// MUST be valid UTF-8 with no unpaired UTF-16 surrogate escapes, MUST NOT
// repeat a key in any object at any depth, MUST NOT nest deeper than
// MaxDepth, and MUST NOT hold anything after the object; the object's keys
// MUST match v's fields exactly (no unknown or case-folded keys; nested
// objects are maps today, whose keys are data and case-sensitive, and
// nested structs get encoding/json's unknown-field check). Whatever it
// accepts, encoding/json decodes identically. Errors are EINVALID with a
// sentence naming the rule and where it broke.
func Decode(data []byte, v any) error {
	if err := scan(data, jsonFields(reflect.TypeOf(v))); err != nil {
		return err.err()
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return warden.Errorf(warden.EINVALID, "Request body is not valid JSON for this endpoint: %s.", cleanError(err))
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

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
	return decode(data, v, false)
}

// DecodeRequired is Decode, and moreover every member Required names for
// v's type MUST be present and not null: a request's required arguments
// are refused when missing, by name, exactly as a JSON schema built from
// the same type (Required) marks them.
func DecodeRequired(data []byte, v any) error {
	return decode(data, v, true)
}

func decode(data []byte, v any, required bool) error {
	fs := fieldsOf(reflect.TypeOf(v))
	var req map[string]int
	if required && fs != nil {
		if len(fs.required) > maxRequired {
			return fmt.Errorf("jsonx.DecodeRequired: %s has %d required fields, more than %d", reflect.TypeOf(v), len(fs.required), maxRequired)
		}
		req = fs.requiredIndex
	}
	var names map[string]bool
	if fs != nil {
		names = fs.names
	}
	if err := scan(data, names, req); err != nil {
		if err.kind == errMissing {
			err.what = fs.required[err.off]
		}
		return err.err()
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return warden.Errorf(warden.EINVALID, "%s", cleanError(reflect.TypeOf(v), err))
	}
	return nil
}

// maxRequired bounds the required members of one type (the scanner marks
// them in a 64-bit set).
const maxRequired = 64

// Required returns the JSON names of the members a request of struct type
// t (or a pointer to one) MUST carry, in field order: every exported field,
// embedded structs' included, whose json tag has neither omitempty nor
// omitzero. It is the one rule for both the decoder (DecodeRequired) and
// the JSON schemas transports publish; nil for a non-struct type.
func Required(t reflect.Type) []string {
	fs := fieldsOf(t)
	if fs == nil {
		return nil
	}
	return append([]string(nil), fs.required...)
}

// fieldSet is what the decoder knows of a struct type's members.
type fieldSet struct {
	names         map[string]bool // every JSON member name
	required      []string        // required names in field order
	requiredIndex map[string]int  // name → index in required
}

var fieldCache sync.Map // reflect.Type → *fieldSet

// fieldsOf returns the JSON members of a struct type (including embedded
// structs), or nil for non-struct types.
func fieldsOf(t reflect.Type) *fieldSet {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	if f, ok := fieldCache.Load(t); ok {
		return f.(*fieldSet)
	}
	out := &fieldSet{names: map[string]bool{}, requiredIndex: map[string]int{}}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
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
			out.names[name] = true
			optional := false
			for _, o := range strings.Split(opts, ",") {
				optional = optional || o == "omitempty" || o == "omitzero"
			}
			if _, dup := out.requiredIndex[name]; !optional && !dup {
				out.requiredIndex[name] = len(out.required)
				out.required = append(out.required, name)
			}
		}
	}
	walk(t)
	fieldCache.Store(t, out)
	return out
}

// cleanError turns what encoding/json still refuses after the scan (a
// value of the wrong type, in practice) into a sentence that names the
// field and what it must be, in words a caller of any transport knows.
func cleanError(root reflect.Type, err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		name, at := jsonPath(root, te.Field)
		for root != nil && root.Kind() == reflect.Pointer {
			root = root.Elem()
		}
		switch {
		case name == "" && root != nil && root.Kind() == reflect.Map:
			return fmt.Sprintf("Every value in the request must be %s, not %s.", typeWords(te.Type), valueWords(te.Value))
		case name == "":
			return fmt.Sprintf("The request must be %s, not %s.", typeWords(te.Type), valueWords(te.Value))
		case at != nil && at != te.Type && (at.Kind() == reflect.Map || at.Kind() == reflect.Slice || at.Kind() == reflect.Array):
			// encoding/json names the member, not the element or map
			// value that had the wrong type.
			return fmt.Sprintf("Every value in field %q must be %s, not %s.", name, typeWords(te.Type), valueWords(te.Value))
		}
		return fmt.Sprintf("Field %q must be %s, not %s.", name, typeWords(te.Type), valueWords(te.Value))
	}
	return "The request is not valid: " + strings.TrimPrefix(err.Error(), "json: ") + "."
}

// jsonPath turns encoding/json's dotted field path, which names embedded
// structs by their Go type, into the JSON member path a caller wrote, and
// returns the type found there (nil when the walk cannot follow it).
func jsonPath(root reflect.Type, field string) (string, reflect.Type) {
	if field == "" {
		return "", nil
	}
	var out []string
	t := root
	for _, seg := range strings.Split(field, ".") {
		for t != nil && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t == nil || t.Kind() != reflect.Struct {
			out, t = append(out, seg), nil
			continue
		}
		if f, ok := t.FieldByName(seg); ok && f.Anonymous && f.Tag.Get("json") == "" {
			t = f.Type // an embedded struct: its members are the parent's
			continue
		}
		out, t = append(out, seg), member(t, seg)
	}
	return strings.Join(out, "."), t
}

// member returns the type of struct t's member with JSON name name,
// looking through embedded structs as encoding/json does; nil if none.
func member(t reflect.Type, name string) reflect.Type {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
			if m := member(f.Type, name); m != nil {
				return m
			}
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		if f.IsExported() && tag == name {
			return f.Type
		}
	}
	return nil
}

// typeWords names what a Go type accepts from JSON.
func typeWords(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a whole number 0 or more"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
}

// valueWords names the JSON value encoding/json found: "string",
// "number", "number 1.5", "bool", "array", "object".
func valueWords(v string) string {
	switch v {
	case "string":
		return "a string"
	case "number":
		return "a number"
	case "bool":
		return "a boolean"
	case "array":
		return "an array"
	case "object":
		return "an object"
	}
	if n, ok := strings.CutPrefix(v, "number "); ok {
		return n
	}
	return v
}

package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// The governance tools answer with JSON objects of many shapes. Without
// --json the CLI shows them as text: "key: value" lines in the server's
// member order (plain values first, then nested objects, then lists), and
// a list of objects as a table. --json prints the answer itself.

// member is one member of a JSON object, in document order.
type member struct {
	key string
	val any
}

// object is a JSON object with its member order kept.
type object []member

// decodeOrdered decodes one JSON value, keeping object member order;
// numbers stay json.Number so they print exactly as sent.
func decodeOrdered(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return decodeValue(dec)
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch d := tok.(type) {
	case json.Delim:
		switch d {
		case '{':
			var o object
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				o = append(o, member{k.(string), v})
			}
			_, err := dec.Token()
			return o, err
		case '[':
			a := []any{}
			for dec.More() {
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			_, err := dec.Token()
			return a, err
		}
		return nil, fmt.Errorf("unexpected %v", d)
	}
	return tok, nil
}

// renderText writes a decoded JSON value as readable text.
func renderText(w io.Writer, v any) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	renderValue(tw, "", v)
	tw.Flush()
}

func renderValue(w io.Writer, indent string, v any) {
	switch v := v.(type) {
	case object:
		renderObject(w, indent, v)
	case []any:
		renderList(w, indent, v)
	default:
		fmt.Fprintf(w, "%s%s\n", indent, scalarText(v))
	}
}

func renderObject(w io.Writer, indent string, o object) {
	var nested []member
	for _, m := range o {
		switch {
		case m.val == nil:
			// Unset members say nothing a reader needs; --json has them.
		case isEmptyList(m.val):
			fmt.Fprintf(w, "%s%s:\t(none)\n", indent, m.key)
		case isPlain(m.val):
			s := scalarText(m.val)
			if strings.Contains(s, "\n") {
				nested = append(nested, m)
				continue
			}
			fmt.Fprintf(w, "%s%s:\t%s\n", indent, m.key, s)
		default:
			nested = append(nested, m)
		}
	}
	for _, m := range nested {
		switch v := m.val.(type) {
		case string: // several lines (a signed note, say)
			fmt.Fprintf(w, "%s%s:\n", indent, m.key)
			for _, line := range strings.Split(strings.TrimRight(v, "\n"), "\n") {
				fmt.Fprintf(w, "%s  %s\n", indent, line)
			}
		case []any:
			fmt.Fprintf(w, "%s%s:\n", indent, m.key)
			renderList(w, indent+"  ", v)
		default:
			fmt.Fprintf(w, "%s%s:\n", indent, m.key)
			renderValue(w, indent+"  ", v)
		}
	}
}

// renderList writes a list of objects as a table of their plain members
// (nested objects and *_hash members are left to --json, to keep rows on
// one line), and any other list one item per line.
func renderList(w io.Writer, indent string, a []any) {
	var cols []string
	seen := map[string]bool{}
	for _, item := range a {
		o, ok := item.(object)
		if !ok {
			for _, item := range a {
				renderValue(w, indent+"- ", item)
			}
			return
		}
		for _, m := range o {
			if !seen[m.key] {
				seen[m.key] = true
				cols = append(cols, m.key)
			}
		}
	}
	var shown []string
	for _, c := range cols {
		if strings.HasSuffix(c, "_hash") {
			continue
		}
		plain := true
		for _, item := range a {
			if v := lookup(item.(object), c); v != nil && !isPlain(v) {
				plain = false
			}
		}
		if plain {
			shown = append(shown, c)
		}
	}
	fmt.Fprintf(w, "%s%s\n", indent, strings.ToUpper(strings.Join(shown, "\t")))
	for _, item := range a {
		cells := make([]string, len(shown))
		for i, c := range shown {
			cells[i] = scalarText(lookup(item.(object), c))
		}
		fmt.Fprintf(w, "%s%s\n", indent, strings.Join(cells, "\t"))
	}
}

func lookup(o object, key string) any {
	for _, m := range o {
		if m.key == key {
			return m.val
		}
	}
	return nil
}

// isPlain says whether v prints on one line: a scalar, or a list of
// scalars.
func isPlain(v any) bool {
	switch v := v.(type) {
	case object:
		return false
	case []any:
		for _, x := range v {
			if _, ok := x.(object); ok {
				return false
			}
			if _, ok := x.([]any); ok {
				return false
			}
		}
	}
	return true
}

func isEmptyList(v any) bool {
	a, ok := v.([]any)
	return ok && len(a) == 0
}

func scalarText(v any) string {
	switch v := v.(type) {
	case nil:
		return "-"
	case string:
		return v
	case []any:
		if len(v) == 0 {
			return "-"
		}
		s := make([]string, len(v))
		for i, x := range v {
			s[i] = scalarText(x)
		}
		return strings.Join(s, ", ")
	}
	return fmt.Sprint(v)
}

package mcp

import (
	"fmt"
	"reflect"

	"github.com/google/jsonschema-go/jsonschema"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine/governor"
	"github.com/warden-sh/warden/jsonx"
)

// schemaOptions adjust inference where a Go type decodes more than its
// shape says: a StringList is one name or several.
var schemaOptions = &jsonschema.ForOptions{TypeSchemas: map[reflect.Type]*jsonschema.Schema{
	reflect.TypeFor[governor.StringList](): {AnyOf: []*jsonschema.Schema{
		{Type: "string"},
		{Type: "array", Items: &jsonschema.Schema{Type: "string"}},
	}},
}}

// enums lists the values of the domain's enumerated string arguments, by
// property name, so an agent sees the ladder and the seed's types.
var enums = map[string][]any{
	"to_profile":        values(warden.Profiles),
	"from_profile":      values(warden.Profiles),
	"current_profile":   values(warden.Profiles),
	"profile":           values(warden.Profiles),
	"escalation_type":   values(warden.EscalationTypes),
	"deescalation_type": values(warden.DeescalationTypes),
}

func values[T ~string](list []T) []any {
	out := make([]any, len(list))
	for i, v := range list {
		out[i] = string(v)
	}
	return out
}

// InputSchema derives a tool's input JSON schema from its Go argument type
// (what NewArgs returns): properties from json tags, no additional
// properties, and as required exactly what jsonx.Required names (fields
// without omitempty or omitzero) — the members the governor's decoder,
// jsonx.DecodeRequired, refuses to go without. One type, one rule, so the
// schema an agent reads and the decoder that judges it cannot disagree.
func InputSchema(t *governor.Tool) (*jsonschema.Schema, error) {
	typ := reflect.TypeOf(t.NewArgs())
	if typ.Kind() != reflect.Pointer {
		return nil, fmt.Errorf("mcp.InputSchema: tool %s: NewArgs returns %s, not a pointer", t.Name, typ)
	}
	s, err := jsonschema.ForType(typ.Elem(), schemaOptions)
	if err != nil {
		return nil, fmt.Errorf("mcp.InputSchema: tool %s: %w", t.Name, err)
	}
	if s.Type != "object" {
		return nil, fmt.Errorf("mcp.InputSchema: tool %s: arguments are %q, not an object", t.Name, s.Type)
	}
	s.Required = jsonx.Required(typ)
	for name, prop := range s.Properties {
		if e, ok := enums[name]; ok && (prop.Type == "string") {
			prop.Enum = e
		}
	}
	return s, nil
}

// ToolDefs returns the MCP definitions of tools: the governor's names and
// descriptions, and input schemas from InputSchema. It needs no engine, so
// a proxy (`warden mcp`) lists exactly what the server serves.
func ToolDefs(tools []*governor.Tool) ([]*sdk.Tool, error) {
	out := make([]*sdk.Tool, 0, len(tools))
	for _, t := range tools {
		s, err := InputSchema(t)
		if err != nil {
			return nil, err
		}
		out = append(out, &sdk.Tool{Name: t.Name, Description: t.Description, InputSchema: s})
	}
	return out, nil
}

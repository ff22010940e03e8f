// Package contain carries out containment and alerting for the incident
// recorder: it parses the strict YAML containment policy, calls the policy's
// HTTP targets (agent, airlock, registry) with bounded retries, records
// dry-runs in drill mode, and sends HMAC-signed webhooks from the outbox.
//
// The recorder decides WHAT to contain and records the outcome; this package
// only performs the calls. It MUST NOT be imported by the rules (they
// depend on the warden.Actuator and warden.Waker ports instead;
// architecture_test.go enforces it).
package contain

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
	"go.yaml.in/yaml/v3"
)

//go:embed testdata/containment.yaml
var defaultPolicyYAML []byte

// DefaultPolicyYAML returns the commented YAML form of warden.DefaultPolicy,
// for operators to start from (`warden init` writes it out). ParsePolicy of
// it equals warden.DefaultPolicy(); a test guards that.
func DefaultPolicyYAML() []byte { return bytes.Clone(defaultPolicyYAML) }

// MaxPolicySize bounds a policy file; a larger one is refused.
const MaxPolicySize = 1 << 20

// DefaultTimeoutSeconds is the per-call target timeout when the policy's
// targets.timeout_seconds is 0 or absent.
const DefaultTimeoutSeconds = 5

// maxNesting bounds how deep the key checker descends (aliases included).
const maxNesting = 64

// ParsePolicy decodes a containment policy strictly: exactly one YAML
// document, a mapping at the top, no unknown keys at any level, no
// duplicate keys, every field of the right type. It then applies the one
// default (targets.timeout_seconds 0 → 5) and runs Validate, which requires
// a rule for every incident class: a missing class is an error, never
// filled in silently.
//
// Every error is a *warden.Error with code EINVALID whose message names the
// offending key and, where YAML knows it, the line.
func ParsePolicy(data []byte) (*warden.ContainmentPolicy, error) {
	if len(data) > MaxPolicySize {
		return nil, warden.Errorf(warden.EINVALID, "Policy file is %d bytes; the limit is %d.", len(data), MaxPolicySize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil, errEmptyPolicy()
	} else if err != nil {
		return nil, yamlError(err, nil)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, warden.Errorf(warden.EINVALID, "Policy YAML line %d: a second YAML document starts here; a policy file holds exactly one.", extra.Line)
	} else if !errors.Is(err, io.EOF) {
		return nil, yamlError(err, nil)
	}

	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, errEmptyPolicy()
		}
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, errEmptyPolicy()
	}
	if root.Kind != yaml.MappingNode {
		return nil, warden.Errorf(warden.EINVALID, "Policy YAML line %d: the top level must be a mapping with the keys %s.", root.Line, strings.Join(yamlKeys(policyType), ", "))
	}
	w := &keyChecker{lines: map[int]string{}, paths: map[string]int{}, seen: map[nodeType]bool{}}
	if err := w.check(root, policyType, "", 0); err != nil {
		return nil, err
	}

	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	var p warden.ContainmentPolicy
	if err := strict.Decode(&p); err != nil {
		return nil, yamlError(err, w.lines)
	}
	if p.Targets.TimeoutSeconds == 0 {
		p.Targets.TimeoutSeconds = DefaultTimeoutSeconds
	}
	normalize(&p)
	if err := p.Validate(); err != nil {
		return nil, withLine(err, w.paths)
	}
	return &p, nil
}

// LoadPolicy reads and parses the policy file at path. It returns the raw
// bytes too, so callers can receipt or digest exactly what was loaded.
// Errors are EINVALID and name the file.
func LoadPolicy(path string) (*warden.ContainmentPolicy, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, warden.Errorf(warden.EINVALID, "Cannot read containment policy file: %v.", err)
	}
	p, err := ParsePolicy(data)
	if err != nil {
		return nil, data, warden.Errorf(warden.ErrorCode(err), "Containment policy file %s: %s", path, warden.ErrorMessage(err))
	}
	return p, data, nil
}

// PolicyDigest returns "sha256:" + hex(SHA-256) of the RFC 8785 canonical
// JSON of p, with empty lists counted as absent. Two policies that parse to
// the same value have the same digest whatever their YAML formatting and
// comments. p is not modified.
func PolicyDigest(p *warden.ContainmentPolicy) (string, error) {
	if p == nil {
		return "", errors.New("contain.PolicyDigest: nil policy")
	}
	c, err := ledger.Canonical(normalize(clonePolicy(p)))
	if err != nil {
		return "", fmt.Errorf("contain.PolicyDigest: %w", err)
	}
	sum := sha256.Sum256(c)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// normalize makes empty lists nil, so `webhooks: []` and no webhooks are
// the same policy (and digest alike), as warden.DefaultPolicy writes them.
func normalize(p *warden.ContainmentPolicy) *warden.ContainmentPolicy {
	for c, r := range p.Rules {
		if len(r.Actions) == 0 && r.Actions != nil {
			r.Actions = nil
			p.Rules[c] = r
		}
	}
	if len(p.Alerting.Webhooks) == 0 {
		p.Alerting.Webhooks = nil
	}
	for i := range p.Alerting.Webhooks {
		if len(p.Alerting.Webhooks[i].Events) == 0 {
			p.Alerting.Webhooks[i].Events = nil
		}
	}
	return p
}

// clonePolicy deep-copies p.
func clonePolicy(p *warden.ContainmentPolicy) *warden.ContainmentPolicy {
	q := *p
	if p.Rules != nil {
		q.Rules = make(map[string]warden.ClassRule, len(p.Rules))
		for c, r := range p.Rules {
			r.Actions = slices.Clone(r.Actions)
			q.Rules[c] = r
		}
	}
	q.Alerting.Webhooks = slices.Clone(p.Alerting.Webhooks)
	for i := range q.Alerting.Webhooks {
		q.Alerting.Webhooks[i].Events = slices.Clone(q.Alerting.Webhooks[i].Events)
	}
	if p.Targets.Retries != nil {
		n := *p.Targets.Retries
		q.Targets.Retries = &n
	}
	return &q
}

func errEmptyPolicy() error {
	return warden.Errorf(warden.EINVALID, "Policy file is empty; it needs at least version and a rule for every incident class (start from `warden`'s default policy).")
}

var policyType = reflect.TypeFor[warden.ContainmentPolicy]()

// yamlError turns a yaml.v3 error into an EINVALID sentence, adding the key
// path of each line it mentions when lines knows it.
func yamlError(err error, lines map[int]string) error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	const maxShown = 5
	out := make([]string, 0, maxShown+1)
	for i, m := range msgs {
		if i == maxShown {
			out = append(out, fmt.Sprintf("and %d more", len(msgs)-maxShown))
			break
		}
		out = append(out, annotateLine(m, lines))
	}
	msg := strings.Join(out, "; ")
	if len(msg) > 1000 {
		msg = msg[:1000] + "…"
	}
	return warden.Errorf(warden.EINVALID, "Policy YAML is invalid: %s.", strings.TrimSuffix(msg, "."))
}

// annotateLine rewrites "line N: …" as "line N (rules.x.y): …".
func annotateLine(m string, lines map[int]string) string {
	rest, ok := strings.CutPrefix(m, "line ")
	if !ok {
		return m
	}
	num, tail, ok := strings.Cut(rest, ":")
	if !ok {
		return m
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return m
	}
	if path := lines[n]; path != "" {
		return fmt.Sprintf("line %d (%s):%s", n, path, tail)
	}
	return m
}

// withLine adds the YAML line to a Validate error of the form
// "Policy <path>…" when the path (or its nearest parent) is known.
func withLine(err error, paths map[string]int) error {
	msg := warden.ErrorMessage(err)
	rest, ok := strings.CutPrefix(msg, "Policy ")
	if !ok {
		return err
	}
	end := strings.IndexAny(rest, ": ")
	if end <= 0 {
		return err
	}
	for path := rest[:end]; path != ""; {
		if line, ok := paths[path]; ok {
			return warden.Errorf(warden.ErrorCode(err), "Policy %s (line %d)%s", rest[:end], line, rest[end:])
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return err
}

type nodeType struct {
	n *yaml.Node
	t reflect.Type
}

// keyChecker walks the YAML tree against the Go type it decodes into and
// reports the first unknown key with its full path and the valid keys. It
// also indexes which key path each line holds, for error messages.
// yaml.v3's KnownFields does the same check, but names neither the path
// nor the keys that would have been valid.
type keyChecker struct {
	lines map[int]string // line → key path
	paths map[string]int // key path → line
	seen  map[nodeType]bool
}

func (w *keyChecker) note(line int, path string) {
	if _, ok := w.lines[line]; !ok {
		w.lines[line] = path
	}
	if _, ok := w.paths[path]; !ok {
		w.paths[path] = line
	}
}

func (w *keyChecker) check(n *yaml.Node, t reflect.Type, path string, depth int) error {
	if n == nil {
		return nil
	}
	if depth > maxNesting {
		return warden.Errorf(warden.EINVALID, "Policy YAML line %d: nested more than %d levels deep.", n.Line, maxNesting)
	}
	if n.Kind == yaml.AliasNode {
		return w.check(n.Alias, t, path, depth+1)
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	// An alias may reuse a node many times; checking it once per type is
	// enough and keeps alias bombs linear.
	if w.seen[nodeType{n, t}] {
		return nil
	}
	w.seen[nodeType{n, t}] = true

	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nil // the decoder reports the type mismatch
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if isMerge(k) {
				if err := w.checkMerge(v, t, path, depth); err != nil {
					return err
				}
				continue
			}
			ft, ok := fields[k.Value]
			if !ok || k.Kind != yaml.ScalarNode {
				where := "at the top level"
				if path != "" {
					where = "in " + path
				}
				return warden.Errorf(warden.EINVALID, "Policy YAML line %d: unknown key %q %s (valid keys: %s).", k.Line, k.Value, where, strings.Join(yamlKeys(t), ", "))
			}
			kp := join(path, k.Value)
			w.note(k.Line, kp)
			if err := w.check(v, ft, kp, depth+1); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if isMerge(k) {
				if err := w.checkMerge(v, t, path, depth); err != nil {
					return err
				}
				continue
			}
			kp := join(path, k.Value)
			w.note(k.Line, kp)
			if err := w.check(v, t.Elem(), kp, depth+1); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, c := range n.Content {
			ep := fmt.Sprintf("%s[%d]", path, i)
			w.note(c.Line, ep)
			if err := w.check(c, t.Elem(), ep, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkMerge checks the value of a "<<" merge key: a mapping or a sequence
// of mappings merged into the enclosing one.
func (w *keyChecker) checkMerge(v *yaml.Node, t reflect.Type, path string, depth int) error {
	if v.Kind == yaml.SequenceNode {
		for _, c := range v.Content {
			if err := w.check(c, t, path, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return w.check(v, t, path, depth+1)
}

func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields maps the YAML key of each field of struct type t to its type,
// following yaml.v3's rules: the yaml tag's name, else the lowercased field
// name; "-" skips; ",inline" structs contribute their fields.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if slices.Contains(strings.Split(opts, ","), "inline") && f.Type.Kind() == reflect.Struct {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

// yamlKeys lists the keys of struct type t in field order.
func yamlKeys(t reflect.Type) []string {
	var keys []string
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case name == "-":
		case slices.Contains(strings.Split(opts, ","), "inline") && f.Type.Kind() == reflect.Struct:
			keys = append(keys, yamlKeys(f.Type)...)
		case name == "":
			keys = append(keys, strings.ToLower(f.Name))
		default:
			keys = append(keys, name)
		}
	}
	return keys
}

package warden_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/warden-sh/warden"

// layer is what a package is, which decides what it may import.
type layer int

const (
	domain    layer = iota // the root: vocabulary, no I/O
	pure                   // algorithms and formats over bytes: no I/O
	rules                  // the engine core and its domains
	adapter                // storage, actuators, files: the ports' implementations
	transport              // HTTP, MCP
	wiring                 // commands: may import anything
)

// layers classifies every package of the module. A new package must be
// added here, which is the point: its place is decided, not drifted into.
var layers = map[string]layer{
	"":                 domain,
	"ledger":           pure,
	"jsonx":            pure,
	"forensic":         pure,
	"internal/jsonlex": pure,
	"engine":           rules,
	"engine/recorder":  rules,
	"engine/governor":  rules,
	"engine/stack":     rules,
	"sqlite":           adapter,
	"contain":          adapter,
	"integrity":        adapter,
	"datadir":          adapter,
	"http":             transport,
	"http/openapi":     transport,
	"mcp":              transport,
	"cli":              wiring,
	"cmd/warden":       wiring,
	"bench":            wiring, // the load generators behind `warden bench`
	"wardentest":       wiring, // real parts for tests
	"storetest":        wiring, // the store conformance suite
}

// noIO are standard packages that do I/O, with everything under them
// (net/http/httptest, os/user, …); the domain, pure and rules layers reach
// the world only through the ports (warden.Store, Actuator, …). net/url is
// parsing and allowed.
var noIO = []string{"os", "net", "database/sql", "io/ioutil", "io/fs", "syscall", "path/filepath", "log", "plugin", "runtime/pprof"}

func doesIO(imp string) bool {
	if imp == "net/url" || imp == "net/netip" || imp == "log/slog" {
		return false // parsing; logging to an injected handler
	}
	for _, p := range noIO {
		if imp == p || strings.HasPrefix(imp, p+"/") {
			return true
		}
	}
	return false
}

// wallClock are the time package's functions that read or wait on the
// wall clock; rules take the injected clock instead.
var wallClock = []string{"Now", "Since", "Until", "After", "AfterFunc", "Tick", "NewTicker", "NewTimer", "Sleep"}

// allowed reports whether a package of layer from, at path, may import the
// module package imp.
func allowed(from layer, path, imp string) (bool, string) {
	to, ok := layers[imp]
	if !ok {
		return false, "imports an unclassified package"
	}
	switch from {
	case domain:
		return false, "the root is the vocabulary and imports nothing of the module"
	case pure:
		return to == domain || to == pure, "pure packages import only the root and other pure packages"
	case rules:
		switch {
		case to == domain || to == pure:
			return true, ""
		case path == "engine/stack":
			return to == rules, ""
		case to == rules && imp == "engine" && path != "engine":
			return true, ""
		}
		return false, "a domain builds on the core alone: the recorder and the governor never import each other (ports), nor adapters or transports"
	case adapter:
		return to == domain || to == pure, "adapters never import each other, the rules or the transports"
	case transport:
		if to == transport {
			return strings.HasPrefix(imp, path+"/"), "transports never import each other"
		}
		return to == domain || to == pure || to == rules, "transports call the rules, never the adapters"
	}
	return true, ""
}

// TestArchitecture walks the source and fails when a package imports one
// it must not, when the vocabulary, the pure packages or the rules import
// a standard package that does I/O, or when a rule reads the wall clock
// instead of the injected one.
func TestArchitecture(t *testing.T) {
	seen := map[string]bool{}
	err := filepath.WalkDir(".", func(dir string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if name := d.Name(); dir != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "docs") {
			return filepath.SkipDir
		}
		pkgs, err := parser.ParseDir(token.NewFileSet(), dir, func(fi fs.FileInfo) bool {
			return !strings.HasSuffix(fi.Name(), "_test.go")
		}, parser.ImportsOnly)
		if err != nil {
			return err
		}
		if len(pkgs) == 0 {
			return nil
		}
		path := filepath.ToSlash(dir)
		if path == "." {
			path = ""
		}
		seen[path] = true
		from, ok := layers[path]
		if !ok {
			t.Errorf("package %q is not classified in layers (architecture_test.go)", path)
			return nil
		}
		for _, pkg := range pkgs {
			for fname, f := range pkg.Files {
				for _, spec := range f.Imports {
					imp, _ := strconv.Unquote(spec.Path.Value)
					if rel, ok := strings.CutPrefix(imp, module); ok {
						rel = strings.TrimPrefix(rel, "/")
						if ok, why := allowed(from, path, rel); !ok {
							t.Errorf("%s imports %q: %s", fname, imp, why)
						}
					} else if from <= rules && doesIO(imp) {
						t.Errorf("%s imports %q: the root, the pure packages and the rules do no I/O of their own", fname, imp)
					}
				}
			}
		}
		if from == rules || from == domain {
			checkNoWallClock(t, dir)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for path := range layers {
		if !seen[path] {
			t.Errorf("layers lists %q, which has no Go files", path)
		}
	}
}

// checkNoWallClock fails on a wall-clock call (wallClock) in a package's
// non-test code, under whatever name the file imports time, except in the
// definition of the system clock itself.
func checkNoWallClock(t *testing.T, dir string) {
	t.Helper()
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range pkgs {
		for _, f := range pkg.Files {
			timeName := ""
			for _, spec := range f.Imports {
				if spec.Path.Value == `"time"` {
					timeName = "time"
					if spec.Name != nil {
						timeName = spec.Name.Name
					}
				}
			}
			if timeName == "" {
				continue
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if fn, ok := n.(*ast.FuncDecl); ok && fn.Name.Name == "SystemClock" && fn.Recv == nil {
					return false
				}
				sel, ok := n.(*ast.SelectorExpr)
				if !ok || !slices.Contains(wallClock, sel.Sel.Name) {
					return true
				}
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == timeName {
					t.Errorf("%s: time.%s in a rule; use the injected clock", fset.Position(sel.Pos()), sel.Sel.Name)
				}
				return true
			})
		}
	}
}

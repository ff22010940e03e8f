package warden_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	warden "github.com/warden-sh/warden"
)

// TestReceiptCatalogue: every Receipt* string constant of the root is in
// the catalogue, in a valid scroll; the catalogue lists nothing else; and no
// other package defines a receipt type of its own, so receipt.go is the
// whole vocabulary of the ledger.
func TestReceiptCatalogue(t *testing.T) {
	declared := map[string]bool{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != "." && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		root := filepath.Dir(path) == "."
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if !strings.HasPrefix(name.Name, "Receipt") || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					if !root {
						t.Errorf("%s: receipt type %s is declared outside receipt.go's catalogue", path, name.Name)
						continue
					}
					v, _ := strconv.Unquote(lit.Value)
					declared[v] = true
					if s, ok := warden.ReceiptScroll(v); !ok || !warden.ValidScroll(s) {
						t.Errorf("%s = %q is not catalogued in a valid scroll (%q)", name.Name, v, s)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range warden.ReceiptTypes() {
		if !declared[typ] {
			t.Errorf("catalogue lists %q, which no Receipt* constant names", typ)
		}
	}
}

package warden_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// docFiles are the documents a newcomer reads: the README and everything
// in docs/.
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md"}
	err := filepath.WalkDir("docs", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".md") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

var (
	mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	// A bare file name the documents may cite without its directory.
	sourceName = regexp.MustCompile(`^[A-Za-z0-9_.-]+\.(go|md|sql|sh|yaml|yml|mod|service)$`)
)

// repoIndex is what the document check knows of the repository.
type repoIndex struct {
	top   map[string]bool // entries at the root
	names map[string]bool // every file name anywhere
}

func indexRepo(t *testing.T) repoIndex {
	t.Helper()
	root, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	idx := repoIndex{top: map[string]bool{}, names: map[string]bool{}}
	for _, e := range root {
		idx.top[e.Name()] = true
	}
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			idx.names[d.Name()] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// TestDocsNameFilesThatExist fails when README.md or a document in docs/
// links to, or names in its text, a repository file or directory that
// does not exist, or links to a heading another document does not have.
func TestDocsNameFilesThatExist(t *testing.T) {
	idx := indexRepo(t)
	for _, file := range docFiles(t) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range docProblems(t, file, string(b), idx) {
			t.Error(p)
		}
	}
}

// TestDocsPathCheckCatches proves the check can fail: a missing file named
// in the text, a missing bare source file, a link to a missing file and a
// link to a missing heading are each caught; server paths, URLs and
// existing files are not.
func TestDocsPathCheckCatches(t *testing.T) {
	idx := indexRepo(t)
	doc := "See `engine/no_such_rule.go`, `no_such_file.go`, [x](no-such.md) and\n" +
		"[y](ARCHITECTURE.md#no-such-heading). Fine: `engine/op.go`, `ladder.go`,\n" +
		"[z](ARCHITECTURE.md#startup-verification-and-the-state-replay), `deploy/`,\n" +
		"`/var/lib/warden/ledger.key`, `DATA/hmac.key`, https://example.org/docs/x.go.\n"
	got := docProblems(t, "docs/example.md", doc, idx)
	for _, want := range []string{"engine/no_such_rule.go", "no_such_file.go", "no-such.md", "no-such-heading"} {
		if !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, want) }) {
			t.Errorf("the check missed %s; it found %q", want, got)
		}
	}
	if len(got) != 4 {
		t.Errorf("want 4 problems, got %q", got)
	}
}

// docProblems checks one document. Links resolve against the document's
// directory. A path in the text counts when its first element is an entry
// at the repository root (`engine/op.go`, `deploy/`, `.ci/run`) and is
// relative to the root; a bare source file name (`ladder.go`) must exist
// somewhere in the repository. Paths on a server (`/var/lib/warden`,
// `DATA/hmac.key`, `warden-data/ledger.pub`) and URLs are not repository
// paths and are left alone.
func docProblems(t *testing.T, file, text string, idx repoIndex) []string {
	t.Helper()
	var problems []string
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
		target := m[1]
		if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
			continue
		}
		path, anchor, _ := strings.Cut(target, "#")
		if path == "" {
			path = file
		} else {
			path = filepath.Join(filepath.Dir(file), path)
		}
		if !exists(path) {
			problems = append(problems, fmt.Sprintf("%s links to %s, which does not exist", file, target))
			continue
		}
		if anchor != "" && strings.HasSuffix(path, ".md") && !hasAnchor(t, path, anchor) {
			problems = append(problems, fmt.Sprintf("%s links to %s, but %s has no heading #%s", file, target, path, anchor))
		}
	}
	// Link targets were checked above; the words are the rest of the text.
	text = mdLink.ReplaceAllString(text, "]")
	for _, word := range strings.FieldsFunc(text, func(r rune) bool {
		return unicode.IsSpace(r) || strings.ContainsRune("`'\"()[]<>,;*|", r)
	}) {
		word, _, _ = strings.Cut(word, "#")
		word = strings.TrimPrefix(strings.TrimRight(word, ".:…"), "./")
		if word == "" || strings.Contains(word, "://") || strings.HasPrefix(word, "/") || strings.HasPrefix(word, "$") {
			continue
		}
		first, _, nested := strings.Cut(word, "/")
		switch {
		case nested && idx.top[first]:
			if !exists(word) {
				problems = append(problems, fmt.Sprintf("%s names %s, which does not exist in the repository", file, word))
			}
		case !nested && sourceName.MatchString(word):
			if !idx.names[word] {
				problems = append(problems, fmt.Sprintf("%s names %s, and no file of that name exists in the repository", file, word))
			}
		}
	}
	return problems
}

// hasAnchor reports whether the Markdown file has a heading whose GitHub
// anchor is anchor: lower case, punctuation dropped, spaces as hyphens.
func hasAnchor(t *testing.T, file, anchor string) bool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	fenced := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		heading := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var slug strings.Builder
		for _, r := range strings.ToLower(heading) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				slug.WriteRune(r)
			case r == ' ':
				slug.WriteRune('-')
			}
		}
		if slug.String() == anchor {
			return true
		}
	}
	return false
}

package tests

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// docRef is a page of docs/ named in the chart's text, with an optional
// #anchor.
var docRef = regexp.MustCompile(`docs/[A-Za-z0-9_/.-]+\.md(?:#[A-Za-z0-9_-]+)?`)

// headingSlug turns a Markdown heading into GitHub's anchor: lower case,
// every character but letters, digits, '-', '_' and spaces dropped, spaces
// turned into '-'.
func headingSlug(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

// explicitAnchor is an anchor set in HTML: <a id="name"></a>.
var explicitAnchor = regexp.MustCompile(`<a id="([^"]+)"`)

// anchors returns the anchors of a Markdown file: its headings' and the
// explicit ones.
func anchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	inFence := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
			continue
		}
		if inFence {
			continue
		}
		if strings.HasPrefix(line, "#") {
			out[headingSlug(strings.TrimSpace(strings.TrimLeft(line, "#")))] = true
		}
		for _, m := range explicitAnchor.FindAllStringSubmatch(line, -1) {
			out[m[1]] = true
		}
	}
	return out
}

// TestTemplateDocReferencesExist: every docs/ page (and #anchor) the chart
// names — in values.yaml comments, the schema, templates (an install's
// refusal ends by pointing at one), NOTES.txt and the chart README — exists,
// so an operator sent there by a failed install finds it. No tool needed.
func TestTemplateDocReferencesExist(t *testing.T) {
	root := repoRoot(t)
	chart := chartDir(t)
	files := []string{"values.yaml", "values.schema.json", "README.md", "Chart.yaml"}
	tpls, err := filepath.Glob(filepath.Join(chart, "templates", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range tpls {
		rel, _ := filepath.Rel(chart, p)
		files = append(files, rel)
	}
	refs := map[string][]string{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(chart, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, ref := range docRef.FindAllString(string(b), -1) {
			refs[ref] = append(refs[ref], f)
		}
	}
	if len(refs) < 5 {
		t.Fatalf("found only %d references to docs/ in the chart: %v", len(refs), refs)
	}
	var bad []string
	for ref, where := range refs {
		page, anchor, _ := strings.Cut(ref, "#")
		path := filepath.Join(root, page)
		if _, err := os.Stat(path); err != nil {
			bad = append(bad, ref+" (named in "+strings.Join(where, ", ")+"): no such page")
			continue
		}
		if anchor != "" && !anchors(t, path)[anchor] {
			bad = append(bad, ref+" (named in "+strings.Join(where, ", ")+"): no such heading")
		}
	}
	sort.Strings(bad)
	for _, b := range bad {
		t.Error(b)
	}
}

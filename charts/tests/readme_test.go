package tests

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestValuesReadme keeps the values table of charts/tollgate/README.md in step
// with the `# --` comments of values.yaml: every documented key, its default
// and its description. Run with -update to regenerate the table.
func TestValuesReadme(t *testing.T) {
	table := valuesTable(t, filepath.Join(chartDir(t), "values.yaml"))
	readme := filepath.Join(chartDir(t), "README.md")
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- values:begin -->\n", "<!-- values:end -->"
	s := string(b)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the %q ... %q markers", readme, begin, end)
	}
	got := s[:i+len(begin)] + table + s[j:]
	if got == s {
		return
	}
	if *update {
		if err := os.WriteFile(readme, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("the values table of %s is stale; run `make chart-golden-update`:\n%s", readme, lineDiff(s, got))
}

var (
	keyLine     = regexp.MustCompile(`^(\s*)([A-Za-z0-9_.\-]+|"[^"]+"):\s*(.*)$`)
	docLine     = regexp.MustCompile(`^\s*# -- (.*)$`)
	contLine    = regexp.MustCompile(`^\s*#\s?(.*)$`)
	trailingCom = regexp.MustCompile(`\s+#.*$`)
	mdEscape    = strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;")
)

// valuesTable renders a Markdown table of the keys of values.yaml preceded
// by a `# -- ` comment. Key paths follow indentation.
func valuesTable(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type frame struct {
		indent int
		key    string
	}
	var stack []frame
	var doc []string
	inDoc := false
	var b strings.Builder
	b.WriteString("| Key | Default | Description |\n| --- | --- | --- |\n")
	rows := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := docLine.FindStringSubmatch(line); m != nil {
			doc, inDoc = []string{m[1]}, true
			continue
		}
		if m := contLine.FindStringSubmatch(line); m != nil {
			if inDoc {
				doc = append(doc, m[1])
			}
			continue
		}
		m := keyLine.FindStringSubmatch(line)
		if m == nil || strings.HasPrefix(strings.TrimSpace(line), "-") {
			doc, inDoc = nil, false
			continue
		}
		indent := len(m[1])
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		stack = append(stack, frame{indent, strings.Trim(m[2], `"`)})
		if inDoc {
			keys := make([]string, len(stack))
			for i, fr := range stack {
				keys[i] = fr.key
			}
			def := strings.TrimSpace(trailingCom.ReplaceAllString(m[3], ""))
			if def == "" {
				def = "(see values.yaml)"
			}
			fmt.Fprintf(&b, "| `%s` | `%s` | %s |\n", strings.Join(keys, "."), strings.ReplaceAll(def, "|", `\|`),
				mdEscape.Replace(strings.Join(doc, " ")))
			rows++
		}
		doc, inDoc = nil, false
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if rows < 50 {
		t.Fatalf("only %d documented keys found in %s", rows, path)
	}
	return b.String()
}

package devfleet

import (
	"bufio"
	"context"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/testharness"
)

// repoRoot is the repository root (this file is services/platform/devfleet).
func repoRoot(t *testing.T) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// families scrapes a Prometheus text exposition and returns each family's
// label names over all its series (histogram and summary series folded
// into their family, without le and quantile).
func families(t *testing.T, r io.Reader) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	kind := map[string]string{}
	sample := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? `)
	label := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			kind[f[2]] = f[3]
			if out[f[2]] == nil {
				out[f[2]] = map[string]bool{}
			}
			continue
		}
		m := sample.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		name := m[1]
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base := strings.TrimSuffix(name, suffix); base != name && (kind[base] == "histogram" || kind[base] == "summary") {
				name = base
			}
		}
		if out[name] == nil {
			out[name] = map[string]bool{}
		}
		for _, l := range label.FindAllStringSubmatch(m[2], -1) {
			if l[1] != "le" && l[1] != "quantile" {
				out[name][l[1]] = true
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// docMetric is one metric of a table of docs/operations/monitoring.md:
// its labels, and labels only some names of its row carry (`grpc_code`
// (`handled`): only the names containing "handled").
type docMetric struct {
	labels    map[string]bool
	qualified map[string]string
}

var (
	backquoted = regexp.MustCompile("`([a-z_0-9]+)`")
	qualifier  = regexp.MustCompile("`([a-z_0-9]+)` \\(`([a-z_0-9]+)`\\)")
)

// documentedMetrics reads every table row of monitoring.md whose first
// cell names tollgate_ or grpc_ metrics; a labels cell "the same and …"
// adds to the previous row's labels.
func documentedMetrics(t *testing.T, doc string) map[string]docMetric {
	t.Helper()
	out := map[string]docMetric{}
	var prev docMetric
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) < 3 {
			continue
		}
		var names []string
		for _, m := range backquoted.FindAllStringSubmatch(cells[0], -1) {
			if strings.HasPrefix(m[1], "tollgate_") || strings.HasPrefix(m[1], "grpc_") {
				names = append(names, m[1])
			}
		}
		if len(names) == 0 {
			continue
		}
		d := docMetric{labels: map[string]bool{}, qualified: map[string]string{}}
		if strings.Contains(cells[1], "the same") {
			for l := range prev.labels {
				d.labels[l] = true
			}
			for l, q := range prev.qualified {
				d.qualified[l] = q
			}
		}
		for _, m := range qualifier.FindAllStringSubmatch(cells[1], -1) {
			d.qualified[m[1]] = m[2]
		}
		for _, m := range backquoted.FindAllStringSubmatch(cells[1], -1) {
			if _, q := d.qualified[m[1]]; !q && !isQualifierWord(cells[1], m[1]) {
				d.labels[m[1]] = true
			}
		}
		prev = d
		for _, n := range names {
			if _, dup := out[n]; dup {
				t.Errorf("monitoring.md: %s has two rows", n)
			}
			out[n] = d
		}
	}
	return out
}

// isQualifierWord reports whether `w` appears in cell only as a
// qualifier in parentheses.
func isQualifierWord(cell, w string) bool {
	return strings.Contains(cell, "(`"+w+"`)") && !strings.Contains(strings.ReplaceAll(cell, "(`"+w+"`)", ""), "`"+w+"`")
}

// labelsOf returns the labels the documentation promises on metric name.
func (d docMetric) labelsOf(name string) map[string]bool {
	out := map[string]bool{}
	for l := range d.labels {
		out[l] = true
	}
	for l, q := range d.qualified {
		if strings.Contains(name, q) {
			out[l] = true
		}
	}
	return out
}

// TestMonitoringDocMatchesTheFleet runs the fleet as `make dev` does,
// sends it a tool call, an Actions operation and a refused token request,
// and checks docs/operations/monitoring.md against every service's admin
// /metrics: each metric its tables name is exported with exactly the
// labels named (or, with no series yet, is defined in the services'
// source), and each `metric{label…}` selector anywhere in docs/ names a
// documented metric and labels it has. The other direction — every
// exported or defined metric is documented — is e2e's
// TestEveryExportedMetricIsDocumented and TestEveryDefinedMetricIsDocumented.
func TestMonitoringDocMatchesTheFleet(t *testing.T) {
	root := repoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out := &testharness.SyncBuffer{}
	varDir := t.TempDir()
	if err := Build(ctx, root, varDir, out); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	ports, listeners, err := ListenFreePorts()
	if err != nil {
		t.Fatal(err)
	}
	f, err := Start(ctx, Options{Root: root, VarDir: varDir, Ports: ports, Listeners: listeners, Out: out})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	defer f.Stop()
	// Nothing waited at start-up for a component started after it (Waves):
	// the auth-server's first capability discovery reached every backend,
	// where it used to wait registry.DefaultDiscoveryTimeout for
	// capability-core, then started only after it.
	for line := range strings.Lines(out.String()) {
		if strings.Contains(line, "capability backend unavailable") || strings.Contains(line, "backends not reached yet") {
			t.Errorf("a component waited at start-up for one started after it:\n%s", line)
		}
	}
	creds, err := LoadCredentials(varDir)
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, path, token, body string, header ...string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, f.Local+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for _, resource := range []string{"mcp", "actions"} {
		tok, err := SignIn(ctx, SignInOptions{Creds: creds, ClientID: "local-test", Resource: resource})
		if err != nil {
			t.Fatalf("sign-in for %s: %v\n%s", resource, err, out)
		}
		if resource == "actions" {
			call("GET", "/actions/profile", tok.AccessToken, "")
			continue
		}
		jsonHeaders := []string{"Content-Type", "application/json", "Accept", "application/json, text/event-stream"}
		req, _ := http.NewRequestWithContext(ctx, "POST", f.Local+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"doc","version":"1"}}}`))
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		for i := 0; i+1 < len(jsonHeaders); i += 2 {
			req.Header.Set(jsonHeaders[i], jsonHeaders[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		session := append(jsonHeaders, "Mcp-Session-Id", resp.Header.Get("Mcp-Session-Id"), "MCP-Protocol-Version", "2025-11-25")
		call("POST", "/mcp", tok.AccessToken, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, session...)
		call("POST", "/mcp", tok.AccessToken, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"health.check","arguments":{}}}`, session...)
	}
	call("POST", "/oauth/token", "", "grant_type=authorization_code&code=x&client_id=no-such-client", "Content-Type", "application/x-www-form-urlencoded")

	exported := map[string]map[string]bool{}
	for _, name := range Services {
		resp, err := http.Get(f.AdminURL(name) + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		for fam, labels := range families(t, resp.Body) {
			if exported[fam] == nil {
				exported[fam] = map[string]bool{}
			}
			for l := range labels {
				exported[fam][l] = true
			}
		}
		resp.Body.Close()
	}
	if len(exported) < 40 {
		t.Fatalf("the fleet exports only %d metric families", len(exported))
	}

	docBytes, err := os.ReadFile(filepath.Join(root, "docs", "operations", "monitoring.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := documentedMetrics(t, string(docBytes))
	if len(documented) < 40 {
		t.Fatalf("monitoring.md's tables name only %d metrics", len(documented))
	}
	defined := definedMetrics(t, filepath.Join(root, "services"))
	for name, d := range documented {
		got, ok := exported[name]
		if !ok {
			if !defined[name] {
				t.Errorf("monitoring.md names %s, which no service exports or defines", name)
			}
			continue
		}
		want := d.labelsOf(name)
		for l := range got {
			if !want[l] {
				t.Errorf("%s has label %q, which monitoring.md does not name (it names %v)", name, l, sortedKeys(want))
			}
		}
		if len(got) == 0 && len(want) > 0 && !defined[name] {
			t.Errorf("%s: no series and no definition to check labels %v against", name, sortedKeys(want))
		}
		if len(got) > 0 {
			for l := range want {
				if !got[l] {
					t.Errorf("monitoring.md gives %s the label %q; the fleet exports %v", name, l, sortedKeys(got))
				}
			}
		}
	}

	// Selectors in any page: metric{label=…, label} names documented metrics and their labels.
	selector := regexp.MustCompile(`\b((?:tollgate|grpc)_[a-z0-9_]+)\{([^}]*)\}`)
	labelName := regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)`)
	err = filepath.WalkDir(filepath.Join(root, "docs"), func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(p, ".md") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		for _, m := range selector.FindAllStringSubmatch(string(b), -1) {
			name := m[1]
			d, ok := documented[name]
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base := strings.TrimSuffix(name, suffix); !ok && base != name {
					d, ok = documented[base]
				}
			}
			if !ok {
				t.Errorf("%s: %s is not a metric monitoring.md documents", rel, m[0])
				continue
			}
			want := d.labelsOf(name)
			for _, part := range strings.Split(m[2], ",") {
				l := labelName.FindStringSubmatch(part)
				if l != nil && !want[l[1]] {
					t.Errorf("%s: %s uses label %q; monitoring.md names %v", rel, m[0], l[1], sortedKeys(want))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// definedMetrics returns the tollgate_ metric names defined in the Go
// source (not tests) under dir.
func definedMetrics(t *testing.T, dir string) map[string]bool {
	t.Helper()
	def := regexp.MustCompile(`(?:Name:\s*|NewDesc\()"(tollgate_[a-z0-9_]+)"`)
	out := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range def.FindAllStringSubmatch(string(b), -1) {
			out[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

package e2e

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"sigs.k8s.io/yaml"

	"github.com/tollgate/tollgate/e2e/harness"
	"github.com/tollgate/tollgate/services/platform/devfleet"
)

// monitoringFiles are the dashboard and alerting rules the chart ships.
var monitoringFiles = []string{
	"charts/tollgate/files/dashboards/tollgate.json",
	"charts/tollgate/files/prometheus-rules.yaml",
}

// metricName matches the fleet's metric names in PromQL text, once
// templates ({{…}}: Helm values, Grafana legends) and then label matchers
// ({…}) and grouping clauses (by (…)) are cut out.
var (
	metricName = regexp.MustCompile(`\b(?:tollgate|grpc|process)_[a-z0-9_]+\b`)
	templates  = regexp.MustCompile(`\{\{.*?\}\}`)
	notMetrics = regexp.MustCompile(`\{[^}]*\}|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
)

// scrapeService returns the metric families one service of the fleet
// exports on its admin /metrics, by name.
func scrapeService(t *testing.T, name string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(fleet.AdminURL(name) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("%s /metrics: %v", name, err)
	}
	return mfs
}

// scrapeFleet returns every metric family each service exports, by name.
func scrapeFleet(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	all := map[string]*dto.MetricFamily{}
	for _, name := range devfleet.Services {
		mfs := scrapeService(t, name)
		for n, mf := range mfs {
			if prev, ok := all[n]; ok {
				prev.Metric = append(prev.Metric, mf.Metric...)
				continue
			}
			all[n] = mf
		}
	}
	return all
}

// exercise sends the requests that give every metric family a series:
// public HTTP on each service, an OAuth error, an MCP refusal, an
// authorization request (upstream discovery).
func exercise(t *testing.T) {
	t.Helper()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path string, form url.Values) {
		var body *strings.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		} else {
			body = strings.NewReader("")
		}
		req, _ := http.NewRequest(method, fleet.Origin+path, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	do("GET", "/.well-known/openid-configuration", nil)
	do("GET", "/actions/openapi.json", nil)
	do("GET", "/health", nil)
	do("POST", "/mcp", nil)
	do("POST", "/oauth/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {"no-such-client"}, "code": {"x"}})
	if c, ok := fleet.Client("gpt-apps-mcp"); ok {
		do("GET", "/oauth/authorize?"+url.Values{
			"response_type": {"code"}, "client_id": {c.ClientID}, "redirect_uri": {c.RedirectURIs[0]},
			"scope": {"openid"}, "state": {"s-monitoring"}, "resource": {fleet.Origin + "/mcp"},
			"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"},
		}.Encode(), nil)
	}
}

// TestDashboardAndAlertsUseExportedMetrics: every metric the chart's
// Grafana dashboard and PrometheusRule reference is exported by a service
// of the running fleet, so a renamed metric cannot silently blank a panel
// or an alert.
func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	exercise(t)
	exported := map[string]bool{}
	for name, mf := range scrapeFleet(t) {
		exported[name] = true
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_count", "_sum"} {
				exported[name+s] = true
			}
		}
	}
	for _, f := range monitoringFiles {
		refs := map[string]bool{}
		for _, expr := range expressions(t, f) {
			for _, m := range metricName.FindAllString(notMetrics.ReplaceAllString(templates.ReplaceAllString(expr, "x"), " "), -1) {
				refs[m] = true
			}
		}
		if len(refs) < 5 {
			t.Fatalf("%s references only %v", f, refs)
		}
		var missing []string
		for m := range refs {
			if !exported[m] {
				missing = append(missing, m)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("%s references metrics no service exports: %v", f, missing)
		}
	}
}

// expressions returns the PromQL of a dashboard (every "expr" and
// variable "query") or of a rules file (every rule's expr).
func expressions(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(harness.RepoRoot(), file))
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil { // JSON is YAML
		t.Fatalf("%s: %v", file, err)
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				if s, ok := c.(string); ok && (k == "expr" || k == "query" || k == "definition") {
					out = append(out, s)
				}
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(doc)
	return out
}

// TestMetricLabelsStayBounded: requests that put a marker in every part a
// caller controls (path, method, OAuth parameters, MCP method, request id)
// leave no trace of it in any label value of any service.
func TestMetricLabelsStayBounded(t *testing.T) {
	const marker = "zq7marker"
	paths := []string{"/mcp/" + marker, "/oauth/" + marker, "/actions/" + marker, "/.well-known/" + marker, "/app-ui/" + marker, "/" + marker}
	for _, p := range paths {
		for _, m := range []string{"GET", "POST", strings.ToUpper(marker)} {
			req, _ := http.NewRequest(m, fleet.Origin+p+"?"+marker+"="+marker, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"`+marker+`"}`))
			req.Header.Set("X-Request-Id", marker)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	for _, form := range []url.Values{
		{"grant_type": {marker}, "client_id": {marker}},
		{"grant_type": {"refresh_token"}, "client_id": {marker}, "refresh_token": {marker}},
		{"token": {marker}, "client_id": {marker}},
	} {
		for _, p := range []string{"/oauth/token", "/oauth/revoke", "/oauth/introspect"} {
			resp, err := http.PostForm(fleet.Origin+p, form)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	for name, mf := range scrapeFleet(t) {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if strings.Contains(strings.ToLower(lp.GetValue()), marker) {
					t.Errorf("%s{%s=%q}: a caller's value reached a label", name, lp.GetName(), lp.GetValue())
				}
			}
		}
	}
}

// monitoringDoc is the operator's list of every metric.
const monitoringDoc = "docs/operations/monitoring.md"

// docSections returns the text of docs/operations/monitoring.md's
// "## Metrics every service has" section (key "") and of each "### …"
// under "## Metrics by service" (key: the heading).
func docSections(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(harness.RepoRoot(), monitoringDoc))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var h2, h3 string
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "## "):
			h2, h3 = strings.TrimPrefix(line, "## "), ""
			continue
		case strings.HasPrefix(line, "### "):
			h3 = strings.TrimPrefix(line, "### ")
			continue
		}
		switch {
		case h2 == "Metrics every service has":
			out[""] += line + "\n"
		case h2 == "Metrics by service" && h3 != "":
			out[h3] += line + "\n"
		}
	}
	return out
}

// standardFamily is a metric of the Go and process collectors and of
// promhttp, documented once as a group.
var standardFamily = regexp.MustCompile(`^(go|process|promhttp)_`)

// serviceHeading matches a "Metrics by service" heading that is a
// service's name, or names services in parentheses ("Capability
// discovery (auth-server, mcp-gateway, actions-api)").
func serviceHeading(heading, service string) bool {
	if heading == service {
		return true
	}
	_, list, ok := strings.Cut(heading, "(")
	if !ok {
		return false
	}
	for _, s := range strings.Split(strings.TrimSuffix(list, ")"), ",") {
		if strings.TrimSpace(s) == service {
			return true
		}
	}
	return false
}

// TestEveryExportedMetricIsDocumented: every metric family a service of
// the running fleet exports is named, in backquotes, in
// docs/operations/monitoring.md — in "Metrics every service has" or in a
// section of "Metrics by service" that is the service's — so the document
// cannot drift from what the services export.
func TestEveryExportedMetricIsDocumented(t *testing.T) {
	exercise(t)
	sections := docSections(t)
	for _, name := range devfleet.Services {
		section := ""
		for heading, text := range sections {
			if heading != "" && serviceHeading(heading, name) {
				section += text
			}
		}
		if _, ok := sections[name]; !ok {
			t.Errorf("%s has no section %q under \"Metrics by service\"", monitoringDoc, "### "+name)
		}
		mfs := scrapeService(t, name)
		var missing []string
		for n := range mfs {
			if standardFamily.MatchString(n) {
				continue
			}
			if q := "`" + n + "`"; !strings.Contains(sections[""], q) && !strings.Contains(section, q) {
				missing = append(missing, n)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("%s exports metrics %s does not name (in \"Metrics every service has\" or \"### %s\"): %v", name, monitoringDoc, name, missing)
		}
	}
}

// metricDefinition finds the name of a metric defined in Go source: a
// prometheus *Opts Name or a NewDesc.
var metricDefinition = regexp.MustCompile(`(?:Name:\s*|NewDesc\()"(tollgate_[a-z0-9_]+)"`)

// TestEveryDefinedMetricIsDocumented: every tollgate_ metric defined in
// the services' source, including those with no series until an event
// (a failure, a second backend), is named in
// docs/operations/monitoring.md.
func TestEveryDefinedMetricIsDocumented(t *testing.T) {
	root := harness.RepoRoot()
	doc, err := os.ReadFile(filepath.Join(root, monitoringDoc))
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]string{}
	err = filepath.WalkDir(filepath.Join(root, "services"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range metricDefinition.FindAllStringSubmatch(string(b), -1) {
			defined[m[1]], _ = filepath.Rel(root, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(defined) < 20 {
		t.Fatalf("found only %d metric definitions: %v", len(defined), defined)
	}
	var missing []string
	for n, file := range defined {
		if !strings.Contains(string(doc), "`"+n+"`") {
			missing = append(missing, n+" ("+file+")")
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("%s does not name metrics defined in the source: %v", monitoringDoc, missing)
	}
}

package widgets

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

const testOrigin = "https://tollgate.example.com"

// versionedAsset is the form of every asset name: lower-case words joined by
// hyphens, then -v<N>, then the extension.
var versionedAsset = regexp.MustCompile(`^[a-z0-9]+(?:-[a-z0-9]+)*-v[1-9][0-9]*\.(?:js|css)$`)

func TestAllAndLookup(t *testing.T) {
	all := All()
	if len(all) == 0 {
		t.Fatal("All returned no widgets")
	}
	seen := map[string]bool{}
	for _, w := range all {
		if seen[w.URI] {
			t.Errorf("URI %s appears twice", w.URI)
		}
		seen[w.URI] = true
		if want := "ui://widget/" + w.Name + ".html"; w.URI != want {
			t.Errorf("URI %q, want %q (the name with the ui://widget/ prefix)", w.URI, want)
		}
		if !regexp.MustCompile(`-v[1-9][0-9]*$`).MatchString(w.Name) {
			t.Errorf("name %q has no -v<N> version suffix", w.Name)
		}
		if w.Title == "" || w.Description == "" {
			t.Errorf("%s needs a title and a description", w.URI)
		}
		got, ok := Lookup(w.URI)
		if !ok || got.URI != w.URI {
			t.Errorf("Lookup(%q) = %v, %v", w.URI, got.URI, ok)
		}
	}
	for _, uri := range []string{"ui://widget/health-status-card-v1.html", "ui://widget/profile-summary-card-v1.html"} {
		if !seen[uri] {
			t.Errorf("the gateway relies on %s, which All does not list", uri)
		}
	}
	if _, ok := Lookup("ui://widget/nope-v1.html"); ok {
		t.Error("Lookup found a widget that does not exist")
	}

	all[0].URI = "changed"
	if All()[0].URI == "changed" {
		t.Error("All shares its slice with callers")
	}
}

// Every registered card has a fixture in cards(), so the browser tests
// render it under both hosts: a card registered without one would pass
// every test without ever being drawn (docs/guides/add-a-widget.md §5).
func TestEveryWidgetHasABrowserFixture(t *testing.T) {
	fixtures := map[string]bool{}
	for _, c := range cards(t) {
		fixtures[c.widget.URI] = true
	}
	for _, w := range All() {
		if !fixtures[w.URI] {
			t.Errorf("%s is in All() but has no cards() fixture in browser_test.go: add one (add-a-widget.md §5)", w.URI)
		}
	}
}

func TestMIMEType(t *testing.T) {
	if MIMEType != "text/html;profile=mcp-app" {
		t.Errorf("MIMEType = %q", MIMEType)
	}
}

// assetRef finds the URLs a template loads (src and href attributes).
var assetRef = regexp.MustCompile(`\s(?:src|href)="([^"]*)"`)

func TestTemplatesReferOnlyToExistingAssetsOnThePublicOrigin(t *testing.T) {
	used := map[string]bool{}
	for _, w := range All() {
		html, err := w.HTML(testOrigin)
		if err != nil {
			t.Fatalf("%s: HTML: %v", w.URI, err)
		}
		refs := assetRef.FindAllStringSubmatch(html, -1)
		if len(refs) < 3 {
			t.Errorf("%s: %d asset references, want the stylesheet, the bridge and the card script", w.URI, len(refs))
		}
		for _, m := range refs {
			name, ok := strings.CutPrefix(m[1], testOrigin+AssetPath)
			if !ok {
				t.Errorf("%s: %q is not an absolute URL under %s%s", w.URI, m[1], testOrigin, AssetPath)
				continue
			}
			name, hash, _ := strings.Cut(name, "?v=")
			if want := testOrigin + AssetURLPath(name); m[1] != want || len(hash) != 16 {
				t.Errorf("%s: %q does not carry the content hash of %s (%s)", w.URI, m[1], name, want)
			}
			if _, err := fs.Stat(Assets(), name); err != nil {
				t.Errorf("%s: refers to missing asset %q", w.URI, name)
			}
			used[name] = true
		}
		for _, want := range []string{"mcp-widget-bridge-v1.js", "tool-result-card-base-v1.css"} {
			if !strings.Contains(html, testOrigin+AssetPath+want) {
				t.Errorf("%s does not load %s", w.URI, want)
			}
		}
		// The page must run under a policy without 'unsafe-inline'.
		for _, tag := range regexp.MustCompile(`<script\b[^>]*>([^<]*)</script>`).FindAllStringSubmatch(html, -1) {
			if !strings.Contains(tag[0], ` src="`) || strings.TrimSpace(tag[1]) != "" {
				t.Errorf("%s has an inline script: %q", w.URI, tag[0])
			}
		}
		for _, bad := range []*regexp.Regexp{
			regexp.MustCompile(`<style\b`),
			regexp.MustCompile(`\sstyle=`),
			regexp.MustCompile(`\son[a-z]+=`),
			regexp.MustCompile(`javascript:`),
		} {
			if loc := bad.FindStringIndex(html); loc != nil {
				t.Errorf("%s has inline code or style: %q", w.URI, html[loc[0]:min(loc[1]+20, len(html))])
			}
		}
		if n := strings.Count(html, "http"); n != len(refs) {
			t.Errorf("%s has %d URLs but %d asset references: something else loads from outside", w.URI, n, len(refs))
		}
	}
	// No orphans: every asset is loaded by some template.
	err := fs.WalkDir(Assets(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !used[p] {
			t.Errorf("asset %s is not used by any template", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAssetNamesAreVersionedAndFlat(t *testing.T) {
	n := 0
	err := fs.WalkDir(Assets(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." {
				t.Errorf("asset tree has a directory %s; keep it flat", p)
			}
			return nil
		}
		n++
		if !versionedAsset.MatchString(p) {
			t.Errorf("asset %q is not named <words>-v<N>.js|css", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no assets embedded")
	}
	tmpl, err := fs.ReadDir(files, templateDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tmpl {
		if !regexp.MustCompile(`^[a-z0-9]+(?:-[a-z0-9]+)*-v[1-9][0-9]*\.html$`).MatchString(e.Name()) {
			t.Errorf("template %q is not named <words>-v<N>.html", e.Name())
		}
	}
}

func TestContentType(t *testing.T) {
	for name, want := range map[string]string{
		"mcp-widget-bridge-v1.js":      "text/javascript; charset=utf-8",
		"tool-result-card-base-v1.css": "text/css; charset=utf-8",
		"card-v1.html":                 "text/html; charset=utf-8",
		"logo-v1.svg":                  "image/svg+xml",
		"logo-v1.PNG":                  "image/png",
		"README":                       "application/octet-stream",
	} {
		if got := ContentType(name); got != want {
			t.Errorf("ContentType(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestOrigins(t *testing.T) {
	w, _ := Lookup("ui://widget/health-status-card-v1.html")
	for _, tc := range []struct {
		in, want string
	}{
		{"https://tollgate.example.com", "https://tollgate.example.com"},
		{"https://Tollgate.Example.com/", "https://tollgate.example.com"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"https://[::1]:8443", "https://[::1]:8443"},
	} {
		csp, err := w.CSP(tc.in)
		if err != nil {
			t.Errorf("CSP(%q): %v", tc.in, err)
			continue
		}
		if !slices.Equal(csp.ResourceDomains, []string{tc.want}) {
			t.Errorf("CSP(%q).ResourceDomains = %v, want [%s]", tc.in, csp.ResourceDomains, tc.want)
		}
	}
	for _, bad := range []string{
		"", "tollgate.example.com", "ftp://tollgate.example.com", "https://",
		"https://tollgate.example.com/mcp", "https://tollgate.example.com?x=1",
		"https://tollgate.example.com#top", "https://user@tollgate.example.com",
		"https://tollgate.example.com?", "javascript:alert(1)",
	} {
		if _, err := w.HTML(bad); !errors.Is(err, ErrInvalidOrigin) {
			t.Errorf("HTML(%q) error = %v, want ErrInvalidOrigin", bad, err)
		}
		if _, err := w.CSP(bad); !errors.Is(err, ErrInvalidOrigin) {
			t.Errorf("CSP(%q) error = %v, want ErrInvalidOrigin", bad, err)
		}
		if _, err := w.ResourceMeta(bad); !errors.Is(err, ErrInvalidOrigin) {
			t.Errorf("ResourceMeta(%q) error = %v, want ErrInvalidOrigin", bad, err)
		}
	}
	if _, err := (Widget{URI: "ui://widget/made-up-v1.html"}).HTML(testOrigin); err == nil {
		t.Error("HTML of a widget that is not from All succeeded")
	}
}

func TestPolicy(t *testing.T) {
	w, _ := Lookup("ui://widget/profile-summary-card-v1.html")
	csp, err := w.CSP(testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	want := "default-src 'none'; script-src https://tollgate.example.com; style-src https://tollgate.example.com; " +
		"img-src https://tollgate.example.com; font-src https://tollgate.example.com; media-src https://tollgate.example.com; " +
		"connect-src 'none'; frame-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'"
	if got := csp.Policy(); got != want {
		t.Errorf("Policy() =\n%s\nwant\n%s", got, want)
	}
	if got := (CSP{}).Policy(); !strings.Contains(got, "script-src 'none'") {
		t.Errorf("empty CSP policy %q does not forbid scripts", got)
	}
}

func TestMetaJSON(t *testing.T) {
	w, _ := Lookup("ui://widget/health-status-card-v1.html")
	meta, err := w.ResourceMeta(testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"openai/widgetCSP":{"connect_domains":[],"resource_domains":["https://tollgate.example.com"]},` +
		`"openai/widgetDescription":` + mustJSON(t, w.Description) + `,` +
		`"openai/widgetPrefersBorder":false,` +
		`"ui":{"csp":{"connectDomains":[],"resourceDomains":["https://tollgate.example.com"]},"prefersBorder":false}}`
	if string(got) != want {
		t.Errorf("ResourceMeta JSON =\n%s\nwant\n%s", got, want)
	}

	tool, err := json.Marshal(w.ToolMeta())
	if err != nil {
		t.Fatal(err)
	}
	wantTool := `{"openai/outputTemplate":"ui://widget/health-status-card-v1.html","ui":{"resourceUri":"ui://widget/health-status-card-v1.html"}}`
	if string(tool) != wantTool {
		t.Errorf("ToolMeta JSON = %s, want %s", tool, wantTool)
	}

	if got := (CSP{}).OpenAI(); got.ConnectDomains == nil || got.ResourceDomains == nil {
		t.Error("OpenAI() of an empty CSP has nil lists; they must marshal as []")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestGoldenHTML keeps the rendered templates under testdata/golden so a
// review shows the exact markup the gateway will serve. Run with -update to
// rewrite them.
func TestGoldenHTML(t *testing.T) {
	for _, w := range All() {
		html, err := w.HTML(testOrigin)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", "golden", w.Name+".html")
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(html), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run TestGoldenHTML -update to create it)", err)
		}
		if html != string(want) {
			t.Errorf("%s differs from %s; run go test -run TestGoldenHTML -update and review the diff", w.URI, path)
		}
	}
}

func TestAssetHandler(t *testing.T) {
	srv := httptest.NewServer(AssetHandler())
	defer srv.Close()

	err := fs.WalkDir(Assets(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		res, err := http.Get(srv.URL + AssetPath + p)
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", p, res.Status)
		}
		for h, want := range map[string]string{
			"Content-Type":                 ContentType(p),
			"X-Content-Type-Options":       "nosniff",
			"Cross-Origin-Resource-Policy": "cross-origin",
		} {
			if got := res.Header.Get(h); got != want {
				t.Errorf("GET %s: %s = %q, want %q", p, h, got, want)
			}
		}
		etag := res.Header.Get("ETag")
		if etag == "" {
			t.Errorf("GET %s: no ETag", p)
			return nil
		}
		req, _ := http.NewRequest(http.MethodGet, srv.URL+AssetPath+p, nil)
		req.Header.Set("If-None-Match", etag)
		res, err = http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: %s, want 304", p, res.Status)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		method, path string
		want         int
		wantErr      string // the JSON error code of a refusal
	}{
		{http.MethodHead, AssetPath + "mcp-widget-bridge-v1.js", http.StatusOK, ""},
		{http.MethodPost, AssetPath + "mcp-widget-bridge-v1.js", http.StatusMethodNotAllowed, "method_not_allowed"},
		{http.MethodDelete, AssetPath + "missing-v1.js", http.StatusMethodNotAllowed, "method_not_allowed"},
		{http.MethodGet, AssetPath, http.StatusNotFound, "not_found"},
		{http.MethodGet, AssetPath + "missing-v1.js", http.StatusNotFound, "not_found"},
		{http.MethodGet, AssetPath + "..%2fwidgets.go", http.StatusNotFound, "not_found"},
		{http.MethodGet, AssetPath + "../templates/health-status-card-v1.html", http.StatusNotFound, "not_found"},
		{http.MethodGet, "/mcp-widget-bridge-v1.js", http.StatusNotFound, "not_found"},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, res.StatusCode, tc.want)
		}
		if tc.wantErr == "" {
			continue
		}
		checkJSONRefusal(t, tc.method+" "+tc.path, res, body, tc.wantErr)
	}
}

// checkJSONRefusal checks a refusal of the asset handler: the fleet's JSON
// error body with the code wantErr, never cached, and on a 405 the Allow
// header RFC 9110 §15.5.6 requires.
func checkJSONRefusal(t *testing.T, what string, res *http.Response, body []byte, wantErr string) {
	t.Helper()
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" || json.Unmarshal(body, &e) != nil ||
		e.Error != wantErr || e.Description == "" {
		t.Errorf("%s: %d %q %s, want a JSON error %q", what, res.StatusCode, ct, body, wantErr)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("%s: Cache-Control %q, want no-store", what, cc)
	}
	if allow := res.Header.Get("Allow"); (res.StatusCode == http.StatusMethodNotAllowed) != (allow == "GET, HEAD") {
		t.Errorf("%s: %d with Allow %q", what, res.StatusCode, allow)
	}
}

// TestHashedAssetURLsAreImmutable: the URL a template uses (with the content
// hash) may be cached for a year; the bare or stale URL only for an hour,
// so a fixed asset reaches hosts without renaming it.
func TestHashedAssetURLsAreImmutable(t *testing.T) {
	srv := httptest.NewServer(AssetHandler())
	defer srv.Close()
	name := "mcp-widget-bridge-v1.js"
	for url, want := range map[string]string{
		AssetURLPath(name):                       "public, max-age=31536000, immutable",
		AssetPath + name:                         "public, max-age=3600",
		AssetPath + name + "?v=0000000000000000": "public, max-age=3600",
	} {
		resp, err := http.Get(srv.URL + url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != want {
			t.Errorf("GET %s = %d, Cache-Control %q, want %q", url, resp.StatusCode, resp.Header.Get("Cache-Control"), want)
		}
	}
}

// TestAssetRanges: the asset handler answers Range requests as RFC 9110
// §14 says, through real HTTP: a satisfiable range is a 206, several a
// multipart/byteranges 206, If-Range with another validator the whole
// asset; an invalid or unsatisfiable bytes range is a 416 with
// Content-Range: bytes */<size> (§15.5.17) and the fleet's JSON refusal,
// not ServeContent's text/plain; a Range in another unit is ignored.
func TestAssetRanges(t *testing.T) {
	srv := httptest.NewServer(AssetHandler())
	defer srv.Close()
	name := "mcp-widget-bridge-v1.js"
	whole, err := fs.ReadFile(Assets(), name)
	if err != nil {
		t.Fatal(err)
	}
	size := len(whole)
	etag := `"` + contentHash(whole) + `"`
	do := func(method string, header ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+AssetPath+name, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, body
	}

	// One satisfiable range: 206 with its bytes.
	for _, tc := range []struct {
		rng         string
		first, last int
	}{
		{"bytes=0-9", 0, 9},
		{"bytes=-5", size - 5, size - 1},
		{"bytes=10-", 10, size - 1},
		{"Bytes=0-9", 0, 9}, // range units are case-insensitive (§14.1)
	} {
		res, body := do(http.MethodGet, "Range", tc.rng)
		wantCR := fmt.Sprintf("bytes %d-%d/%d", tc.first, tc.last, size)
		if res.StatusCode != http.StatusPartialContent || res.Header.Get("Content-Range") != wantCR ||
			string(body) != string(whole[tc.first:tc.last+1]) {
			t.Errorf("Range %s: %d Content-Range %q, %d bytes; want 206 %q", tc.rng, res.StatusCode, res.Header.Get("Content-Range"), len(body), wantCR)
		}
	}

	// Several ranges: one 206 multipart/byteranges, a part per range (§14.6).
	res, body := do(http.MethodGet, "Range", "bytes=0-1,4-6")
	mt, params, err := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if res.StatusCode != http.StatusPartialContent || err != nil || mt != "multipart/byteranges" {
		t.Fatalf("two ranges: %d %q (%v), want 206 multipart/byteranges", res.StatusCode, res.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(strings.NewReader(string(body)), params["boundary"])
	for _, want := range [][2]int{{0, 1}, {4, 6}} {
		part, err := mr.NextPart()
		if err != nil {
			t.Fatalf("two ranges: part %v: %v", want, err)
		}
		got, _ := io.ReadAll(part)
		wantCR := fmt.Sprintf("bytes %d-%d/%d", want[0], want[1], size)
		if part.Header.Get("Content-Range") != wantCR || string(got) != string(whole[want[0]:want[1]+1]) {
			t.Errorf("two ranges: part %q %q, want %q %q", part.Header.Get("Content-Range"), got, wantCR, whole[want[0]:want[1]+1])
		}
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Errorf("two ranges: a third part (%v)", err)
	}

	// The whole asset: no range request in a unit the server knows, or an
	// If-Range that does not match the current representation (§13.1.5).
	for _, header := range [][]string{
		{"Range", "items=0-9"}, // another unit: ignored (§14.2)
		{"Range", "0-9"},       // no unit: no range request
		{"Range", "bytes=0-9", "If-Range", `"0000000000000000"`},
		{"Range", "bytes=0-9", "If-Range", "Mon, 07 Dec 2026 06:00:00 GMT"}, // the assets have no Last-Modified
		{"Range", fmt.Sprintf("bytes=%d-", size), "If-Range", `"0000000000000000"`},
	} {
		res, body := do(http.MethodGet, header...)
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Range") != "" || string(body) != string(whole) {
			t.Errorf("%q: %d Content-Range %q, %d bytes; want 200 and the whole %d bytes", header, res.StatusCode, res.Header.Get("Content-Range"), len(body), size)
		}
	}
	// If-Range with the current ETag: the range.
	if res, body := do(http.MethodGet, "Range", "bytes=0-9", "If-Range", etag); res.StatusCode != http.StatusPartialContent || string(body) != string(whole[:10]) {
		t.Errorf("If-Range with the current ETag: %d, %d bytes; want 206 and 10", res.StatusCode, len(body))
	}

	// Refused: an unsatisfiable or invalid bytes range is a JSON 416 with
	// the current length (§14.2, §15.5.17), for HEAD too (without a body).
	for _, tc := range []struct{ method, rng string }{
		{http.MethodGet, fmt.Sprintf("bytes=%d-", size)},           // starts past the end
		{http.MethodGet, fmt.Sprintf("bytes=%d-%d", size, size+9)}, // wholly past the end
		{http.MethodGet, "bytes=abc"},
		{http.MethodGet, "bytes=5-2"}, // last before first (§14.1.2)
		{http.MethodGet, "bytes=--5"},
		{http.MethodGet, "bytes=0-1,x"},
		{http.MethodHead, fmt.Sprintf("bytes=%d-", size)},
	} {
		what := tc.method + " Range " + tc.rng
		res, body := do(tc.method, "Range", tc.rng)
		if res.StatusCode != http.StatusRequestedRangeNotSatisfiable {
			t.Errorf("%s: %d %s, want 416", what, res.StatusCode, body)
			continue
		}
		if cr, want := res.Header.Get("Content-Range"), fmt.Sprintf("bytes */%d", size); cr != want {
			t.Errorf("%s: Content-Range %q, want %q", what, cr, want)
		}
		if tc.method == http.MethodHead {
			if len(body) != 0 || res.Header.Get("Content-Type") != "application/json" {
				t.Errorf("%s: %q body %q, want none and the JSON error's type", what, res.Header.Get("Content-Type"), body)
			}
			continue
		}
		checkJSONRefusal(t, what, res, body, "range_not_satisfiable")
		if !strings.Contains(string(body), fmt.Sprintf("%d bytes long", size)) {
			t.Errorf("%s: the description does not give the asset's length: %s", what, body)
		}
	}
}

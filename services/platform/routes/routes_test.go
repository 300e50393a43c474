package routes_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/platform/routes"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

func TestTableRoutesEveryPublicPath(t *testing.T) {
	table, err := routes.Load(filepath.Join(repoRoot(t), routes.RelPath))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := table.Merged()
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"/mcp":                                  "mcp-gateway",
		"/mcp/":                                 "mcp-gateway",
		"/sse":                                  "mcp-gateway",
		"/messages":                             "mcp-gateway",
		"/app-ui/mcp-widget-bridge-v1.js":       "mcp-gateway",
		"/.well-known/oauth-protected-resource": "mcp-gateway",
		"/.well-known/oauth-protected-resource/mcp":     "mcp-gateway",
		"/oauth/authorize":                              "auth-server",
		"/oauth/token":                                  "auth-server",
		"/.well-known/openid-configuration":             "auth-server",
		"/.well-known/oauth-authorization-server":       "auth-server",
		"/actions/openapi.json":                         "actions-api",
		"/actions/profile":                              "actions-api",
		"/health":                                       "actions-api",
		"/privacy":                                      "actions-api",
		"/.well-known/oauth-protected-resource/actions": "actions-api",
		// Unknown well-known paths get the actions-api's JSON 404.
		"/.well-known/openid-configuration/x": "actions-api",
		"/.well-known/unknown":                "actions-api",
	}
	for path, want := range cases {
		r, ok := routes.Match(rules, path)
		if !ok || r.Service != want {
			t.Errorf("%s → %q (matched %v), want %s", path, r.Service, ok, want)
		}
	}
	for _, path := range []string{"/mcpx", "/healthz", "/health/x", "/", "/oauthx"} {
		if r, ok := routes.Match(rules, path); ok {
			t.Errorf("%s matched %+v, want no route", path, r)
		}
	}
	if len(table.Ingresses["gateway"]) == 0 || len(table.Ingresses["actions"]) == 0 {
		t.Error("both the gateway and the actions ingress must have rules")
	}
}

func TestConflictingRulesAreRefused(t *testing.T) {
	_, err := routes.Parse([]byte("ingresses:\n  a:\n    - {path: /x, pathType: Prefix, service: one}\n  b:\n    - {path: /x, pathType: Prefix, service: two}\n"))
	if err == nil || !strings.Contains(err.Error(), "goes to") {
		t.Errorf("conflict accepted: %v", err)
	}
	for _, bad := range []string{"ingresses: {}", "ingresses:\n  a:\n    - {path: x, pathType: Prefix, service: s}", "ingresses:\n  a:\n    - {path: /x, pathType: Glob, service: s}", "nope: 1"} {
		if _, err := routes.Parse([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestProxyKeepsHostAndStreams(t *testing.T) {
	ingressURL := ingressTo(t, "/mcp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, r.Host+" "+r.URL.Path+" "+r.Header.Get("X-Forwarded-Proto"))
	}))
	req, _ := http.NewRequest("GET", ingressURL+"/mcp/x", nil)
	req.Host = "localhost:4000"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "localhost:4000 /mcp/x http" {
		t.Errorf("backend saw %q", b)
	}
	resp, _ = http.Get(ingressURL + "/nope")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unrouted path: %d", resp.StatusCode)
	}
	resp.Body.Close()
	if _, err := routes.Proxy([]routes.Rule{{Path: "/mcp", PathType: "Prefix", Service: "gw"}}, nil); err == nil {
		t.Error("missing backend accepted")
	}
}

// TestUnreachableBackendIs502WithRetryAfter: a backend nobody listens on
// (a real loopback port that refuses: a component of `make dev` stopped or
// restarting) is 502 with the JSON body and Retry-After: 1; a backend that
// took the connection and dropped it without an answer is 502 without
// Retry-After (the request may have reached it).
func TestUnreachableBackendIs502WithRetryAfter(t *testing.T) {
	dead, _ := url.Parse("http://" + testharness.ClosedAddr(t))
	dropper := dropperBackend(t)
	rules := []routes.Rule{
		{Path: "/mcp", PathType: "Prefix", Service: "mcp-gateway"},
		{Path: "/actions", PathType: "Prefix", Service: "actions-api"},
	}
	h, err := routes.Proxy(rules, map[string]*url.URL{"mcp-gateway": dead, "actions-api": dropper})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	// The dropped request has no body here; TestDroppedBodyRequestIs502
	// sends bodies to a backend that drops the connection.
	for _, c := range []struct{ method, path, retryAfter string }{{"POST", "/mcp", "1"}, {"GET", "/actions/x", ""}} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		if c.method == "POST" {
			req, _ = http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(`{}`))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var body struct{ Error, ErrorDescription string }
		if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Content-Type") != "application/json" ||
			json.Unmarshal(b, &body) != nil || body.Error != "bad_gateway" {
			t.Errorf("%s: %d %s %q, want 502 with a JSON bad_gateway", c.path, resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
		if got := resp.Header.Get("Retry-After"); got != c.retryAfter {
			t.Errorf("%s: Retry-After %q, want %q", c.path, got, c.retryAfter)
		}
	}
}

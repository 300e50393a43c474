package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestUpstreamDiscoveryDocumentBroken: a provider whose discovery URL
// answers 200 with no usable discovery document — not JSON (an ingress's
// welcome page), without the members a sign-in needs (OpenID Connect
// Discovery 1.0 §3), or naming another issuer (§4.3) — or answers a status
// other than 200 and an outage's (a 404: the wrong UPSTREAM_ISSUER_URL) is
// misconfigured: the client gets server_error (RFC 6749 §4.1.2.1), and the
// log one ERROR line naming UPSTREAM_ISSUER_URL, the discovery URL and
// what is wrong, quoting no more of the body than its start. Before, all
// of it passed for an outage: temporarily_unavailable, a warning. A 503
// (RFC 9110 §15.6.4) stays temporarily_unavailable. The stand-in serves
// real HTTP; each case's answer is the one of the authorization request
// during which the auth-server fetched that case's document (a failed
// discovery is answered again for 2 s without a request).
func TestUpstreamDiscoveryDocumentBroken(t *testing.T) {
	var mode atomic.Value
	var mu sync.Mutex
	hits := map[string]int{}
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		m := mode.Load().(string)
		mu.Lock()
		hits[m]++
		mu.Unlock()
		full := map[string]any{"issuer": srv.URL, "authorization_endpoint": srv.URL + "/authorize", "token_endpoint": srv.URL + "/token",
			"jwks_uri": srv.URL + "/jwks", "response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"}}
		switch m {
		case "html":
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html>\n<body>Welcome to nginx!</body><!--" + strings.Repeat("x", 100) + "--> session=SECRET-PAST-THE-EXCERPT</html>"))
			return
		case "missing":
			delete(full, "token_endpoint")
			delete(full, "jwks_uri")
		case "issuer":
			full["issuer"] = "https://other.example"
		case "404":
			http.NotFound(w, r)
			return
		case "503":
			http.Error(w, "upstream connect error", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(full)
	}))
	t.Cleanup(srv.Close)
	mode.Store("html")
	f := startFleet(t, map[string]string{"UPSTREAM_ISSUER_URL": srv.URL})
	c := f.Clients["local-test"]
	wellKnown := srv.URL + "/.well-known/openid-configuration"

	for _, tc := range []struct {
		mode, want string
		logged     []string // in the ERROR line, besides the setting and the URL
	}{
		{"html", "server_error", []string{`is not a JSON object (invalid character '<' looking for beginning of value`, `it begins \"<html> <body>Welcome to nginx!</body><!--xxx`}},
		{"missing", "server_error", []string{"lacks token_endpoint, jwks_uri (REQUIRED members, OpenID Connect Discovery 1.0 §3)"}},
		{"issuer", "server_error", []string{`says issuer \"https://other.example\"`}},
		{"404", "server_error", []string{"answered HTTP 404 Not Found, not 200"}},
		{"503", "temporarily_unavailable", nil},
	} {
		mode.Store(tc.mode)
		var got string
		var before int // where the log of the request that fetched begins
		for i := 0; ; i++ {
			if i == 300 {
				t.Fatalf("%s: the auth-server never fetched the discovery document", tc.mode)
			}
			before = len(f.AS.Logs.String())
			p := newBrowser(t, c.RedirectURIs[0]).get(newAuthRequest(c).URL(f.Base))
			if p.Location == nil {
				t.Fatalf("%s: %d, want a redirect to the client\n%.300s", tc.mode, p.Status, p.Body)
			}
			mu.Lock()
			fetched := hits[tc.mode] > 0
			mu.Unlock()
			if fetched {
				got = p.Location.Query().Get("error")
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if got != tc.want {
			t.Errorf("%s: error=%s, want %s", tc.mode, got, tc.want)
		}
		logs := f.AS.Logs.String()[before:]
		var errorLines []string
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, "level=ERROR") && strings.Contains(line, "upstream") {
				errorLines = append(errorLines, line)
			}
		}
		if tc.logged == nil {
			if len(errorLines) > 0 {
				t.Errorf("%s: an outage logged as an error:\n%s", tc.mode, strings.Join(errorLines, "\n"))
			}
			continue
		}
		if len(errorLines) == 0 {
			t.Errorf("%s: no ERROR line:\n%s", tc.mode, logs)
			continue
		}
		line := errorLines[len(errorLines)-1]
		for _, want := range append(tc.logged, `UPSTREAM_ISSUER_URL is \"`+srv.URL+`\"`, wellKnown) {
			if !strings.Contains(line, want) {
				t.Errorf("%s: the ERROR line does not say %q:\n%s", tc.mode, want, line)
			}
		}
		if strings.Contains(logs, "SECRET-PAST-THE-EXCERPT") {
			t.Errorf("%s: the log quotes the body past its excerpt:\n%s", tc.mode, logs)
		}
	}
}

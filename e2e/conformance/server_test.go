package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/tollgate/tollgate/e2e/harness"
)

// serverExpectedFailures are server-suite scenarios known to fail against
// the fleet, with why and a text their failure must contain (see verdict).
// docs/deployment/testing.md lists them with the same reasons.
var serverExpectedFailures = map[string]knownFailure{
	// Server-to-client requests: the gateway serves every POST of a
	// session from Redis on any replica, so the client's answer to a
	// sampling/createMessage or elicitation/create (a later POST) does not
	// reach the handler waiting for it. Not offered (docs/reference/mcp.md).
	"tools-call-sampling": {
		why:   "server-to-client requests (sampling) are not offered",
		match: "",
	},
	"tools-call-elicitation": {
		why:   "server-to-client requests (elicitation) are not offered",
		match: "",
	},
	"elicitation-sep1034-defaults": {
		why:   "server-to-client requests (elicitation) are not offered; no test_elicitation_sep1034_defaults fixture",
		match: "",
	},
	"elicitation-sep1330-enums": {
		why:   "server-to-client requests (elicitation) are not offered; no test_elicitation_sep1330_enums fixture",
		match: "",
	},
}

// TestServerSuite runs the suite's active server scenarios (`conformance
// server`, the pinned version) against the fleet's /mcp, whose gateway
// runs the conformance fixture profile (MCP_CONFORMANCE_FIXTURES=true, set
// in TestMain). The suite has no way to send a bearer token, so it talks
// to a loopback proxy (startServerProxy) that adds one — obtained by the
// real authorization code flow — and passes everything else (Host, Origin)
// unchanged, so the gateway's own checks (DNS rebinding) still see what
// the suite sent. Every check must pass; a scenario listed in
// serverExpectedFailures must fail (the list cannot outlive the defect).
func TestServerSuite(t *testing.T) {
	token := mcpToken(t)
	serverToken.Store(&token)
	t.Cleanup(func() { serverToken.Store(nil) })

	out, output, _ := runServerSuite(t, "http://"+serverProxy.Addr().String()+"/mcp")

	results := map[string]result{}
	dirs, _ := os.ReadDir(out)
	for _, d := range dirs {
		name, ok := strings.CutPrefix(d.Name(), "server-")
		if !ok || !d.IsDir() || len(name) <= 25 {
			continue
		}
		scenario := name[:len(name)-25]
		b, err := os.ReadFile(filepath.Join(out, d.Name(), "checks.json"))
		if errors.Is(err, fs.ErrNotExist) {
			results[scenario] = result{failed: true, reason: "no checks.json"}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var checks []check
		if err := json.Unmarshal(b, &checks); err != nil {
			t.Fatalf("%s/checks.json: %v", scenario, err)
		}
		results[scenario] = judgeServer(checks)
	}
	if len(results) < 20 {
		t.Fatalf("the suite reported %d scenarios:\n%s", len(results), output)
	}
	passed := 0
	for _, sc := range sortedKeys(results) {
		r := results[sc]
		if !r.failed {
			passed++
		}
		verdict(t, sc, serverExpectedFailures, r.failed, r.reason+r.warnings, string(output))
	}
	for key := range serverExpectedFailures {
		if _, ok := results[key]; !ok {
			t.Errorf("serverExpectedFailures lists %q, which the suite did not run", key)
		}
	}
	t.Logf("server suite: %d of %d scenarios passed", passed, len(results))
}

// serverToken is the access token TestServerSuite's proxy adds to every
// request; nil outside the test.
var serverToken atomic.Pointer[string]

// startServerProxy serves TestServerSuite's token-adding proxy on
// serverProxy, whose origin is in the fleet's ALLOWED_ORIGINS (the
// suite's DNS-rebinding scenario sends Origin: http://<the URL's host>),
// until stop. It runs for the whole process, not per test: a proxy the
// test started and closed took serverProxy down with it, so that a second
// run of the test (go test -count=2) found the fleet's one allowed origin
// unbound and the suite could not connect.
func startServerProxy() (stop func()) {
	target, _ := url.Parse(fleet.Origin)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			if tok := serverToken.Load(); tok != nil {
				pr.Out.Header.Set("Authorization", "Bearer "+*tok)
			}
		},
		FlushInterval: -1,
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Full duplex, as the local ingress (routes.Proxy): otherwise the
			// server closes the request body when the answer's header is
			// written, and a late read of it by the Transport cuts the answer.
			_ = http.NewResponseController(w).EnableFullDuplex()
			rp.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.Serve(serverProxy) }()
	return func() { _ = srv.Close() }
}

// judgeServer fails a scenario on any FAILURE check; SKIPPED and WARNING
// checks are reported (the server suite skips what a server does not
// declare, e.g. checks of a later protocol version).
func judgeServer(checks []check) result {
	var r result
	var reasons, notes []string
	for _, c := range checks {
		switch c.Status {
		case "FAILURE":
			r.failed = true
			reasons = append(reasons, c.ID+": "+c.ErrorMessage)
		case "WARNING", "SKIPPED":
			notes = append(notes, c.ID+" "+c.Status+": "+c.ErrorMessage)
		}
	}
	if len(checks) == 0 {
		r.failed, reasons = true, []string{"no checks reported"}
	}
	r.reason = strings.Join(reasons, "; ")
	if len(notes) > 0 {
		r.warnings = " (" + strings.Join(notes, "; ") + ")"
	}
	return r
}

// mcpToken runs the authorization code flow (PKCE, resource = /mcp) for the
// pre-registered public client with the harness's browser and returns the
// access token.
func mcpToken(t *testing.T) string {
	t.Helper()
	// Nothing binds this port: the harness's browser stops at the redirect
	// and reads the code from its URL, so no other process can race for it.
	redirect := callbackURL(mustFreePort(t))
	conf := &oauth2.Config{
		ClientID: publicID, RedirectURL: redirect, Scopes: []string{"openid", "profile", "email"},
		Endpoint: oauth2.Endpoint{AuthURL: fleet.Origin + "/oauth/authorize", TokenURL: fleet.Origin + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams},
	}
	verifier := oauth2.GenerateVerifier()
	resource := oauth2.SetAuthURLParam("resource", fleet.Origin+"/mcp")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := harness.NewBrowser(fleet.Creds.User.Username, fleet.Creds.User.Password)
	cb, err := b.Authorize(ctx, conf.AuthCodeURL("st-"+verifier[:12], oauth2.S256ChallengeOption(verifier), resource), redirect)
	if err != nil || cb.Query().Get("code") == "" {
		t.Fatalf("authorize: %v %v (visited %v)", err, cb, b.Visited)
	}
	tok, err := conf.Exchange(ctx, cb.Query().Get("code"), oauth2.VerifierOption(verifier), resource)
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	return tok.AccessToken
}

// runServerSuite runs the conformance server suite against url; its results
// are in the directory it returns.
func runServerSuite(t *testing.T, url string) (string, []byte, error) {
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node(), suiteJS(), "server", "--url", url, "--output-dir", out)
	cmd.WaitDelay = 5 * time.Second
	output, err := cmd.CombinedOutput()
	t.Logf("conformance server exited with %v", err)
	return out, output, err
}

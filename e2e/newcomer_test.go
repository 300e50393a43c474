package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/e2e/harness"
	"github.com/tollgate/tollgate/services/platform/devfleet"
)

func signIn(t *testing.T, o devfleet.SignInOptions) (*devfleet.TokenResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if o.Creds.Origin == "" {
		o.Creds = fleet.Creds
	}
	return devfleet.SignIn(ctx, o)
}

// audience reads a token's aud without verifying it (the services verify).
func audience(t *testing.T, at string) []string {
	t.Helper()
	parts := strings.Split(at, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %.20s…", at)
	}
	var c struct {
		Aud any `json:"aud"`
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	switch a := c.Aud.(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, x := range a {
			out = append(out, x.(string))
		}
		return out
	}
	return nil
}

// TestGPTActionSignIn signs in the way a GPT Action does: the gpt-actions
// client, no PKCE (GPTs send no code_challenge), no resource (OpenAI's
// OAuth sends none: the audience is the client's first resource), state,
// client_secret_post at the token endpoint — through the dev IdP's login
// form — and then calls the Actions API with the token. PKCE stays available to it, and
// the clients that require PKCE still refuse a request without it.
func TestGPTActionSignIn(t *testing.T) {
	c, _ := fleet.Client("gpt-actions")
	if c.AuthMethod != "client_secret_post" || c.RequirePKCE {
		t.Fatalf("gpt-actions is %s, require_pkce=%v; want client_secret_post without a PKCE requirement", c.AuthMethod, c.RequirePKCE)
	}
	tr, err := signIn(t, devfleet.SignInOptions{ClientID: "gpt-actions", NoPKCE: true})
	if err != nil {
		t.Fatalf("GPT-style sign-in: %v\nfleet log:\n%s", err, fleet.Logs)
	}
	if aud := audience(t, tr.AccessToken); len(aud) != 1 || aud[0] != fleet.Origin+"/actions" {
		t.Errorf("aud %v, want %s/actions", aud, fleet.Origin)
	}
	resp, body := call(t, "GET", fleet.Origin+"/actions/profile", tr.AccessToken, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "dev-user-0001") {
		t.Errorf("/actions/profile with the GPT's token: %d %s", resp.StatusCode, body)
	}
	// Still PKCE-capable.
	if _, err := signIn(t, devfleet.SignInOptions{ClientID: "gpt-actions", Resource: "actions"}); err != nil {
		t.Errorf("gpt-actions with PKCE: %v", err)
	}
	// local-test still requires PKCE.
	_, err = signIn(t, devfleet.SignInOptions{ClientID: "local-test", Resource: "mcp", NoPKCE: true})
	if err == nil || !strings.Contains(err.Error(), "invalid_request: code_challenge with code_challenge_method=S256 is required") {
		t.Errorf("local-test without PKCE: %v, want invalid_request about code_challenge", err)
	}
}

// TestTokenCommand runs `tollgate-dev token` as the docs show it, against
// the fleet's state directory, and uses its tokens with curl-like requests
// on /mcp and /actions.
func TestTokenCommand(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "tollgate-dev")
	build := exec.Command("go", "build", "-o", bin, "./services/platform/cmd/tollgate-dev")
	build.Dir = harness.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build tollgate-dev: %v\n%s", err, out)
	}
	run := func(args ...string) (string, string, error) {
		cmd := exec.Command(bin, append([]string{"token", "-var", fleet.VarDir}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return strings.TrimSpace(stdout.String()), stderr.String(), err
	}

	mcpTok, stderr, err := run("--client", "local-test", "--resource", "mcp")
	if err != nil {
		t.Fatalf("token --resource mcp: %v\n%s", err, stderr)
	}
	resp, body := call(t, "POST", fleet.Origin+"/mcp", mcpTok,
		strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}`),
		"Content-Type", "application/json", "Accept", "application/json, text/event-stream")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Mcp-Session-Id") == "" {
		t.Errorf("initialize with the printed token: %d %s", resp.StatusCode, body)
	}

	out, stderr, err := run("--resource", "actions", "--scope", "openid profile", "--json")
	if err != nil {
		t.Fatalf("token --resource actions --json: %v\n%s", err, stderr)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
		Scope       string `json:"scope"`
	}
	if err := json.Unmarshal([]byte(out), &tr); err != nil || tr.AccessToken == "" || !strings.EqualFold(tr.TokenType, "bearer") || tr.ExpiresIn <= 0 {
		t.Fatalf("--json printed %q (%v)", out, err)
	}
	if tr.Scope != "openid profile" {
		t.Errorf("scope %q, want the requested openid profile", tr.Scope)
	}
	resp, body = call(t, "GET", fleet.Origin+"/actions/session", tr.AccessToken, nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/actions/session with the printed token: %d %s", resp.StatusCode, body)
	}

	// Without --resource none is sent, as a GPT Action's OAuth sends
	// none: the token's audience is the client's first resource, the one
	// the GPT's token has (gpt-actions: /actions; local-test: /mcp). The
	// command sent its --resource default, mcp, so a builder testing as
	// gpt-actions got another answer than their GPT.
	for _, c := range []struct{ client, aud string }{{"gpt-actions", "/actions"}, {"local-test", "/mcp"}} {
		tok, stderr, err := run("--client", c.client, "--no-pkce="+strconv.FormatBool(c.client == "gpt-actions"))
		if err != nil {
			t.Fatalf("token --client %s without --resource: %v\n%s", c.client, err, stderr)
		}
		if aud := audience(t, tok); len(aud) != 1 || aud[0] != fleet.Origin+c.aud {
			t.Errorf("token --client %s without --resource: aud %v, want %s%s", c.client, aud, fleet.Origin, c.aud)
		}
	}

	// --origin signs in at a fleet other than the one that wrote the
	// credentials' directory: here its clients.json names an origin
	// nothing answers, and --origin the running fleet.
	moved := t.TempDir()
	b, err := os.ReadFile(filepath.Join(fleet.VarDir, "dev", "clients.json"))
	if err != nil {
		t.Fatal(err)
	}
	var creds map[string]any
	if err := json.Unmarshal(b, &creds); err != nil || creds["origin"] != fleet.Origin {
		t.Fatalf("clients.json (%v) names no origin %s: %s", err, fleet.Origin, b)
	}
	creds["origin"] = "http://127.0.0.1:1"
	if b, err = json.Marshal(creds); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(moved, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(moved, "dev", "clients.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	runIn := func(dir string, args ...string) (string, string, error) {
		cmd := exec.Command(bin, append([]string{"token", "-var", dir}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return strings.TrimSpace(stdout.String()), stderr.String(), err
	}
	if _, stderr, err := runIn(moved); err == nil || !strings.Contains(stderr, "http://127.0.0.1:1 is unreachable") {
		t.Errorf("token with the moved credentials and no --origin: %v %q, want the credentials' origin unreachable", err, stderr)
	}
	tok, stderr, err := runIn(moved, "--origin", fleet.Origin, "--resource", "actions")
	if err != nil {
		t.Fatalf("token --origin %s: %v\n%s", fleet.Origin, err, stderr)
	}
	if aud := audience(t, tok); len(aud) != 1 || aud[0] != fleet.Origin+"/actions" {
		t.Errorf("token --origin %s --resource actions: aud %v", fleet.Origin, aud)
	}

	// Refusals say what is wrong.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--client", "nope"}, `no dev client "nope" (dev clients: local-test, gpt-actions, gpt-apps-mcp)`},
		{[]string{"--resource", "elsewhere"}, `resource "elsewhere": want mcp, actions or an absolute URL`},
		{[]string{"--client", "gpt-actions", "--resource", "mcp"}, "invalid_target"},
		{[]string{"--origin", "localhost:4000"}, `origin "localhost:4000": want the fleet's origin, http(s)://host[:port]`},
	} {
		if _, stderr, err := run(c.args...); err == nil || !strings.Contains(stderr, c.want) {
			t.Errorf("token %v: %v %q, want an error containing %q", c.args, err, stderr, c.want)
		}
	}
}

// TestPublicURL starts the fleet as `PUBLIC_URL=http://tunnel.test make
// dev` would and reaches it the way a tunnel does: requests for the
// public host arrive at the local ingress with that Host. Issuer, resource
// URLs and allowed origins follow PUBLIC_URL; a sign-in through the
// public host yields a token the gateway accepts; the MCP Inspector's
// origin gets CORS on discovery and metadata; DCR is on.
func TestPublicURL(t *testing.T) {
	const public = "http://tunnel.test"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	// DEV_ALLOWED_ORIGINS=http://localhost:6274,http://localhost:5173
	const vite = "http://localhost:5173"
	f, err := harness.StartWith(ctx, harness.Options{PublicURL: public, AllowedOrigins: []string{devfleet.InspectorOrigin, vite}})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	ingress := "127.0.0.1:" + strconv.Itoa(f.Ports.Ingress)
	tunnel := http.DefaultTransport.(*http.Transport).Clone()
	tunnel.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == "tunnel.test:80" {
			addr = ingress
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	client := &http.Client{Transport: tunnel, Timeout: 30 * time.Second}
	get := func(path string, header ...string) (*http.Response, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("GET", public+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		m := map[string]any{}
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp, m
	}

	if f.Origin != public || f.Creds.Origin != public {
		t.Fatalf("fleet origin %s, credentials for %s; want %s", f.Origin, f.Creds.Origin, public)
	}
	_, disc := get("/.well-known/oauth-authorization-server")
	if disc["issuer"] != public || disc["registration_endpoint"] != public+"/oauth/register" {
		t.Errorf("discovery through the tunnel: issuer %v, registration_endpoint %v", disc["issuer"], disc["registration_endpoint"])
	}
	_, prm := get("/.well-known/oauth-protected-resource/mcp")
	if prm["resource"] != public+"/mcp" {
		t.Errorf("protected resource metadata: resource %v, want %s/mcp", prm["resource"], public)
	}
	// The Actions resource's metadata (RFC 9728 §3.1), routed by the
	// ingress to the actions-api, and the 401 challenge that points at it
	// (§5.1); other well-known paths are JSON 404s.
	if _, aprm := get("/.well-known/oauth-protected-resource/actions"); aprm["resource"] != public+"/actions" ||
		fmt.Sprint(aprm["authorization_servers"]) != "["+public+"]" {
		t.Errorf("Actions protected resource metadata: %v", aprm)
	}
	if resp, _ := get("/actions/profile"); resp.StatusCode != http.StatusUnauthorized ||
		!strings.Contains(resp.Header.Get("WWW-Authenticate"), `resource_metadata="`+public+`/.well-known/oauth-protected-resource/actions"`) {
		t.Errorf("GET /actions/profile without a token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	for _, path := range []string{"/.well-known/unknown", "/.well-known/oauth-protected-resource/nope"} {
		if resp, e := get(path); resp.StatusCode != http.StatusNotFound || e["error"] == nil {
			t.Errorf("GET %s: %d %v, want a JSON 404", path, resp.StatusCode, e)
		}
	}
	// CORS for the allowed origins (DEV_ALLOWED_ORIGINS) on the metadata
	// the browser fetches; none for another origin on the authorization
	// server's (the protected resource metadata is public: *).
	for _, path := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration", "/.well-known/oauth-protected-resource/mcp", "/oauth/jwks"} {
		for _, origin := range []string{devfleet.InspectorOrigin, vite} {
			if resp, _ := get(path, "Origin", origin); resp.Header.Get("Access-Control-Allow-Origin") == "" {
				t.Errorf("GET %s from %s: no Access-Control-Allow-Origin", path, origin)
			}
		}
		if resp, _ := get(path, "Origin", "http://localhost:9999"); !strings.Contains(path, "protected-resource") && resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("GET %s from an origin not in DEV_ALLOWED_ORIGINS: Access-Control-Allow-Origin %q", path, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	}

	// The dev clients follow the public origin too: sign in through the
	// tunnel host and use the token there.
	tr, err := devfleet.SignIn(context.Background(), devfleet.SignInOptions{Creds: f.Creds, ClientID: "local-test", Resource: "mcp", Transport: tunnel})
	if err != nil {
		t.Fatalf("sign-in through the public URL: %v\nfleet log:\n%s", err, f.Logs)
	}
	if aud := audience(t, tr.AccessToken); len(aud) != 1 || aud[0] != public+"/mcp" {
		t.Errorf("aud %v, want %s/mcp", aud, public)
	}
	req, _ := http.NewRequest("POST", public+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`))
	req.Header.Set("Authorization", "Bearer "+tr.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Origin", devfleet.InspectorOrigin)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("initialize on the public host from the Inspector's origin: %d (a 403 means the Host or Origin is not allowed)", resp.StatusCode)
	}
	// Another listed origin passes the gateway's Origin check; an unlisted
	// one is refused (DNS rebinding protection, MCP transport security).
	for origin, want := range map[string]int{vite: http.StatusOK, "http://localhost:9999": http.StatusForbidden} {
		req, _ := http.NewRequest("POST", public+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`))
		req.Header.Set("Authorization", "Bearer "+tr.AccessToken)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Origin", origin)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("initialize from %s: %d, want %d", origin, resp.StatusCode, want)
		}
	}

	// DCR is on in development.
	reg, _ := http.NewRequest("POST", public+"/oauth/register", strings.NewReader(`{"client_name":"inspector-like","redirect_uris":["http://localhost:6274/oauth/callback"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"response_types":["code"]}`))
	reg.Header.Set("Content-Type", "application/json")
	reg.Header.Set("Origin", devfleet.InspectorOrigin)
	resp, err = client.Do(reg)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Access-Control-Allow-Origin") != devfleet.InspectorOrigin {
		t.Errorf("DCR from the Inspector's origin: %d, ACAO %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
}

// TestTokenEndpointLockOutThroughTheIngress re-runs issue 10's lock-out
// reproduction as a new user (and an attacker) does against `make dev`:
// 200 wrong secrets naming a client, four at a time, every one from
// 127.0.0.1 through the local ingress — the real client's own address —
// then the real client signs in and redeems its code from that address.
// The failure back-off answers 429 with Retry-After and an OAuth body
// after 10 failures, and never refuses the correct secret.
func TestTokenEndpointLockOutThroughTheIngress(t *testing.T) {
	// A client of its own (DCR is on under make dev): spending its failure
	// budget at 127.0.0.1 leaves the dev clients to the other tests.
	hc := &http.Client{Timeout: 10 * time.Second} // a hung ingress fails the call, not the whole run
	resp, err := hc.Post(fleet.Origin+"/oauth/register", "application/json", strings.NewReader(
		`{"client_name":"issue-10 re-run","redirect_uris":["http://127.0.0.1:8976/callback"],"token_endpoint_auth_method":"client_secret_post","grant_types":["authorization_code","refresh_token"],"response_types":["code"]}`))
	if err != nil {
		t.Fatal(err)
	}
	var reg devfleet.DevClient
	err = json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || err != nil || reg.ClientID == "" || reg.ClientSecret == "" {
		t.Fatalf("registration: %d %v %+v", resp.StatusCode, err, reg)
	}
	reg.AuthMethod, reg.Audience, reg.RequirePKCE = "client_secret_post", fleet.Origin+"/mcp", true

	type answer struct {
		status     int
		err        string
		retryAfter string
		json       bool
	}
	token := func(secret string) answer {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {reg.ClientID}, "client_secret": {secret}}
		resp, err := hc.PostForm(fleet.Origin+"/oauth/token", form)
		if err != nil {
			t.Error(err)
			return answer{}
		}
		defer resp.Body.Close()
		var e struct {
			Error string `json:"error"`
		}
		dec := json.NewDecoder(resp.Body).Decode(&e)
		return answer{resp.StatusCode, e.Error, resp.Header.Get("Retry-After"), dec == nil && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json")}
	}

	var mu sync.Mutex
	counts := map[int]int{}
	var limited answer
	work := make(chan int)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				a := token("wrong-" + strconv.Itoa(i))
				mu.Lock()
				counts[a.status]++
				if a.status == http.StatusTooManyRequests {
					limited = a
				}
				mu.Unlock()
			}
		}()
	}
	for i := range 200 {
		work <- i
	}
	close(work)
	wg.Wait()
	// CLIENT_AUTH_FAILURE_LIMIT is 10 per 15 minutes (a token may come back
	// during the run: one per 90 s).
	if counts[http.StatusUnauthorized] < 10 || counts[http.StatusUnauthorized] > 12 || counts[http.StatusTooManyRequests]+counts[http.StatusUnauthorized] != 200 {
		t.Errorf("200 wrong secrets from 127.0.0.1: %v, want 10 (≤12) × 401 and the rest 429", counts)
	}
	if s, err := strconv.Atoi(limited.retryAfter); limited.err != "temporarily_unavailable" || !limited.json || err != nil || s < 1 {
		t.Errorf("a back-off answer: %+v, want 429 temporarily_unavailable, a JSON body and Retry-After in seconds", limited)
	}
	// The correct secret, from the very address that spent the budget:
	// checked and accepted (400 invalid_grant: the client authenticated).
	if a := token(reg.ClientSecret); a.status != http.StatusBadRequest || a.err != "invalid_grant" {
		t.Errorf("the real client's secret after the flood: %+v, want 400 invalid_grant", a)
	}
	creds := fleet.Creds
	creds.Clients = append(append([]devfleet.DevClient(nil), creds.Clients...), reg)
	tr, err := signIn(t, devfleet.SignInOptions{Creds: creds, ClientID: reg.ClientID, Resource: "mcp"})
	if err != nil || tr.AccessToken == "" || tr.RefreshToken == "" {
		t.Fatalf("the real client's sign-in after the flood: %v", err)
	}
}

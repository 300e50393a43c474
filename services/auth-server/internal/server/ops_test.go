package server_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/auth-server/internal/server"
	pconfig "github.com/tollgate/tollgate/services/platform/config"
)

// TestRedisOutage: with Redis stopped the endpoints answer 503 quickly
// (no hang, no 500), readiness stays green and reports Redis down (every
// replica shares Redis); after Redis is back, they recover.
func TestRedisOutage(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	tr := f.fullFlow(c, newAuthRequest(c))
	ready := func() (int, string) {
		resp, err := http.Get(f.Admin() + "/healthz/ready")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, _ := ready(); st != 200 {
		t.Fatalf("ready before the outage: %d", st)
	}
	f.Redis.Stop()
	start := time.Now()
	r := f.refresh(c, tr.RefreshToken)
	if r.Status != http.StatusServiceUnavailable || r.Error != "temporarily_unavailable" || r.Header.Get("Retry-After") == "" {
		t.Errorf("refresh during outage: %d %s, want 503 temporarily_unavailable with Retry-After", r.Status, r.Error)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("503 took %s; it must be quick", d)
	}
	if strings.Contains(r.Description, "redis") || strings.Contains(r.Description, "127.0.0.1") {
		t.Errorf("error leaks internals: %q", r.Description)
	}
	p := newBrowser(t, c.RedirectURIs[0], f.IdP.Issuer).get(newAuthRequest(c).URL(f.Base))
	if p.Status != http.StatusServiceUnavailable || p.Header.Get("Retry-After") == "" {
		t.Errorf("authorize during outage: %d, Retry-After %q; want 503 with Retry-After", p.Status, p.Header.Get("Retry-After"))
	}
	if st, _ := f.userinfo(tr.AccessToken); st != http.StatusServiceUnavailable {
		t.Errorf("userinfo during outage: %d, want 503", st)
	}
	if st, body := ready(); st != 200 || !strings.Contains(body, `"name":"redis","status":"down"`) {
		t.Errorf("ready during outage: %d %s, want 200 reporting redis down", st, body)
	}
	f.Redis.Start()
	deadline := time.Now().Add(30 * time.Second)
	for _, body := ready(); !strings.Contains(body, `"name":"redis","status":"ok"`); _, body = ready() {
		if time.Now().After(deadline) {
			t.Fatalf("readiness does not report Redis back within 30s: %s", body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The test Redis has no persistence: state is gone, so a new flow must work.
	f.fullFlow(c, newAuthRequest(c))
}

// TestRateLimits: per endpoint and subject, 429 with Retry-After.
func TestRateLimits(t *testing.T) {
	f := startFleet(t, map[string]string{"RATE_LIMIT_TOKEN_PER_MINUTE": "3", "RATE_LIMIT_USERINFO_PER_MINUTE": "2", "RATE_LIMIT_REGISTER_PER_MINUTE": "2"})
	c := f.Clients["local-test"]
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"nope"}}
	var last tokenResponse
	for range 4 {
		last = f.token(c, form)
	}
	if last.Status != http.StatusTooManyRequests || last.Error != "temporarily_unavailable" {
		t.Fatalf("4th token request: %d %s, want 429 temporarily_unavailable", last.Status, last.Error)
	}
	if s, err := strconv.Atoi(last.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q", last.Header.Get("Retry-After"))
	}
	// Another client has its own bucket.
	if r := f.token(f.Clients["gpt-actions"], form); r.Status == http.StatusTooManyRequests {
		t.Error("another client was limited by local-test's bucket")
	}
	// Anonymous requests are limited per remote address.
	var st int
	for range 3 {
		st, _ = f.userinfo("x.y.z")
	}
	if st != http.StatusTooManyRequests {
		t.Errorf("3rd userinfo: %d, want 429", st)
	}
	// Registration is limited per address.
	var code int
	for i := range 3 {
		resp, err := http.Post(f.Base+"/oauth/register", "application/json",
			strings.NewReader(`{"redirect_uris":["https://r`+strconv.Itoa(i)+`.example/cb"],"token_endpoint_auth_method":"none"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		code = resp.StatusCode
	}
	if code != http.StatusTooManyRequests {
		t.Errorf("3rd registration: %d, want 429", code)
	}
}

// TestProductionFailsClosed: production start-up refuses an unsafe
// configuration and lists every problem at once.
func TestProductionFailsClosed(t *testing.T) {
	env := map[string]string{
		"TOLLGATE_ENV": "production", "PUBLIC_ISSUER_URL": "http://auth.example", "REDIS_URL": "",
		"UPSTREAM_ISSUER_URL": "http://idp.example", "ACCESS_TOKEN_TTL": "48h", "ALLOWED_ORIGINS": "http://app.example",
		"MCP_RESOURCE_URL": "https://mcp.example/mcp", "CIMD_ALLOW_PRIVATE_NETWORKS": "true",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := server.Run(ctx, pconfig.MapEnv(env), &strings.Builder{}, nil)
	var ce *pconfig.Error
	if !errors.As(err, &ce) {
		t.Fatalf("Run: %v, want a configuration error", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"PUBLIC_ISSUER_URL", "REDIS_URL", "CLIENTS_FILE", "SIGNING_KEYS_DIR", "UPSTREAM_ISSUER_URL", "UPSTREAM_CLIENT_ID",
		"UPSTREAM_CLIENT_SECRET", "TOKEN_HMAC_SECRET", "ACCESS_TOKEN_TTL", "ALLOWED_ORIGINS", "CIMD_ALLOW_PRIVATE_NETWORKS",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error does not name %s:\n%s", want, msg)
		}
	}
}

// TestBadClientRegistry: every problem of the registry file is reported.
func TestBadClientRegistry(t *testing.T) {
	f := &fleet{t: t}
	_ = f
	dir := t.TempDir()
	path := dir + "/clients.yaml"
	writeFile(t, path, `clients:
- client_id: a
  client_secret_hash: plaintext-secret
  redirect_uris: ["https://a.example/cb#frag"]
  token_endpoint_auth_method: client_secret_basic
  resources: ["https://other.example"]
- client_id: a
  redirect_uris: ["ftp://x"]
  token_endpoint_auth_method: magic
  resources: ["https://mcp.example/mcp"]
  scopes: [admin]
`)
	env := map[string]string{
		"PUBLIC_ISSUER_URL": "http://localhost:1", "REDIS_URL": "redis://127.0.0.1:1/0", "CLIENTS_FILE": path,
		"SIGNING_KEYS_DIR": dir, "UPSTREAM_ISSUER_URL": "http://localhost:2", "UPSTREAM_CLIENT_ID": "x",
		"MCP_RESOURCE_URL": "https://mcp.example/mcp",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := server.Run(ctx, pconfig.MapEnv(env), &strings.Builder{}, nil)
	if err == nil {
		t.Fatal("Run accepted a broken registry")
	}
	for _, want := range []string{"bcrypt", "fragment", "not served", "defined twice", "scheme", "magic", "admin", "no *.pem"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not mention %q:\n%s", want, err)
		}
	}
}

// TestGrantsSurviveARedisRestartWithAOF: Redis killed without a goodbye and
// restarted from its append-only file loses nothing: an authorization code
// issued before is still redeemable once, and a refresh token still
// refreshes. While it is down, the token endpoint answers 503 with
// Retry-After and readiness stays 200.
func TestGrantsSurviveARedisRestartWithAOF(t *testing.T) {
	f := startFleet(t, nil)
	rdb := f.Redis.Client()
	ctx := context.Background()
	for _, kv := range [][2]string{{"appendfsync", "always"}, {"appendonly", "yes"}} {
		if err := rdb.ConfigSet(ctx, kv[0], kv[1]).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		info, err := rdb.Info(ctx, "persistence").Result()
		if err == nil && strings.Contains(info, "aof_rewrite_in_progress:0") && strings.Contains(info, "aof_enabled:1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("AOF not enabled: %v %s", err, info)
		}
	}
	f.Redis.Args = append(f.Redis.Args, "--appendonly", "yes", "--appendfsync", "always")

	c := f.Clients["local-test"]
	tr := f.fullFlow(c, newAuthRequest(c))
	a := newAuthRequest(c)
	code := f.authorize(a)

	f.Redis.Stop()
	if r := f.refresh(c, tr.RefreshToken); r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Errorf("refresh with Redis killed: %d %s, want 503 with Retry-After", r.Status, r.Error)
	}
	resp, err := http.Get(f.Admin() + "/healthz/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("readiness with Redis killed: %d, want 200", resp.StatusCode)
	}
	f.Redis.Start()

	var ex tokenResponse
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if ex = f.exchange(c, a, code); ex.Status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			break
		}
	}
	if ex.Status != 200 || ex.AccessToken == "" {
		t.Errorf("code issued before the restart: %d %s (%s), want 200", ex.Status, ex.Error, ex.Description)
	}
	if r := f.refresh(c, tr.RefreshToken); r.Status != 200 || r.RefreshToken == "" {
		t.Errorf("refresh token issued before the restart: %d %s (%s), want 200", r.Status, r.Error, r.Description)
	}
}

// TestClientRegistryRedirectURICharacters: the static registry refuses at
// start-up a redirect URI with a character RFC 3986 §2 allows nowhere (a
// trailing space) or an upper-case scheme (RFC 3986 §3.1), naming the
// client and the URI, as it does every other redirect URI problem.
func TestClientRegistryRedirectURICharacters(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/clients.yaml"
	writeFile(t, path, `clients:
- client_id: spaced
  redirect_uris: ["https://a.example/cb "]
  token_endpoint_auth_method: none
  resources: ["https://mcp.example/mcp"]
- client_id: shouted
  redirect_uris: ["HTTPS://b.example/cb"]
  token_endpoint_auth_method: none
  resources: ["https://mcp.example/mcp"]
- client_id: fine
  redirect_uris: ["http://127.0.0.1:8000/cb", "https://c.example/cb?x=1"]
  token_endpoint_auth_method: none
  resources: ["https://mcp.example/mcp"]
`)
	env := map[string]string{
		"PUBLIC_ISSUER_URL": "http://localhost:1", "REDIS_URL": "redis://127.0.0.1:1/0", "CLIENTS_FILE": path,
		"SIGNING_KEYS_DIR": dir, "UPSTREAM_ISSUER_URL": "http://localhost:2", "UPSTREAM_CLIENT_ID": "x",
		"MCP_RESOURCE_URL": "https://mcp.example/mcp",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := server.Run(ctx, pconfig.MapEnv(env), &strings.Builder{}, nil)
	if err == nil {
		t.Fatal("Run accepted the registry")
	}
	for _, want := range []string{
		`client "spaced": redirect URI "https://a.example/cb ": contains a space at its end`,
		`client "shouted": redirect URI "HTTPS://b.example/cb": scheme "HTTPS" must be lowercase (RFC 3986 section 3.1)`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%s", want, err)
		}
	}
	if strings.Contains(err.Error(), `"fine"`) {
		t.Errorf("the error names the valid client:\n%s", err)
	}
}

// TestClientRegistryUnreadableIsNamedOnce: a registry file that is not YAML,
// or not there, stops start-up with one "CLIENTS_FILE: " before the reason
// (the loader and Run each added one: "CLIENTS_FILE: CLIENTS_FILE: error
// converting YAML to JSON …").
func TestClientRegistryUnreadableIsNamedOnce(t *testing.T) {
	dir := t.TempDir()
	bad := dir + "/clients.yaml"
	writeFile(t, bad, "clients:\n- client_id: [unclosed\n")
	for path, want := range map[string]string{bad: "yaml", dir + "/missing.yaml": "no such file"} {
		env := map[string]string{
			"PUBLIC_ISSUER_URL": "http://localhost:1", "REDIS_URL": "redis://127.0.0.1:1/0", "CLIENTS_FILE": path,
			"SIGNING_KEYS_DIR": dir, "UPSTREAM_ISSUER_URL": "http://localhost:2", "UPSTREAM_CLIENT_ID": "x",
			"MCP_RESOURCE_URL": "https://mcp.example/mcp",
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := server.Run(ctx, pconfig.MapEnv(env), &strings.Builder{}, nil)
		cancel()
		if err == nil {
			t.Fatalf("Run accepted the registry file %s", path)
		}
		if !strings.Contains(err.Error(), "CLIENTS_FILE: ") || strings.Contains(err.Error(), "CLIENTS_FILE: CLIENTS_FILE") ||
			!strings.Contains(err.Error(), want) {
			t.Errorf("%s: the error does not name CLIENTS_FILE once before %q:\n%s", path, want, err)
		}
	}
}

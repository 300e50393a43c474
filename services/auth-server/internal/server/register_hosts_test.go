package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/auth-server/internal/server"
	pconfig "github.com/tollgate/tollgate/services/platform/config"
)

// TestRegistrationRefusesHostsThatAreNotHosts: dynamic registration (RFC
// 7591 §3.2.2 invalid_redirect_uri) refuses a redirect URI whose host is
// none of RFC 3986 §3.2.2's — an IPv6 literal, a dotted-decimal IPv4
// address or a DNS name (RFC 1123 §2.1, IDNA for internationalized ones)
// — with a description naming the URI and the host; the shapes clients
// use (loopback with any port, https with IDN or punycode hosts, the
// ChatGPT callbacks) still register.
func TestRegistrationRefusesHostsThatAreNotHosts(t *testing.T) {
	f := startFleet(t, nil)
	for uri, want := range map[string]string{
		"https://a.example;sandbox/cb":         `redirect URI 'https://a.example;sandbox/cb': host 'a.example;sandbox' is not a DNS name or IP address (RFC 3986 section 3.2.2, RFC 1123 section 2.1): disallowed rune U+003B`,
		"https://b.example,script-src-elem/cb": `redirect URI 'https://b.example,script-src-elem/cb': host 'b.example,script-src-elem' is not a DNS name or IP address (RFC 3986 section 3.2.2, RFC 1123 section 2.1): disallowed rune U+002C`,
		"https://c.example'x/cb":               `redirect URI 'https://c.example'x/cb': host 'c.example'x' is not a DNS name or IP address (RFC 3986 section 3.2.2, RFC 1123 section 2.1): disallowed rune U+0027`,
		"https://under_score.example/cb":       `redirect URI 'https://under_score.example/cb': host 'under_score.example' is not a DNS name or IP address (RFC 3986 section 3.2.2, RFC 1123 section 2.1): disallowed rune U+005F`,
		"https://xn--zz.example/cb":            `redirect URI 'https://xn--zz.example/cb': host 'xn--zz.example' is not a DNS name or IP address (RFC 3986 section 3.2.2, RFC 1123 section 2.1): invalid label 'zz'`,
		"http://127.1:8000/cb":                 `redirect URI 'http://127.1:8000/cb': host '127.1' ends in a number but is not a dotted-decimal IPv4 address (RFC 3986 section 3.2.2)`,
		"http://[fe80::1%25eth0]:8000/cb":      `redirect URI 'http://[fe80::1%25eth0]:8000/cb': host 'fe80::1%eth0' is not an IPv6 address without a zone (RFC 3986 section 3.2.2 IP-literal)`,
		"https://app.example:65536/cb":         `redirect URI 'https://app.example:65536/cb': port '65536' is not a TCP port (1-65535)`,
		"https://chatgpt.com@app.example/cb":   `redirect URI 'https://chatgpt.com@app.example/cb': must not have user information before the host (RFC 3986 section 3.2.1): 'chatgpt.com@' goes to 'app.example'`,
		"https://user:pw@app.example/cb":       `redirect URI 'https://user:xxxxx@app.example/cb': must not have user information before the host (RFC 3986 section 3.2.1): 'user@' goes to 'app.example'`,
	} {
		st, got := register(t, f, `{"redirect_uris":["https://ok.example/cb",`+jsonString(uri)+`],"token_endpoint_auth_method":"none"}`)
		if st != http.StatusBadRequest || got["error"] != "invalid_redirect_uri" || got["error_description"] != want {
			t.Errorf("%s: %d %v\nwant 400 invalid_redirect_uri %q", uri, st, got, want)
		}
	}
	for _, uri := range []string{
		"https://chatgpt.com/connector_platform_oauth_redirect",
		"https://chat.openai.com/aip/g-0123456789abcdef0123456789abcdef/oauth/callback",
		"https://bücher.example/oauth/cb",
		"https://xn--bcher-kva.example/oauth/cb",
		"http://127.0.0.1:51234/cb",
		"http://[::1]:51234/cb",
		"http://localhost:3000/cb",
		"https://93.184.216.34/cb",
	} {
		if st, got := register(t, f, `{"redirect_uris":[`+jsonString(uri)+`],"token_endpoint_auth_method":"none"}`); st != http.StatusCreated {
			t.Errorf("%s: %d %v, want 201", uri, st, got)
		}
	}
}

// TestStaticRegistryRefusesHostsThatAreNotHosts: the operator's client
// registry is held to the same host rule: the server does not start, and
// says which client and URI to fix.
func TestStaticRegistryRefusesHostsThatAreNotHosts(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "clients.yaml")
	if err := os.WriteFile(path, []byte(`clients:
- client_id: semicolon
  redirect_uris: ["https://a.example;sandbox/cb"]
  token_endpoint_auth_method: none
  resources: ["https://mcp.example/mcp"]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"PUBLIC_ISSUER_URL": "http://localhost:1", "REDIS_URL": "redis://127.0.0.1:1/0", "CLIENTS_FILE": path,
		"SIGNING_KEYS_DIR": dir, "UPSTREAM_ISSUER_URL": "http://localhost:2", "UPSTREAM_CLIENT_ID": "x",
		"MCP_RESOURCE_URL": "https://mcp.example/mcp",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := server.Run(ctx, pconfig.MapEnv(env), &strings.Builder{}, nil)
	want := `client "semicolon": redirect URI "https://a.example;sandbox/cb": host "a.example;sandbox" is not a DNS name or IP address`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Run: %v\nwant an error containing %q", err, want)
	}
}

func jsonString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// storeRedirectURIs rewrites the stored registration of id with uris, as a
// registration made before a rule refused them.
func storeRedirectURIs(t *testing.T, f *fleet, id string, uris ...string) {
	t.Helper()
	rewriteRegistration(t, f, id, func(md map[string]any) { md["redirect_uris"] = uris })
}

// rewriteRegistration changes the client metadata of id's stored dynamic
// registration (its as:dcr: record in the fleet's Redis) with edit, keeping
// the record's TTL; no such record fails the test.
func rewriteRegistration(t *testing.T, f *fleet, id string, edit func(metadata map[string]any)) {
	t.Helper()
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", f.Redis.Port)})
	defer rdb.Close()
	for _, k := range rdb.Keys(ctx, "*as:dcr:*").Val() {
		var rec map[string]any
		if err := json.Unmarshal([]byte(rdb.Get(ctx, k).Val()), &rec); err != nil {
			t.Fatal(err)
		}
		md, _ := rec["metadata"].(map[string]any)
		if md["client_id"] != id {
			continue
		}
		edit(md)
		b, _ := json.Marshal(rec)
		if err := rdb.Set(ctx, k, b, redis.KeepTTL).Err(); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no registration record for %s", id)
}

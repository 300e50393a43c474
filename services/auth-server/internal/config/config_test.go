package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	pconfig "github.com/tollgate/tollgate/services/platform/config"
)

func base() map[string]string {
	return map[string]string{
		"PUBLIC_ISSUER_URL": "http://localhost:4000", "SIGNING_KEYS_DIR": "/keys", "REDIS_URL": "redis://127.0.0.1:6379/0",
		"MCP_RESOURCE_URL": "http://localhost:4000/mcp", "ACTIONS_AUDIENCE": "http://localhost:4000/actions",
		"UPSTREAM_ISSUER_URL": "http://localhost:4500", "UPSTREAM_CLIENT_ID": "tollgate",
	}
}

func TestLoadDevelopmentDefaults(t *testing.T) {
	c, err := Load(pconfig.MapEnv(base()))
	if err != nil {
		t.Fatal(err)
	}
	if c.AccessTokenTTL != time.Hour || c.GCPercent != 800 || c.SigningConcurrency != 0 || c.SigningQueueWait != 2*time.Second || c.RefreshGrace != 30*time.Second || c.DCREnabled || !c.CIMDEnabled ||
		strings.Join(c.Upstream.Scopes, " ") != "openid profile email" || strings.Join(c.Resources(), " ") != "http://localhost:4000/mcp http://localhost:4000/actions" {
		t.Errorf("defaults: %+v", c)
	}
}

func TestLoadListsEveryProblem(t *testing.T) {
	env := base()
	env["ACCESS_TOKEN_TTL"] = "banana"
	env["REFRESH_GRACE_PERIOD"] = "10m"
	env["UPSTREAM_SCOPES"] = "profile"
	env["UPSTREAM_CLAIM_MAP"] = "nickname=nick,email"
	env["RATE_LIMIT_TOKEN_PER_MINUTE"] = "0"
	env["TOKEN_HMAC_SECRET"] = "short"
	env["ALLOWED_ORIGINS"] = "https://ok.example,https://bad.example/path"
	env["TRUST_FORWARDED_FOR"] = "true"
	env["TRUSTED_PROXIES"] = "10.0.0.0/8,ingress.local"
	env["CLIENT_SECRET_HMAC_KEY"] = "short"
	env["CLIENT_AUTH_FAILURE_LIMIT"] = "0"
	env["CLIENT_SECRET_SLOW_CHECKS"] = "-1"
	env["ACCESS_TOKEN_SIGNING_ALG"] = "HS256"
	env["GC_PERCENT"] = "0"
	env["SIGNING_CONCURRENCY"] = "-1"
	env["SIGNING_QUEUE_WAIT"] = "0s"
	env["ACTIONS_OAUTH_BASE_URL"] = "api.example.com"
	_, err := Load(pconfig.MapEnv(env))
	var ce *pconfig.Error
	if !errors.As(err, &ce) {
		t.Fatalf("Load: %v", err)
	}
	for _, want := range []string{"ACCESS_TOKEN_TTL", "REFRESH_GRACE_PERIOD", "UPSTREAM_SCOPES", "UPSTREAM_CLAIM_MAP: \"nickname=nick\"",
		"UPSTREAM_CLAIM_MAP: \"email\"", "RATE_LIMIT_TOKEN_PER_MINUTE", "TOKEN_HMAC_SECRET", "bad.example",
		"TRUST_FORWARDED_FOR: removed; list the ingress proxies in TRUSTED_PROXIES", `TRUSTED_PROXIES: not a CIDR or IP address: "ingress.local"`,
		"CLIENT_SECRET_HMAC_KEY: must be at least 32 bytes", "CLIENT_AUTH_FAILURE_LIMIT", "CLIENT_SECRET_SLOW_CHECKS",
		`ACCESS_TOKEN_SIGNING_ALG: "HS256"`, "GC_PERCENT: 0 is not a positive percentage", "SIGNING_CONCURRENCY: -1", "SIGNING_QUEUE_WAIT: 0s",
		`ACTIONS_OAUTH_BASE_URL: "api.example.com" is not an absolute http(s) URL`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestClaimMap(t *testing.T) {
	env := base()
	env["UPSTREAM_CLAIM_MAP"] = "preferred_username=upn, email=mail"
	c, err := Load(pconfig.MapEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	if c.Upstream.ClaimMap["preferred_username"] != "upn" || c.Upstream.ClaimMap["email"] != "mail" {
		t.Errorf("claim map %v", c.Upstream.ClaimMap)
	}
}

func TestCIMDAllowedHosts(t *testing.T) {
	env := base()
	env["CIMD_ALLOWED_HOSTS"] = "app.example.com, *.trusted.example"
	c, err := Load(pconfig.MapEnv(env))
	if err != nil || strings.Join(c.CIMDAllowedHosts, " ") != "app.example.com *.trusted.example" {
		t.Fatalf("%v %v", c.CIMDAllowedHosts, err)
	}
	env["CIMD_ALLOWED_HOSTS"] = "https://app.example.com/x,*.,a*.example,user@host"
	_, err = Load(pconfig.MapEnv(env))
	if err == nil {
		t.Fatal("bad hosts accepted")
	}
	for _, bad := range []string{`"https://app.example.com/x"`, `"*."`, `"a*.example"`, `"user@host"`} {
		if !strings.Contains(err.Error(), "CIMD_ALLOWED_HOSTS: "+bad) {
			t.Errorf("error lacks %s:\n%v", bad, err)
		}
	}
}

// A rotated token secret that begins with the current one's 32 bytes is
// the same HMAC key (only the first 32 bytes key it): refused, naming
// neither value. The current secret itself in the list, or secrets that
// differ within their first 32 bytes, are accepted.
func TestRotatedTokenSecretSharingTheKey(t *testing.T) {
	current := "0123456789abcdef0123456789abcdef-current-tail"
	for _, tc := range []struct {
		rotated string
		refused bool
	}{
		{"0123456789abcdef0123456789abcdef-previous-tail", true},
		{"0123456789abcdef0123456789abcdef", true}, // exactly the shared key, shorter than the current secret
		{" 0123456789abcdef0123456789abcdef-previous , Zyxwvutsrqponmlkjihgfedcba98765432", true},
		{current, false},
		{"X123456789abcdef0123456789abcdef-current-tail", false},
		{"Zyxwvutsrqponmlkjihgfedcba98765432," + current, false},
	} {
		env := base()
		env["TOKEN_HMAC_SECRET"] = current
		env["TOKEN_HMAC_SECRETS_ROTATED"] = tc.rotated
		_, err := Load(pconfig.MapEnv(env))
		if !tc.refused {
			if err != nil {
				t.Errorf("rotated %q: %v", tc.rotated, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "TOKEN_HMAC_SECRETS_ROTATED: a secret shares its first 32 bytes with TOKEN_HMAC_SECRET") {
			t.Errorf("rotated %q: want the shared-key refusal, got %v", tc.rotated, err)
			continue
		}
		if strings.Contains(err.Error(), "0123456789abcdef") || strings.Contains(err.Error(), "tail") {
			t.Errorf("the refusal names a secret: %v", err)
		}
	}
}

// TestClientSecretSlowCheckSettings: CLIENT_SECRET_SLOW_CHECKS outside
// its range is refused, naming the setting; the default is 0 (half the
// CPUs).
func TestClientSecretSlowCheckSettings(t *testing.T) {
	c, err := Load(pconfig.MapEnv(base()))
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientSecretSlowChecks != 0 {
		t.Errorf("default: slow checks %d, want 0", c.ClientSecretSlowChecks)
	}
	for _, tc := range []struct {
		name, value, want string
	}{
		{"CLIENT_SECRET_SLOW_CHECKS", "-1", "CLIENT_SECRET_SLOW_CHECKS: -1 is outside 0..256"},
		{"CLIENT_SECRET_SLOW_CHECKS", "257", "CLIENT_SECRET_SLOW_CHECKS: 257 is outside 0..256"},
		{"CLIENT_SECRET_SLOW_CHECKS", "two", "CLIENT_SECRET_SLOW_CHECKS"},
	} {
		env := base()
		env[tc.name] = tc.value
		_, err := Load(pconfig.MapEnv(env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%s: %v, want an error naming %q", tc.name, tc.value, err, tc.want)
		}
	}
	for _, n := range []string{"256", "1"} {
		env := base()
		env["CLIENT_SECRET_SLOW_CHECKS"] = n
		if _, err := Load(pconfig.MapEnv(env)); err != nil {
			t.Errorf("CLIENT_SECRET_SLOW_CHECKS=%s: %v", n, err)
		}
	}
}

// TestSlowCheckNiceRemoved: CLIENT_SECRET_SLOW_CHECK_NICE was removed (a
// lowered thread priority for bcrypt checks, measured to add nothing on a
// quiet machine and to stall requests under load); set to another value
// than its old default 0, the server refuses to start, naming it and
// saying why, rather than run without what the operator asked for. Empty
// is unset; 0 (the process's priority) is what the server does, so a
// deployment that pinned the old default keeps starting.
func TestSlowCheckNiceRemoved(t *testing.T) {
	for _, v := range []string{"10", "1", "low"} {
		env := base()
		env["CLIENT_SECRET_SLOW_CHECK_NICE"] = v
		_, err := Load(pconfig.MapEnv(env))
		var ce *pconfig.Error
		if !errors.As(err, &ce) {
			t.Fatalf("CLIENT_SECRET_SLOW_CHECK_NICE=%s: %v, want a configuration error", v, err)
		}
		for _, want := range []string{"CLIENT_SECRET_SLOW_CHECK_NICE: removed", "stalled requests under load", "CLIENT_SECRET_SLOW_CHECKS"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("CLIENT_SECRET_SLOW_CHECK_NICE=%s: %v, want it to say %q", v, err, want)
			}
		}
	}
	for _, v := range []string{"", "0"} {
		env := base()
		env["CLIENT_SECRET_SLOW_CHECK_NICE"] = v
		if _, err := Load(pconfig.MapEnv(env)); err != nil {
			t.Errorf("CLIENT_SECRET_SLOW_CHECK_NICE=%q: %v", v, err)
		}
	}
}

// TestIssuerWithPathRefused: PUBLIC_ISSUER_URL with a path was accepted,
// and discovery then advertised <issuer>/oauth/jwks and a metadata URL
// that answered 404 (the endpoints are served at the origin's root only).
// It is refused at start, naming the setting; the origin alone, with or
// without a trailing "/", is accepted.
// TestActionsOAuthBaseWithPathRefused: ACTIONS_OAUTH_BASE_URL is the
// origin the Actions document's OAuth URLs are on (<it>/oauth/…, routed at
// the root of the Actions host); a path named endpoints nothing serves.
func TestActionsOAuthBaseWithPathRefused(t *testing.T) {
	env := base()
	env["ACTIONS_OAUTH_BASE_URL"] = "https://api.example.com/tenant1"
	_, err := Load(pconfig.MapEnv(env))
	if want := `ACTIONS_OAUTH_BASE_URL: "https://api.example.com/tenant1" has a path (/tenant1)`; err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "set the origin alone (https://api.example.com)") {
		t.Errorf("error %v\nlacks %q", err, want)
	}
	env["ACTIONS_OAUTH_BASE_URL"] = "https://api.example.com/"
	if c, err := Load(pconfig.MapEnv(env)); err != nil || c.ActionsOAuthBaseURL != "https://api.example.com" {
		t.Errorf("ACTIONS_OAUTH_BASE_URL=https://api.example.com/: %q, %v", c.ActionsOAuthBaseURL, err)
	}
}

func TestIssuerWithPathRefused(t *testing.T) {
	for _, issuer := range []string{"http://localhost:4000/tenant1", "https://auth.example.com/a/b/", "http://localhost:4000/%2F"} {
		env := base()
		env["PUBLIC_ISSUER_URL"] = issuer
		_, err := Load(pconfig.MapEnv(env))
		var ce *pconfig.Error
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "PUBLIC_ISSUER_URL: ") || !strings.Contains(err.Error(), "has a path") ||
			!strings.Contains(err.Error(), "at the root of its origin only") {
			t.Errorf("PUBLIC_ISSUER_URL=%s: %v, want a refusal naming the setting and the path", issuer, err)
		}
	}
	env := base()
	env["PUBLIC_ISSUER_URL"] = "http://localhost:4000/tenant1"
	_, err := Load(pconfig.MapEnv(env))
	if want := `PUBLIC_ISSUER_URL: "http://localhost:4000/tenant1" has a path (/tenant1): the auth-server serves its endpoints (/.well-known/openid-configuration, /oauth/…) at the root of its origin only, so discovery would advertise endpoints that do not exist; set the origin alone (http://localhost:4000) and give the auth-server a host of its own`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v\nlacks %q", err, want)
	}
	for _, issuer := range []string{"http://localhost:4000", "http://localhost:4000/", "https://auth.example.com//"} {
		env := base()
		env["PUBLIC_ISSUER_URL"] = issuer
		if c, err := Load(pconfig.MapEnv(env)); err != nil {
			t.Errorf("PUBLIC_ISSUER_URL=%s: %v", issuer, err)
		} else if strings.HasSuffix(c.Issuer, "/") {
			t.Errorf("PUBLIC_ISSUER_URL=%s: issuer %q keeps a trailing /", issuer, c.Issuer)
		}
	}
}

package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/mcp-gateway/internal/config"
	pconfig "github.com/tollgate/tollgate/services/platform/config"
)

func base() map[string]string {
	return map[string]string{
		"MCP_RESOURCE_URL": "http://localhost:4000/mcp", "PUBLIC_ISSUER_URL": "http://localhost:4000",
		"AUTH_GRPC_ADDR": "127.0.0.1:1", "CORE_GRPC_ADDR": "127.0.0.1:2", "REDIS_URL": "redis://127.0.0.1:6379/0",
	}
}

func TestDefaults(t *testing.T) {
	c, err := config.Load(pconfig.MapEnv(base()))
	if err != nil {
		t.Fatal(err)
	}
	if c.SessionIdleTTL != 30*time.Minute || c.SessionLimitPerSubject != 100 || c.RateLimitPerMinute != 600 || c.CoreTimeout != 5*time.Second ||
		c.StreamHistory != 1000 || c.PublicOrigin() != "http://localhost:4000" ||
		c.ToolNameStyle != config.ToolNamesDotted || c.ScopeChallenge != config.ScopeChallengeAuto {
		t.Errorf("defaults: %+v", c)
	}
	if strings.Join(c.AllowedHosts, ",") != "localhost,127.0.0.1,[::1]" {
		t.Errorf("allowed hosts %v", c.AllowedHosts)
	}
}

func TestOriginsAreNormalized(t *testing.T) {
	env := base()
	env["ALLOWED_ORIGINS"] = "https://ChatGPT.com, https://chat.openai.com/"
	env["HTTP_ADDR"] = "127.0.0.1:4300"
	c, err := config.Load(pconfig.MapEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.AllowedOrigins, " ") != "https://chatgpt.com https://chat.openai.com" {
		t.Errorf("%v", c.AllowedOrigins)
	}
}

// Every problem is reported at once, and a wildcard origin is refused.
func TestEveryProblemAtOnce(t *testing.T) {
	env := map[string]string{
		"ALLOWED_ORIGINS": "*, https://ok.example, ftp://x, https://a.example/path", "SESSION_IDLE_TTL": "10s", "SESSION_LIMIT_PER_SUBJECT": "0",
		"RATE_LIMIT_PER_MINUTE": "0", "CORE_CALL_TIMEOUT": "2m", "STREAM_HISTORY_EVENTS": "1", "SSE_KEEPALIVE_INTERVAL": "soon",
		"MCP_TOOL_NAME_STYLE": "camel", "STREAM_WRITE_TIMEOUT": "10m", "STREAM_LIMIT_PER_SESSION": "0",
		"SCOPE_CHALLENGE": "403",
	}
	_, err := config.Load(pconfig.MapEnv(env))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"MCP_RESOURCE_URL", "PUBLIC_ISSUER_URL", "AUTH_GRPC_ADDR", "CORE_GRPC_ADDR", "REDIS_URL",
		`ALLOWED_ORIGINS: "*" is a wildcard`, `"ftp://x" is not an http(s) origin`, `"https://a.example/path" must be an origin only`,
		"SESSION_IDLE_TTL", "SESSION_LIMIT_PER_SUBJECT", "RATE_LIMIT_PER_MINUTE", "CORE_CALL_TIMEOUT", "STREAM_HISTORY_EVENTS", "SSE_KEEPALIVE_INTERVAL", "STREAM_WRITE_TIMEOUT", "STREAM_LIMIT_PER_SESSION",
		`MCP_TOOL_NAME_STYLE: "camel" is not "dotted" or "underscore"`, `SCOPE_CHALLENGE: "403" is not "auto", "tool-result" or "http"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "ok.example") {
		t.Errorf("a good origin reported: %v", err)
	}
}

func TestProductionFailsClosed(t *testing.T) {
	env := base()
	env["TOLLGATE_ENV"] = "production"
	_, err := config.Load(pconfig.MapEnv(env))
	if err == nil || !strings.Contains(err.Error(), "MCP_RESOURCE_URL") || !strings.Contains(err.Error(), "https") {
		t.Errorf("production with http URLs: %v", err)
	}
}

func TestToolNameStyle(t *testing.T) {
	env := base()
	env["MCP_TOOL_NAME_STYLE"] = "underscore"
	c, err := config.Load(pconfig.MapEnv(env))
	if err != nil || c.ToolNameStyle != config.ToolNamesUnderscore {
		t.Errorf("underscore: %v %q", err, c.ToolNameStyle)
	}
}

// The conformance fixtures are for tests: production refuses them.
func TestConformanceFixtures(t *testing.T) {
	env := base()
	env["MCP_CONFORMANCE_FIXTURES"] = "true"
	c, err := config.Load(pconfig.MapEnv(env))
	if err != nil || !c.ConformanceFixtures {
		t.Errorf("development: %v %v", err, c.ConformanceFixtures)
	}
	env["TOLLGATE_ENV"] = "production"
	env["MCP_RESOURCE_URL"], env["PUBLIC_ISSUER_URL"] = "https://mcp.example.com/mcp", "https://mcp.example.com"
	_, err = config.Load(pconfig.MapEnv(env))
	if err == nil || !strings.Contains(err.Error(), "MCP_CONFORMANCE_FIXTURES") {
		t.Errorf("production with fixtures: %v", err)
	}
}

// MCP_UI_DOMAIN is empty by default; a host name or an http(s) origin is
// taken (lower-cased, an internationalized name as its A-labels: the
// platform's config.HostName decides), anything else refused with the
// reason.
func TestUIDomain(t *testing.T) {
	c, err := config.Load(pconfig.MapEnv(base()))
	if err != nil || c.UIDomain != "" {
		t.Errorf("default: %v %q, want empty", err, c.UIDomain)
	}
	for in, want := range map[string]string{
		"0123456789ABCDEF0123456789abcdef.claudemcpcontent.com": "0123456789abcdef0123456789abcdef.claudemcpcontent.com",
		" https://Cards.Example.com/ ":                          "https://cards.example.com",
		"http://localhost:4000":                                 "http://localhost:4000",
		"cards.bücher.example":                                  "cards.xn--bcher-kva.example",
		"https://Cards.Bücher.example:8443":                     "https://cards.xn--bcher-kva.example:8443",
	} {
		env := base()
		env["MCP_UI_DOMAIN"] = in
		c, err := config.Load(pconfig.MapEnv(env))
		if err != nil || c.UIDomain != want {
			t.Errorf("%q: %v %q, want %q", in, err, c.UIDomain, want)
		}
	}
	for in, why := range map[string]string{
		"*.oaiusercontent.com":           "is not a host name",
		"cards example.com":              "is not a host name",
		"-bad.example.com":               "is not a host name",
		"ftp://cards.example.com":        "is not an http(s) origin",
		"https://cards.example.com/app":  "must be an origin only",
		"https://user@cards.example.com": "must be an origin only",
		"https://*.example.com":          "has no valid host name",
		"cards.example.com.":             "is not a host name (it ends with a dot",
		// full stops IDNA maps to "." (UTS #46): the same trailing dot
		"cards.example.com\u3002":              "is not a host name (it ends with a dot",
		"cards.example.com\uff0e":              "is not a host name (it ends with a dot",
		"cards.example.com\uff61":              "is not a host name (it ends with a dot",
		"https://cards.example.com\u3002:8443": "has no valid host name (it ends with a dot",
		"ab--cd.example.com":                   `is not a host name (invalid label "ab--cd")`,
		"https://[::1]:4000":                   "has no valid host name",
	} {
		env := base()
		env["MCP_UI_DOMAIN"] = in
		_, err := config.Load(pconfig.MapEnv(env))
		if err == nil || !strings.Contains(err.Error(), "MCP_UI_DOMAIN: ") || !strings.Contains(err.Error(), why) {
			t.Errorf("%q: %v, want MCP_UI_DOMAIN … %s", in, err, why)
		}
	}
}

// SESSION_EVICT_IDLE_AFTER: 2m by default, 0 turns eviction off, and a
// negative value or one not shorter than SESSION_IDLE_TTL is refused by
// name (a grace as long as the idle TTL would never evict: the session
// expires first).
func TestSessionEvictIdleAfter(t *testing.T) {
	c, err := config.Load(pconfig.MapEnv(base()))
	if err != nil || c.SessionEvictIdleAfter != 2*time.Minute {
		t.Fatalf("default: %v %v", c.SessionEvictIdleAfter, err)
	}
	for v, want := range map[string]time.Duration{"0": 0, "0s": 0, "90s": 90 * time.Second, "29m59s": 30*time.Minute - time.Second} {
		env := base()
		env["SESSION_EVICT_IDLE_AFTER"] = v
		if c, err := config.Load(pconfig.MapEnv(env)); err != nil || c.SessionEvictIdleAfter != want {
			t.Errorf("%s: %v %v", v, c.SessionEvictIdleAfter, err)
		}
	}
	for _, v := range []string{"-1s", "30m", "1h", "soon"} {
		env := base()
		env["SESSION_EVICT_IDLE_AFTER"] = v
		if _, err := config.Load(pconfig.MapEnv(env)); err == nil || !strings.Contains(err.Error(), "SESSION_EVICT_IDLE_AFTER") {
			t.Errorf("%s accepted: %v", v, err)
		}
	}
}

// A call in flight moves nothing in the (subject, client) set that
// eviction reads (only an admitted request does): a grace below
// CORE_CALL_TIMEOUT would let a session whose tools/call is still running
// be ended. Such a pair of settings is refused at start, by name; a grace
// of at least the call timeout, or 0, is accepted.
func TestSessionEvictIdleAfterCoversACallInFlight(t *testing.T) {
	for _, c := range []struct {
		evict, call string
		ok          bool
	}{
		{"10s", "1m", false}, {"4s", "", false}, {"59s", "1m", false},
		{"1m", "1m", true}, {"5s", "", true}, {"0", "1m", true}, {"2m", "1m", true},
	} {
		env := base()
		env["SESSION_EVICT_IDLE_AFTER"] = c.evict
		if c.call != "" {
			env["CORE_CALL_TIMEOUT"] = c.call
		}
		_, err := config.Load(pconfig.MapEnv(env))
		switch {
		case c.ok && err != nil:
			t.Errorf("SESSION_EVICT_IDLE_AFTER %s with CORE_CALL_TIMEOUT %q refused: %v", c.evict, c.call, err)
		case !c.ok && (err == nil || !strings.Contains(err.Error(), "SESSION_EVICT_IDLE_AFTER") || !strings.Contains(err.Error(), "CORE_CALL_TIMEOUT")):
			t.Errorf("SESSION_EVICT_IDLE_AFTER %s with CORE_CALL_TIMEOUT %q accepted (%v): a call in flight for longer than the grace leaves its session evictable", c.evict, c.call, err)
		}
	}
}

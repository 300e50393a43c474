// Package config is the mcp-gateway's configuration. The variable names are
// the contract with the Helm chart; docs/reference/mcp.md lists every one.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/services/platform/clientip"
	"github.com/tollgate/tollgate/services/platform/config"
)

// Config is everything the mcp-gateway reads at start-up.
type Config struct {
	config.Common
	HTTPAddr string // public MCP endpoints (HTTP_ADDR)
	// Resource is the canonical MCP resource URL, the aud of every token (MCP_RESOURCE_URL).
	Resource string
	// Issuer is the authorization server named in protected resource metadata (PUBLIC_ISSUER_URL).
	Issuer       string
	AuthGRPCAddr string // AUTH_GRPC_ADDR
	CoreGRPCAddr string // CORE_GRPC_ADDR
	Redis        config.Redis
	// Revocation is how revoked grants are followed (REVOCATION_RECONCILE_INTERVAL).
	Revocation config.Revocation
	// Backends are the gRPC services whose capabilities are exposed
	// (CAPABILITY_BACKENDS, default capability-core=CORE_GRPC_ADDR; their
	// TLS settings and CAPABILITY_REFRESH_INTERVAL).
	Backends config.Backends

	// AllowedOrigins are the browser origins allowed to call the MCP
	// endpoints (ALLOWED_ORIGINS, comma-separated). A request with any other
	// Origin gets 403; requests without Origin are allowed.
	AllowedOrigins []string
	// AllowedHosts are the Host header values accepted on a request that
	// arrived on a loopback address (ALLOWED_HOSTS; default: localhost, 127.0.0.1, [::1]
	// and the host of MCP_RESOURCE_URL), against DNS rebinding.
	AllowedHosts []string
	// TrustedProxies are the proxies whose X-Forwarded-For entries name the
	// client address (TRUSTED_PROXIES, CIDRs or addresses; the
	// platform/clientip rule, shared by the fleet). Empty: the TCP peer is
	// the client. The gateway keys nothing on the address: it names it in
	// the "access token refused" line (client_address).
	TrustedProxies []string
	// SessionIdleTTL is how long an idle session lives in Redis (SESSION_IDLE_TTL).
	SessionIdleTTL time.Duration
	// SessionLimitPerSubject caps the live sessions one token subject holds
	// through one OAuth client (the verified sub and client_id) across all
	// replicas (SESSION_LIMIT_PER_SUBJECT): an initialize (or GET /sse)
	// beyond it ends the pair's least recently used session if idle for
	// SessionEvictIdleAfter, else is refused with 429 until one of that
	// pair's sessions ends, expires or becomes evictable; the subject's
	// other clients are not affected.
	SessionLimitPerSubject int
	// SessionEvictIdleAfter lets a new session of a (subject, client) pair
	// at SessionLimitPerSubject end that pair's least recently used session
	// when it has been idle for at least this long (SESSION_EVICT_IDLE_AFTER;
	// 0: never, the new one is refused with 429). Not negative, shorter than
	// SessionIdleTTL.
	SessionEvictIdleAfter time.Duration
	// SessionRequired refuses a Streamable HTTP POST without Mcp-Session-Id
	// (other than initialize) with 400, as a server that requires sessions
	// (MCP 2025-06-18 and 2025-11-25, Transports, "Session Management")
	// (SESSION_REQUIRED). False, the default, serves it without a session:
	// some connectors never send the id back (ChatGPT's while it creates a
	// connector, Claude's custom connectors).
	SessionRequired bool
	// RateLimitPerMinute is the number of requests one subject may make per
	// minute across all replicas (RATE_LIMIT_PER_MINUTE).
	RateLimitPerMinute int
	// CoreTimeout bounds every capability-core call a tool makes (CORE_CALL_TIMEOUT).
	CoreTimeout time.Duration
	// KeepAlive is the interval of SSE keep-alive pings (SSE_KEEPALIVE_INTERVAL).
	KeepAlive time.Duration
	// StreamHistory bounds the events kept per stream for Last-Event-ID
	// resumption (STREAM_HISTORY_EVENTS).
	StreamHistory int
	// StreamLimitPerSession caps the GET /mcp streams one session may hold
	// open on one replica at once (STREAM_LIMIT_PER_SESSION, at least 1):
	// a GET beyond it is refused with 409 until one of them closes.
	StreamLimitPerSession int
	// StreamWriteTimeout bounds each write of a server-to-client stream
	// (GET /mcp and GET /sse; STREAM_WRITE_TIMEOUT, 1s to 5m): a client
	// that stopped reading has its stream closed once a write has waited
	// this long, instead of holding the stream's goroutine, connection and
	// session. Every other answer (POST /mcp, /messages…) has the same
	// deadline on each write (app.HTTP.WriteTimeout).
	StreamWriteTimeout time.Duration
	// ToolNameStyle is how tool names are spelled on the wire
	// (MCP_TOOL_NAME_STYLE): ToolNamesDotted, the registry's names
	// ("health.check"), or ToolNamesUnderscore ("health_check"), for
	// clients that accept only ^[a-zA-Z0-9_-]{1,64}$.
	ToolNameStyle string
	// ScopeChallenge is how a request refused for a tool's scopes is
	// answered (SCOPE_CHALLENGE): ScopeChallengeHTTP, HTTP 403 with the
	// insufficient_scope challenge (MCP 2025-11-25 authorization, "Scope
	// Challenge Handling"); ScopeChallengeToolResult, HTTP 200 with a tool
	// error result carrying the challenge in _meta["mcp/www_authenticate"]
	// (the OpenAI Apps SDK's form, which ChatGPT turns into its linking UI);
	// or ScopeChallengeAuto, the 403 on /mcp for a client that negotiated
	// MCP 2025-11-25 or later and is not ChatGPT, the tool result for
	// ChatGPT, older sessions and legacy /messages. Access is refused
	// either way.
	ScopeChallenge string
	// UIDomain is the MCP Apps sandbox domain of every widget resource
	// (MCP_UI_DOMAIN; _meta.ui.domain): empty by default, so the field is
	// left out and each host sandboxes the card on an origin of its own.
	// The MCP Apps specification (2026-01-26, UIResourceMeta.domain) leaves
	// the value's format to each host, and a host refuses to draw a card
	// whose value fails its check (Claude wants
	// "<sha256 of the connector URL, 32 hex>.claudemcpcontent.com"), so it
	// is set only for one host that needs a stable origin. A host name or
	// an http(s) origin; ChatGPT's openai/widgetDomain is not affected.
	UIDomain string
	// ConformanceFixtures adds the MCP conformance suite's fixture tools,
	// resources and prompts (MCP_CONFORMANCE_FIXTURES; refused in
	// production). For `make conformance` only.
	ConformanceFixtures bool
}

// Tool name styles (MCP_TOOL_NAME_STYLE).
const (
	ToolNamesDotted     = "dotted"
	ToolNamesUnderscore = "underscore"
)

// Scope challenge forms (SCOPE_CHALLENGE).
const (
	ScopeChallengeAuto       = "auto"
	ScopeChallengeToolResult = "tool-result"
	ScopeChallengeHTTP       = "http"
)

// Load reads the configuration and returns it with every problem found.
func Load(getenv func(string) string) (Config, error) {
	s := config.NewSource(getenv)
	c := Config{Common: config.LoadCommon(s, "mcp-gateway")}
	c.HTTPAddr = s.String("HTTP_ADDR", ":8080")
	c.Resource = s.String("MCP_RESOURCE_URL", "")
	c.Issuer = s.String("PUBLIC_ISSUER_URL", "")
	c.AuthGRPCAddr = s.String("AUTH_GRPC_ADDR", "")
	c.CoreGRPCAddr = s.String("CORE_GRPC_ADDR", "")
	c.Redis = config.LoadRedis(s, c.Production())
	c.Revocation = config.LoadRevocation(s)
	c.Backends = config.LoadBackends(s, c.CoreGRPCAddr, false)
	c.AllowedOrigins = s.List("ALLOWED_ORIGINS", nil)
	c.AllowedHosts = s.List("ALLOWED_HOSTS", nil)
	c.TrustedProxies = s.List(clientip.Setting, nil)
	c.SessionIdleTTL = s.Duration("SESSION_IDLE_TTL", 30*time.Minute)
	c.SessionLimitPerSubject = s.Int("SESSION_LIMIT_PER_SUBJECT", 100)
	c.SessionEvictIdleAfter = s.Duration("SESSION_EVICT_IDLE_AFTER", 2*time.Minute)
	c.SessionRequired = s.Bool("SESSION_REQUIRED", false)
	c.RateLimitPerMinute = s.Int("RATE_LIMIT_PER_MINUTE", 600)
	c.CoreTimeout = s.Duration("CORE_CALL_TIMEOUT", 5*time.Second)
	c.KeepAlive = s.Duration("SSE_KEEPALIVE_INTERVAL", 25*time.Second)
	c.StreamHistory = s.Int("STREAM_HISTORY_EVENTS", 1000)
	c.StreamLimitPerSession = s.Int("STREAM_LIMIT_PER_SESSION", 4)
	c.StreamWriteTimeout = s.Duration("STREAM_WRITE_TIMEOUT", 30*time.Second)
	c.ToolNameStyle = s.String("MCP_TOOL_NAME_STYLE", ToolNamesDotted)
	c.ScopeChallenge = s.String("SCOPE_CHALLENGE", ScopeChallengeAuto)
	c.ConformanceFixtures = s.Bool("MCP_CONFORMANCE_FIXTURES", false)
	c.UIDomain = s.String("MCP_UI_DOMAIN", "")
	p := s.Problems()
	c.Validate(&p)
	return c, p.Err()
}

// Validate adds every problem of c to p.
func (c *Config) Validate(p *config.Problems) {
	c.Common.Validate(p)
	c.Resource = config.PublicURL(p, "MCP_RESOURCE_URL", c.Resource, c.Production())
	c.Issuer = config.PublicURL(p, "PUBLIC_ISSUER_URL", c.Issuer, c.Production())
	if c.AuthGRPCAddr == "" {
		p.Addf("AUTH_GRPC_ADDR: required (the auth-server's gRPC address, for signing keys)")
	}
	if c.CoreGRPCAddr == "" {
		p.Addf("CORE_GRPC_ADDR: required (capability-core's gRPC address)")
	}
	c.Redis.Validate(p, c.Production())
	c.Revocation.Validate(p)
	c.AllowedOrigins = config.Origins(p, "ALLOWED_ORIGINS", c.AllowedOrigins, c.Production())
	if len(c.AllowedHosts) == 0 {
		c.AllowedHosts = []string{"localhost", "127.0.0.1", "[::1]"}
		if u, err := url.Parse(c.Resource); err == nil && u.Hostname() != "" && !slices.Contains(c.AllowedHosts, strings.ToLower(u.Hostname())) {
			c.AllowedHosts = append(c.AllowedHosts, strings.ToLower(u.Hostname()))
		}
	}
	if _, err := clientip.New(c.TrustedProxies); err != nil {
		p.Addf("%s: %v", clientip.Setting, err)
	}
	if c.SessionIdleTTL < time.Minute {
		p.Addf("SESSION_IDLE_TTL: %s is shorter than 1m", c.SessionIdleTTL)
	}
	if c.SessionLimitPerSubject < 1 {
		p.Addf("SESSION_LIMIT_PER_SUBJECT: must be at least 1")
	}
	if c.SessionEvictIdleAfter < 0 || c.SessionEvictIdleAfter >= c.SessionIdleTTL {
		p.Addf("SESSION_EVICT_IDLE_AFTER: %s must be 0 (never evict) or positive and shorter than SESSION_IDLE_TTL (%s)", c.SessionEvictIdleAfter, c.SessionIdleTTL)
	} else if c.SessionEvictIdleAfter > 0 && c.SessionEvictIdleAfter < c.CoreTimeout {
		// A call in flight moves nothing in the pair's set (only a request
		// admitted does): a session whose tools/call started more than the
		// grace ago, its answer still to come, would be evictable.
		p.Addf("SESSION_EVICT_IDLE_AFTER: %s is shorter than CORE_CALL_TIMEOUT (%s): a session with a tool call in flight could be ended; use at least %s, or 0 (never evict)", c.SessionEvictIdleAfter, c.CoreTimeout, c.CoreTimeout)
	}
	if c.RateLimitPerMinute < 1 {
		p.Addf("RATE_LIMIT_PER_MINUTE: must be at least 1")
	}
	if c.CoreTimeout <= 0 || c.CoreTimeout > time.Minute {
		p.Addf("CORE_CALL_TIMEOUT: must be between 1ms and 1m")
	}
	if c.KeepAlive <= 0 {
		p.Addf("SSE_KEEPALIVE_INTERVAL: must be positive")
	}
	if c.StreamHistory < 10 {
		p.Addf("STREAM_HISTORY_EVENTS: must be at least 10")
	}
	if c.StreamLimitPerSession < 1 {
		p.Addf("STREAM_LIMIT_PER_SESSION: must be at least 1")
	}
	if c.StreamWriteTimeout < time.Second || c.StreamWriteTimeout > 5*time.Minute {
		p.Addf("STREAM_WRITE_TIMEOUT: must be between 1s and 5m")
	}
	if c.ConformanceFixtures && c.Production() {
		p.Addf("MCP_CONFORMANCE_FIXTURES: the conformance fixtures (test tools, resources and prompts) are refused in production")
	}
	if c.ToolNameStyle != ToolNamesDotted && c.ToolNameStyle != ToolNamesUnderscore {
		p.Addf("MCP_TOOL_NAME_STYLE: %q is not %q or %q", c.ToolNameStyle, ToolNamesDotted, ToolNamesUnderscore)
	}
	if c.UIDomain != "" {
		d, err := uiDomain(c.UIDomain)
		if err != nil {
			p.Addf("MCP_UI_DOMAIN: %q %v (a host's sandbox domain such as <hash>.claudemcpcontent.com, or an http(s) origin; leave it empty unless a host's documentation asks for one)", c.UIDomain, err)
		}
		c.UIDomain = d
	}
	switch c.ScopeChallenge {
	case ScopeChallengeAuto, ScopeChallengeToolResult, ScopeChallengeHTTP:
	default:
		p.Addf("SCOPE_CHALLENGE: %q is not %q, %q or %q", c.ScopeChallenge, ScopeChallengeAuto, ScopeChallengeToolResult, ScopeChallengeHTTP)
	}
}

// uiDomain checks MCP_UI_DOMAIN: a host name or a bare http(s) origin
// (scheme://host[:port]), returned lower-cased with the host in its ASCII
// form (uiHost).
func uiDomain(v string) (string, error) {
	v = strings.ToLower(strings.TrimSpace(v))
	if len(v) > 253 {
		return v, errors.New("is longer than 253 characters")
	}
	if !strings.Contains(v, "://") {
		h, err := uiHost(v)
		if err != nil {
			return v, fmt.Errorf("is not a host name (%v)", err)
		}
		return h, nil
	}
	u, err := url.Parse(v)
	switch {
	case err != nil:
		return v, errors.New("is not a URL")
	case u.Scheme != "https" && u.Scheme != "http":
		return v, errors.New("is not an http(s) origin")
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return v, errors.New("must be an origin only (no user, path, query or fragment)")
	}
	h, err := uiHost(u.Hostname())
	if err != nil {
		return v, fmt.Errorf("has no valid host name (%v)", err)
	}
	if p := u.Port(); p != "" {
		h += ":" + p
	}
	return u.Scheme + "://" + h, nil
}

// uiHost checks the host of MCP_UI_DOMAIN with the platform's rule for a
// DNS host name (config.HostName: RFC 1123 §2.1, IDNA per RFC 5891), and
// returns its ASCII form. A trailing dot is refused: to a browser
// x.example. is another origin than x.example, which hosts name. It is
// looked for in the ASCII form, after IDNA's mapping (UTS #46), which
// turns the ideographic and fullwidth full stops (U+3002, U+FF0E, and
// U+FF61) into "." — checked before, "x.example。" passed as "x.example.".
func uiHost(h string) (string, error) {
	a, err := config.HostName(h)
	if err != nil {
		return "", err
	}
	if strings.HasSuffix(a, ".") {
		return "", errors.New("it ends with a dot (or a full stop IDNA maps to one)")
	}
	return a, nil
}

// PublicOrigin is the scheme://host[:port] of the MCP resource URL: where
// widget assets and protected resource metadata are published.
func (c Config) PublicOrigin() string {
	u, err := url.Parse(c.Resource)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

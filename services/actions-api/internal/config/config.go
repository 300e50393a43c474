// Package config is the actions-api's configuration. The environment
// variable names are the contract with the Helm chart and `make dev`; they
// are listed, with their defaults, in docs/reference/actions.md.
package config

import (
	"net/url"
	"strings"
	"time"

	"github.com/tollgate/tollgate/services/platform/clientip"
	"github.com/tollgate/tollgate/services/platform/config"
)

// DefaultPrivacyPolicy is served at /privacy when PRIVACY_POLICY is unset.
const DefaultPrivacyPolicy = `Privacy policy

This service connects a GPT to your account through OAuth 2.1 account
linking. When you link your account, it receives an access token that lets
it read the identity information you consented to share: your subject
identifier, name, username and email address, and the scopes you granted.

It uses that information only to answer the requests the GPT makes on your
behalf. It does not sell it, does not use it for advertising and does not
share it with third parties other than the identity provider you signed in
with.

Access tokens are short-lived and verified on every request. Rate-limit
counters are stored under a one-way hash of your subject identifier and
expire within minutes. Request logs record the time, path and outcome of a
request, never tokens or profile data.

You can unlink your account in the GPT's settings at any time; tokens already
issued then stop being refreshed and expire on their own.

The operator of this service can be contacted for any question about this
policy or to ask for the deletion of data about you.
`

// Config is everything the actions-api reads at start-up.
type Config struct {
	config.Common
	HTTPAddr string // public REST API (HTTP_ADDR)
	// PublicURL is the Actions origin published in the OpenAPI servers
	// list (ACTIONS_PUBLIC_URL): scheme://host[:port], no path (Origin).
	PublicURL string
	// Audience is the aud every token must carry (ACTIONS_AUDIENCE).
	Audience string
	// Issuer is the OAuth issuer whose authorize/token URLs the OpenAPI names (PUBLIC_ISSUER_URL).
	Issuer string
	// OAuthBaseURL is the origin whose /oauth/authorize and /oauth/token the
	// OpenAPI document names (ACTIONS_OAUTH_BASE_URL, default the issuer).
	// Set it to the Actions origin when the actions ingress serves /oauth
	// and the issuer is on another domain.
	OAuthBaseURL string
	AuthGRPCAddr string // AUTH_GRPC_ADDR
	CoreGRPCAddr string // CORE_GRPC_ADDR
	Redis        config.Redis
	// Revocation is how revoked grants are followed (REVOCATION_RECONCILE_INTERVAL).
	Revocation config.Revocation
	// Backends are the gRPC services whose capabilities are exposed
	// (CAPABILITY_BACKENDS, default capability-core=CORE_GRPC_ADDR; their
	// TLS settings and CAPABILITY_REFRESH_INTERVAL).
	Backends config.Backends

	// AllowedOrigins are the browser origins CORS admits (ALLOWED_ORIGINS,
	// comma-separated). Empty means no cross-origin access. "*" is refused.
	AllowedOrigins []string
	// PrivacyPolicy is the text served at /privacy (PRIVACY_POLICY or
	// PRIVACY_POLICY_FILE; DefaultPrivacyPolicy when unset).
	PrivacyPolicy string
	// RateLimitPerMinute is how many calls one token subject may make a
	// minute, in a burst or spread out (RATE_LIMIT_PER_MINUTE).
	RateLimitPerMinute int
	// PublicRateLimitPerMinute is how many calls of public operations one
	// client address may make a minute (PUBLIC_RATE_LIMIT_PER_MINUTE).
	PublicRateLimitPerMinute int
	// TrustedProxies are the proxies whose X-Forwarded-For entries name the
	// client address (TRUSTED_PROXIES, CIDRs; the platform/clientip rule,
	// shared by the fleet). Empty: the TCP peer is the client.
	TrustedProxies []string
	// CoreTimeout bounds each call to capability-core (CORE_CALL_TIMEOUT).
	CoreTimeout time.Duration
	// MaxBodyBytes bounds request bodies of POST operations (MAX_BODY_BYTES).
	MaxBodyBytes int
}

// Load reads the configuration and returns it with every problem found.
func Load(getenv func(string) string) (Config, error) {
	s := config.NewSource(getenv)
	c := Config{Common: config.LoadCommon(s, "actions-api")}
	c.HTTPAddr = s.String("HTTP_ADDR", ":8080")
	c.PublicURL = s.String("ACTIONS_PUBLIC_URL", "")
	c.Audience = s.String("ACTIONS_AUDIENCE", "")
	c.Issuer = s.String("PUBLIC_ISSUER_URL", "")
	c.OAuthBaseURL = s.String("ACTIONS_OAUTH_BASE_URL", "")
	c.AuthGRPCAddr = s.String("AUTH_GRPC_ADDR", "")
	c.CoreGRPCAddr = s.String("CORE_GRPC_ADDR", "")
	c.Redis = config.LoadRedis(s, c.Production())
	c.Revocation = config.LoadRevocation(s)
	c.Backends = config.LoadBackends(s, c.CoreGRPCAddr, false)
	c.AllowedOrigins = s.List("ALLOWED_ORIGINS", nil)
	c.PrivacyPolicy = s.Secret("PRIVACY_POLICY")
	if strings.TrimSpace(c.PrivacyPolicy) == "" {
		c.PrivacyPolicy = DefaultPrivacyPolicy
	}
	c.RateLimitPerMinute = s.Int("RATE_LIMIT_PER_MINUTE", 60)
	c.PublicRateLimitPerMinute = s.Int("PUBLIC_RATE_LIMIT_PER_MINUTE", 120)
	c.TrustedProxies = s.List(clientip.Setting, nil)
	c.CoreTimeout = s.Duration("CORE_CALL_TIMEOUT", 5*time.Second)
	c.MaxBodyBytes = s.Int("MAX_BODY_BYTES", 64<<10)
	p := s.Problems()
	c.Validate(&p)
	return c, p.Err()
}

// Validate adds every problem of c to p.
func (c *Config) Validate(p *config.Problems) {
	c.Common.Validate(p)
	if c.HTTPAddr == "" {
		p.Addf("HTTP_ADDR: must not be empty")
	}
	c.PublicURL = Origin(p, "ACTIONS_PUBLIC_URL", c.PublicURL, c.Production())
	c.Audience = config.PublicURL(p, "ACTIONS_AUDIENCE", c.Audience, c.Production())
	c.Issuer = config.PublicURL(p, "PUBLIC_ISSUER_URL", c.Issuer, c.Production())
	if c.OAuthBaseURL == "" {
		c.OAuthBaseURL = c.Issuer
	} else {
		// An origin: the document names <base>/oauth/authorize and
		// <base>/oauth/token, which the Ingress routes to the auth-server
		// at the root of the host only.
		c.OAuthBaseURL = OAuthOrigin(p, "ACTIONS_OAUTH_BASE_URL", c.OAuthBaseURL, c.Production())
	}
	if c.AuthGRPCAddr == "" {
		p.Addf("AUTH_GRPC_ADDR: required (the auth-server's gRPC address, for signing keys)")
	}
	if c.CoreGRPCAddr == "" {
		p.Addf("CORE_GRPC_ADDR: required (capability-core's gRPC address)")
	}
	c.Redis.Validate(p, c.Production())
	c.Revocation.Validate(p)
	c.AllowedOrigins = config.Origins(p, "ALLOWED_ORIGINS", c.AllowedOrigins, c.Production())
	if c.RateLimitPerMinute < 1 {
		p.Addf("RATE_LIMIT_PER_MINUTE: must be at least 1")
	}
	if c.PublicRateLimitPerMinute < 1 {
		p.Addf("PUBLIC_RATE_LIMIT_PER_MINUTE: must be at least 1")
	}
	if _, err := clientip.New(c.TrustedProxies); err != nil {
		p.Addf("%s: %v", clientip.Setting, err)
	}
	if c.CoreTimeout <= 0 || c.CoreTimeout > time.Minute {
		p.Addf("CORE_CALL_TIMEOUT: must be between 1ms and 1m")
	}
	if c.MaxBodyBytes < 1024 || c.MaxBodyBytes > 10<<20 {
		p.Addf("MAX_BODY_BYTES: must be between 1024 and 10485760")
	}
}

// Origin checks the Actions origin (ACTIONS_PUBLIC_URL, the export's
// -base-url) as config.PublicURL does, and that it has no path and no
// credentials: the actions-api serves its operations (/actions/…, /health),
// its document (/actions/openapi.json), /privacy and its protected
// resource metadata (/.well-known/oauth-protected-resource/…, RFC 9728
// section 3.1) at the root of its host, and the Ingress routes /oauth
// there to the auth-server. A path in the servers URL would have a GPT
// call <path>/actions/… where nothing serves it (docs/reference/actions.md,
// "Public URL"). It returns the origin without a trailing slash.
func Origin(p *config.Problems, key, raw string, production bool) string {
	return origin(p, key, raw, production, "the Actions API serves its paths at the root of its host; give it a host of its own "+
		"(docs/reference/actions.md, \"Public URL\")")
}

// OAuthOrigin checks the origin GPTs are sent to for OAuth
// (ACTIONS_OAUTH_BASE_URL, the export's -oauth-base-url) as Origin does:
// the Ingress routes /oauth/… to the auth-server at the root of that host
// only, and the auth-server sends that host's authorization requests on by
// its host alone.
func OAuthOrigin(p *config.Problems, key, raw string, production bool) string {
	return origin(p, key, raw, production, "the auth-server's /oauth/authorize and /oauth/token are routed at the root of the host "+
		"(docs/reference/actions.md, ACTIONS_OAUTH_BASE_URL)")
}

func origin(p *config.Problems, key, raw string, production bool, why string) string {
	out := config.PublicURL(p, key, raw, production)
	u, err := url.Parse(out)
	if err != nil || u.Host == "" {
		return out // config.PublicURL said why
	}
	if u.Path != "" || u.RawPath != "" || u.User != nil || (strings.ContainsAny(out, "?#") && u.RawQuery == "" && u.Fragment == "") {
		p.Addf("%s: %q must be an origin (scheme://host[:port]) without a path or credentials: %s", key, raw, why)
	}
	return out
}

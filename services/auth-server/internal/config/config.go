// Package config is the auth-server's configuration. The environment
// variable names are the contract with the Helm chart; every one is listed
// in docs/reference/oauth.md.
package config

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	oidccrypto "github.com/zitadel/oidc/v3/pkg/crypto"

	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
	"github.com/tollgate/tollgate/services/platform/clientip"
	"github.com/tollgate/tollgate/services/platform/config"
)

// Config is everything the auth-server reads at start-up.
type Config struct {
	config.Common
	HTTPAddr string // public OAuth/OIDC endpoints (HTTP_ADDR)
	GRPCAddr string // fleet API: key set (GRPC_ADDR)
	// Issuer is the public issuer identifier (PUBLIC_ISSUER_URL).
	Issuer string
	// ActionsOAuthBaseURL is the origin whose /oauth/authorize the Actions
	// OpenAPI document names (ACTIONS_OAUTH_BASE_URL, the setting the
	// actions-api publishes; default none: the issuer). An authorization
	// request asked on its host, when that is not the issuer's, is sent on
	// to the issuer (oauth.Server.onIssuerHost).
	ActionsOAuthBaseURL string
	// SigningKeysDir holds <kid>.pem RSA and EC P-256 keys
	// (SIGNING_KEYS_DIR); SigningKeyActive names the RSA key that signs
	// (SIGNING_KEY_ACTIVE), SigningKeyActiveES256 the EC key
	// (SIGNING_KEY_ACTIVE_ES256; default the newest EC key).
	SigningKeysDir        string
	SigningKeyActive      string
	SigningKeyActiveES256 string
	// AccessTokenAlg signs access tokens (ACCESS_TOKEN_SIGNING_ALG): RS256
	// (default) or ES256. ID tokens are always RS256.
	AccessTokenAlg string
	// GCPercent is the garbage collector's GOGC for the auth-server
	// (GC_PERCENT, default 800: a heap goal 9× the live heap instead of
	// Go's 2×, a quarter of the collections per grant of the earlier 200,
	// bounded by a soft memory limit at 90 % of the container's; measured
	// in docs/benchmarks/auth-server-history.md, sessions "authtail-2" and
	// "Session 39 perf11"). GOGC in the environment, which the runtime reads
	// itself, wins.
	GCPercent int
	// SigningConcurrency is how many token signatures run at once
	// (SIGNING_CONCURRENCY, 0: one per CPU, GOMAXPROCS); the others queue
	// in arrival order. SigningQueueWait (SIGNING_QUEUE_WAIT, default 2s)
	// is the longest a token request waits for its turn before it is
	// refused with 503 temporarily_unavailable.
	SigningConcurrency int
	SigningQueueWait   time.Duration
	// ClientsFile is the static client registry (CLIENTS_FILE).
	ClientsFile string
	Redis       config.Redis
	// Revocation is how revoked grants are followed (REVOCATION_RECONCILE_INTERVAL).
	Revocation config.Revocation
	// Backends are the gRPC services whose declared scopes the auth-server
	// supports besides its own (CAPABILITY_BACKENDS, default
	// capability-core=CORE_GRPC_ADDR from the shared settings; their TLS
	// settings and CAPABILITY_REFRESH_INTERVAL). Required in production;
	// in development, none means only the auth-server's own scopes.
	Backends config.Backends

	// MCPResource is the canonical MCP resource URL (MCP_RESOURCE_URL) and
	// ActionsAudience the GPT Actions audience (ACTIONS_AUDIENCE): the two
	// audiences access tokens may carry.
	MCPResource     string
	ActionsAudience string
	// DynamicClientResources are the resources (RFC 8707) a self-registered
	// client — registered through RFC 7591 dynamic registration or known
	// by its Client ID Metadata Document — may be issued tokens for
	// (DYNAMIC_CLIENT_RESOURCES, comma-separated; each MCP_RESOURCE_URL,
	// its legacy SSE identifier, or ACTIONS_AUDIENCE). Default: the MCP
	// resource alone. Validate holds them in their configured form, in the
	// order of Resources (MCP first, the default of a request that names
	// none). Empty only when the setting is unset and MCP_RESOURCE_URL is
	// too: such clients may then use no resource.
	DynamicClientResources []string
	// AllowedOrigins may call the token, userinfo, JWKS and discovery
	// endpoints from a browser (ALLOWED_ORIGINS, comma-separated).
	AllowedOrigins []string
	// TrustedRedirectOrigins are the origins (scheme://host[:port], lower
	// case, the host in ASCII, no default port) of the redirect URIs of
	// self-registered clients — dynamic registration, Client ID Metadata
	// Documents — that the authorization endpoint sends error responses to
	// automatically (TRUSTED_REDIRECT_ORIGINS, comma-separated; "none" for
	// none; default https://chatgpt.com). Another self-registered
	// client's error response is shown on a page of this server with a
	// link the user may follow (RFC 9700 §4.11.2). Operator-registered
	// clients and loopback redirect URIs are trusted whatever it says.
	TrustedRedirectOrigins []string

	Upstream Upstream

	// TokenSecret keys the HMAC of authorization codes and refresh tokens
	// (TOKEN_HMAC_SECRET or _FILE, at least 32 bytes); RotatedTokenSecrets
	// still verify (TOKEN_HMAC_SECRETS_ROTATED or _FILE, comma-separated, a
	// file's items also one a line). Every
	// secret, current or rotated, is normalised by one rule (secretValue:
	// white space around it is dropped), so a secret moved from the one
	// setting to the other is the same value. When that rule changed
	// TOKEN_HMAC_SECRET's start (leading white space), RotatedTokenSecrets
	// also holds its spelling without the trailing white space alone,
	// which earlier releases keyed the tokens with, so their codes, refresh
	// tokens and registrations stay valid.
	TokenSecret         string
	RotatedTokenSecrets []string
	// UntrimmedTokenSecrets are the spellings the token secrets may have
	// had when a release used TOKEN_HMAC_SECRET from the environment as
	// given: each of TokenSecret and RotatedTokenSecrets followed by "\n"
	// or "\r\n" (a Kubernetes secretKeyRef to a key made --from-file),
	// and TOKEN_HMAC_SECRET as given when trimming changed it otherwise
	// (untrimmed).
	// They key no token (the trimmed white space is past the HMAC key's
	// 32 bytes); only the client secret keys derived from them still
	// verify, so dynamic registrations hashed under such a spelling
	// authenticate, and are rewritten under the current key
	// (oauth.NewSecretHasher).
	UntrimmedTokenSecrets []string

	AccessTokenTTL   time.Duration // ACCESS_TOKEN_TTL
	RefreshTokenTTL  time.Duration // REFRESH_TOKEN_TTL
	IDTokenTTL       time.Duration // ID_TOKEN_TTL
	AuthCodeTTL      time.Duration // AUTH_CODE_TTL
	LoginTTL         time.Duration // LOGIN_TTL: how long a pending upstream login may take
	RefreshGrace     time.Duration // REFRESH_GRACE_PERIOD
	ConsentTTL       time.Duration // CONSENT_TTL: how long an approval is remembered
	RequireOffline   bool          // REFRESH_REQUIRES_OFFLINE_ACCESS
	DCREnabled       bool          // DCR_ENABLED
	DCRTTL           time.Duration // DCR_UNUSED_TTL: unused registrations expire
	CIMDEnabled      bool          // CIMD_ENABLED
	CIMDAllowPrivate bool          // CIMD_ALLOW_PRIVATE_NETWORKS (development only)
	CIMDCacheTTL     time.Duration // CIMD_CACHE_TTL (upper bound)
	// CIMDAllowedHosts, when set, are the only hosts whose Client ID
	// Metadata Documents are fetched (CIMD_ALLOWED_HOSTS, comma-separated
	// host names or *.domain).
	CIMDAllowedHosts []string

	// Rate limits, per client address before authentication and per
	// authenticated client after it (docs/reference/oauth.md).
	RateAuthorize    int // RATE_LIMIT_AUTHORIZE_PER_MINUTE (per address)
	RateToken        int // RATE_LIMIT_TOKEN_PER_MINUTE (per authenticated client and endpoint)
	RateTokenAddress int // RATE_LIMIT_TOKEN_PER_ADDRESS_PER_MINUTE (per address, before authentication)
	RateUserinfo     int // RATE_LIMIT_USERINFO_PER_MINUTE (per address)
	RateRegister     int // RATE_LIMIT_REGISTER_PER_MINUTE (per address)
	// TrustedProxies are the proxies whose X-Forwarded-For entries name the
	// client address (TRUSTED_PROXIES, CIDRs; platform/clientip rule).
	TrustedProxies []string

	// ClientSecretKey keys the HMAC-SHA256 hashes of server-generated
	// client secrets (CLIENT_SECRET_HMAC_KEY or _FILE, at least 32 bytes;
	// default: derived from TOKEN_HMAC_SECRET); RotatedClientSecretKeys
	// still verify (CLIENT_SECRET_HMAC_KEYS_ROTATED or _FILE). The keys are
	// normalised as the token secrets are (secretValue). After the rotated
	// keys, RotatedClientSecretKeys holds the spellings the keys may have
	// had when a release used CLIENT_SECRET_HMAC_KEY from the environment
	// as given (untrimmed: each key followed by "\n" or "\r\n", and the
	// value as given), so registrations hashed under one authenticate and
	// are rewritten under ClientSecretKey. Unlike the token secrets'
	// spellings they may be among the rotated keys: the whole value keys
	// the hash, not its first 32 bytes.
	ClientSecretKey         string
	RotatedClientSecretKeys []string
	// ClientSecretSlowChecks bounds bcrypt checks in flight
	// (CLIENT_SECRET_SLOW_CHECKS; 0 = half the CPUs, at least one), and
	// ClientSecretCacheTTL how long a bcrypt-verified secret is remembered
	// (CLIENT_SECRET_CACHE_TTL).
	ClientSecretSlowChecks int
	ClientSecretCacheTTL   time.Duration
	// AuthFailureLimit failed client authentications per (client id,
	// address) are allowed per AuthFailureWindow (CLIENT_AUTH_FAILURE_LIMIT,
	// CLIENT_AUTH_FAILURE_WINDOW); beyond it wrong secrets answer 429.
	AuthFailureLimit  int
	AuthFailureWindow time.Duration
	// ClientsReload is how often CLIENTS_FILE is checked for changes
	// (CLIENTS_FILE_RELOAD_INTERVAL; 0 = never).
	ClientsReload time.Duration
}

// Upstream is the OIDC identity provider the auth-server bridges to.
type Upstream struct {
	Issuer       string   // UPSTREAM_ISSUER_URL
	ClientID     string   // UPSTREAM_CLIENT_ID
	ClientSecret string   // UPSTREAM_CLIENT_SECRET or _FILE
	Scopes       []string // UPSTREAM_SCOPES
	// ClaimMap maps our profile claims to upstream claim names
	// (UPSTREAM_CLAIM_MAP, e.g. "preferred_username=upn,name=display_name").
	ClaimMap map[string]string
	// DialAddr, when set, is where connections to the issuer's host:port
	// really go (UPSTREAM_DIAL_ADDR, host:port): a back channel for when the
	// issuer URL the browser uses does not resolve from the auth-server, as
	// with the dev IdP port-forwarded to localhost under Tilt. The Host
	// header, TLS server name and issuer checks are unchanged.
	DialAddr string
	// ForwardPromptLogin sends prompt=login upstream when a client asks for
	// it (UPSTREAM_FORWARD_PROMPT_LOGIN, default true). Turn it off for an
	// IdP that refuses prompt=login: the request then still requires an
	// auth_time from after the request, else login_required (OpenID
	// Connect Core 1.0 §3.1.2.1). max_age is always forwarded.
	ForwardPromptLogin bool
	// AllowedTenants are the Entra ID tenants (GUIDs) whose users may sign
	// in through a multi-tenant issuer, …/common/v2.0 or
	// …/organizations/v2.0 (UPSTREAM_ALLOWED_TENANTS; "*" alone: any
	// tenant). Required with such an issuer, refused with any other.
	AllowedTenants []string
	// PreviousIssuers are issuers whose subjects are the current
	// provider's users (UPSTREAM_PREVIOUS_ISSUERS, comma-separated URLs
	// checked as UPSTREAM_ISSUER_URL is and kept as written): the same
	// provider at its former address, or one whose users were migrated
	// with their ids. A grant or remembered consent made by a sign-in at
	// one of them stays valid; one of any other issuer than these and
	// the current provider's ends (oauth's issuerSet). An Entra ID
	// tenant is listed by its own issuer, …/{tenant id}/v2.0.
	PreviousIssuers []string
	// ResponseMode is how the provider returns the authorization response
	// to /oauth/callback (UPSTREAM_RESPONSE_MODE): "query" (default, a GET
	// redirect, RFC 6749 §4.1.2) or "form_post" (an auto-submitted form
	// POST, OAuth 2.0 Form Post Response Mode §2), which Sign in with Apple
	// requires when the name or email scope is asked. With form_post the
	// login cookie is SameSite=None; Secure, so PUBLIC_ISSUER_URL must be
	// https (or loopback).
	ResponseMode string
	// ClientKey is the PEM private key (PKCS#8, or PKCS#1 RSA) the
	// auth-server authenticates to the provider's token endpoint with, by
	// private_key_jwt (UPSTREAM_CLIENT_KEY_FILE or UPSTREAM_CLIENT_KEY;
	// OpenID Connect Core §9, RFC 7523 §2.2) instead of a client secret:
	// an RSA key of at least 2048 bits signs RS256, a P-256 key ES256.
	ClientKey string
	// ClientKeyID is the kid of ClientKey at the provider
	// (UPSTREAM_CLIENT_KEY_ID), sent in the assertion's header; optional.
	ClientKeyID string
	// ClientCert is the PEM X.509 certificate of ClientKey registered at a
	// provider that identifies the key by the certificate's thumbprint,
	// Microsoft Entra ID's certificate credentials
	// (UPSTREAM_CLIENT_CERT_FILE or UPSTREAM_CLIENT_CERT; the first
	// CERTIFICATE block, the leaf). Its public key must be ClientKey's.
	// The assertion's header then carries x5t#S256 (RFC 7515 §4.1.8) and
	// x5t (§4.1.7), and an RSA key signs PS256.
	ClientCert string
	// AppleTeamID is the Apple Developer team id (UPSTREAM_APPLE_TEAM_ID,
	// ten characters A–Z, 0–9) for Sign in with Apple: ClientKey (the
	// Sign in with Apple key, P-256) then signs the client secret itself —
	// an ES256 JWT with kid ClientKeyID, iss the team id, sub the client id
	// (the Services ID), aud the issuer — sent as client_secret in the form
	// (client_secret_post), not a private_key_jwt assertion.
	AppleTeamID string
}

// Upstream response modes (UPSTREAM_RESPONSE_MODE).
const (
	ResponseModeQuery    = "query"
	ResponseModeFormPost = "form_post"
)

// EntraMultiTenant reports whether issuer is an Entra ID multi-tenant
// issuer (path …/common/v2.0 or …/organizations/v2.0), whose discovery
// document names the issuer template …/{tenantid}/v2.0 and whose ID tokens
// carry the signed-in user's tenant. It returns that template.
func EntraMultiTenant(issuer string) (template string, ok bool) {
	issuer = strings.TrimSuffix(issuer, "/") // Entra's issuers have no trailing slash
	for _, seg := range []string{"/common/v2.0", "/organizations/v2.0"} {
		if before, found := strings.CutSuffix(issuer, seg); found {
			return before + "/{tenantid}/v2.0", true
		}
	}
	return "", false
}

// PreviousIssuersSetting names Upstream.PreviousIssuers.
const PreviousIssuersSetting = "UPSTREAM_PREVIOUS_ISSUERS"

// validatePrevious adds the problems of UPSTREAM_PREVIOUS_ISSUERS (comma-
// separated: an issuer URL holding a comma is cut in two): each an
// absolute http(s) URL (https in production) without query or fragment,
// as UPSTREAM_ISSUER_URL; none the current issuer (with or without a
// trailing slash, which its grants match already), none twice, and no
// Entra ID multi-tenant issuer (…/common/v2.0: its sign-ins carry their
// tenant's issuer, which is what to list).
func (u Upstream) validatePrevious(p *config.Problems, prod bool) {
	seen := map[string]bool{}
	for i, iss := range u.PreviousIssuers {
		if i > 0 && !strings.Contains(iss, "://") {
			// Most likely the rest of a URL holding a comma, which the
			// list's separator cut in two.
			p.Addf("%s: %q is not a URL: the list is comma-separated, and no issuer URL in it may hold a comma", PreviousIssuersSetting, iss)
			continue
		}
		_ = config.PublicURL(p, PreviousIssuersSetting, iss, prod)
		key := strings.TrimSuffix(iss, "/")
		switch {
		case u.Issuer != "" && key == strings.TrimSuffix(u.Issuer, "/"):
			p.Addf("%s: %q is UPSTREAM_ISSUER_URL, whose grants are valid already; list only former issuers", PreviousIssuersSetting, iss)
		case seen[key]:
			p.Addf("%s: %q is listed twice", PreviousIssuersSetting, iss)
		default:
			if _, multi := EntraMultiTenant(iss); multi {
				p.Addf("%s: %q is a multi-tenant Entra ID issuer; list each tenant's issuer (…/{tenant id}/v2.0), the one its users' sign-ins carry", PreviousIssuersSetting, iss)
			}
		}
		seen[key] = true
	}
}

// tenantID is an Entra ID tenant id, a GUID.
var tenantID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// IsTenantID reports whether s is a tenant id (a lower-case GUID, as Entra
// ID writes it in iss and tid).
func IsTenantID(s string) bool { return tenantID.MatchString(s) }

// ProfileClaims are the claims mapped from the upstream.
var ProfileClaims = []string{"email", "email_verified", "name", "given_name", "family_name", "preferred_username"}

// Load reads the configuration and returns it with every problem found.
func Load(getenv func(string) string) (Config, error) {
	s := config.NewSource(getenv)
	c := Config{Common: config.LoadCommon(s, "auth-server")}
	c.HTTPAddr = s.String("HTTP_ADDR", ":8080")
	c.GRPCAddr = s.String("GRPC_ADDR", ":9090")
	c.Issuer = s.String("PUBLIC_ISSUER_URL", "")
	c.ActionsOAuthBaseURL = s.String("ACTIONS_OAUTH_BASE_URL", "")
	c.SigningKeysDir = s.String("SIGNING_KEYS_DIR", "")
	c.SigningKeyActive = s.String("SIGNING_KEY_ACTIVE", "")
	c.SigningKeyActiveES256 = s.String("SIGNING_KEY_ACTIVE_ES256", "")
	c.AccessTokenAlg = s.String("ACCESS_TOKEN_SIGNING_ALG", "RS256")
	c.GCPercent = s.Int("GC_PERCENT", 800)
	c.SigningConcurrency = s.Int("SIGNING_CONCURRENCY", 0)
	c.SigningQueueWait = s.Duration("SIGNING_QUEUE_WAIT", 2*time.Second)
	c.ClientsFile = s.String("CLIENTS_FILE", "")
	c.Redis = config.LoadRedis(s, c.Production())
	c.Revocation = config.LoadRevocation(s)
	c.Backends = config.LoadBackends(s, s.String("CORE_GRPC_ADDR", ""), !c.Production())
	c.MCPResource = s.String("MCP_RESOURCE_URL", "")
	c.ActionsAudience = s.String("ACTIONS_AUDIENCE", "")
	c.DynamicClientResources = s.List(DynamicClientResourcesSetting, nil)
	c.AllowedOrigins = s.List("ALLOWED_ORIGINS", nil)
	c.TrustedRedirectOrigins = s.List(TrustedRedirectOriginsSetting, DefaultTrustedRedirectOrigins)
	if len(c.TrustedRedirectOrigins) == 1 && c.TrustedRedirectOrigins[0] == "none" {
		c.TrustedRedirectOrigins = nil
	}
	c.Upstream = Upstream{
		Issuer:             s.String("UPSTREAM_ISSUER_URL", ""),
		ClientID:           s.String("UPSTREAM_CLIENT_ID", ""),
		ClientSecret:       s.Secret("UPSTREAM_CLIENT_SECRET"),
		Scopes:             s.List("UPSTREAM_SCOPES", []string{"openid", "profile", "email"}),
		ClaimMap:           map[string]string{},
		DialAddr:           s.String("UPSTREAM_DIAL_ADDR", ""),
		ForwardPromptLogin: s.Bool("UPSTREAM_FORWARD_PROMPT_LOGIN", true),
		AllowedTenants:     s.List("UPSTREAM_ALLOWED_TENANTS", nil),
		PreviousIssuers:    s.List(PreviousIssuersSetting, nil),
		ResponseMode:       s.String("UPSTREAM_RESPONSE_MODE", ResponseModeQuery),
		ClientKey:          s.Secret("UPSTREAM_CLIENT_KEY"),
		ClientKeyID:        s.String("UPSTREAM_CLIENT_KEY_ID", ""),
		ClientCert:         s.Secret("UPSTREAM_CLIENT_CERT"),
		AppleTeamID:        s.String("UPSTREAM_APPLE_TEAM_ID", ""),
	}
	claimMap := s.List("UPSTREAM_CLAIM_MAP", nil)
	tokenSecret := s.Secret("TOKEN_HMAC_SECRET")
	c.TokenSecret = secretValue(tokenSecret)
	c.RotatedTokenSecrets = s.SecretList("TOKEN_HMAC_SECRETS_ROTATED", nil)
	if old := strings.TrimRightFunc(tokenSecret, unicode.IsSpace); old != c.TokenSecret && !slices.Contains(c.RotatedTokenSecrets, old) {
		// Leading white space: releases before this one used it, and it
		// shifts the 32 bytes that key the tokens' HMAC.
		c.RotatedTokenSecrets = append(c.RotatedTokenSecrets, old)
	}
	c.UntrimmedTokenSecrets = untrimmed(tokenSecret, c.TokenSecret, c.RotatedTokenSecrets)
	c.AccessTokenTTL = s.Duration("ACCESS_TOKEN_TTL", time.Hour)
	c.RefreshTokenTTL = s.Duration("REFRESH_TOKEN_TTL", 30*24*time.Hour)
	c.IDTokenTTL = s.Duration("ID_TOKEN_TTL", time.Hour)
	c.AuthCodeTTL = s.Duration("AUTH_CODE_TTL", 5*time.Minute)
	c.LoginTTL = s.Duration("LOGIN_TTL", 10*time.Minute)
	c.RefreshGrace = s.Duration("REFRESH_GRACE_PERIOD", 30*time.Second)
	c.ConsentTTL = s.Duration("CONSENT_TTL", 90*24*time.Hour)
	c.RequireOffline = s.Bool("REFRESH_REQUIRES_OFFLINE_ACCESS", false)
	c.DCREnabled = s.Bool("DCR_ENABLED", false)
	c.DCRTTL = s.Duration("DCR_UNUSED_TTL", 30*24*time.Hour)
	c.CIMDEnabled = s.Bool("CIMD_ENABLED", true)
	c.CIMDAllowPrivate = s.Bool("CIMD_ALLOW_PRIVATE_NETWORKS", false)
	c.CIMDCacheTTL = s.Duration("CIMD_CACHE_TTL", time.Hour)
	c.CIMDAllowedHosts = s.List("CIMD_ALLOWED_HOSTS", nil)
	c.RateAuthorize = s.Int("RATE_LIMIT_AUTHORIZE_PER_MINUTE", 60)
	c.RateToken = s.Int("RATE_LIMIT_TOKEN_PER_MINUTE", 1200)
	c.RateTokenAddress = s.Int("RATE_LIMIT_TOKEN_PER_ADDRESS_PER_MINUTE", 600)
	c.RateUserinfo = s.Int("RATE_LIMIT_USERINFO_PER_MINUTE", 600)
	c.RateRegister = s.Int("RATE_LIMIT_REGISTER_PER_MINUTE", 10)
	c.TrustedProxies = s.List(clientip.Setting, nil)
	clientKey := s.Secret("CLIENT_SECRET_HMAC_KEY")
	c.ClientSecretKey = secretValue(clientKey)
	c.RotatedClientSecretKeys = s.SecretList("CLIENT_SECRET_HMAC_KEYS_ROTATED", nil)
	if c.ClientSecretKey != "" {
		c.RotatedClientSecretKeys = append(c.RotatedClientSecretKeys, untrimmed(clientKey, c.ClientSecretKey, c.RotatedClientSecretKeys)...)
	}
	c.ClientSecretSlowChecks = s.Int("CLIENT_SECRET_SLOW_CHECKS", 0)
	c.ClientSecretCacheTTL = s.Duration("CLIENT_SECRET_CACHE_TTL", 10*time.Minute)
	c.AuthFailureLimit = s.Int("CLIENT_AUTH_FAILURE_LIMIT", 10)
	c.AuthFailureWindow = s.Duration("CLIENT_AUTH_FAILURE_WINDOW", 15*time.Minute)
	c.ClientsReload = s.Duration("CLIENTS_FILE_RELOAD_INTERVAL", 30*time.Second)
	p := s.Problems()
	if tokenSecret != "" && c.TokenSecret == "" {
		p.Addf("TOKEN_HMAC_SECRET: is only white space")
	}
	if clientKey != "" && c.ClientSecretKey == "" {
		p.Addf("CLIENT_SECRET_HMAC_KEY: is only white space")
	}
	if strings.TrimSpace(getenv(DynamicClientResourcesSetting)) != "" && len(c.DynamicClientResources) == 0 {
		p.Addf("%s: lists no resource; name MCP_RESOURCE_URL (the default), ACTIONS_AUDIENCE or both, or unset it", DynamicClientResourcesSetting)
	}
	if getenv("TRUST_FORWARDED_FOR") != "" {
		p.Addf("TRUST_FORWARDED_FOR: removed; list the ingress proxies in %s instead (the client address is the right-most untrusted X-Forwarded-For entry)", clientip.Setting)
	}
	if v := getenv("CLIENT_SECRET_SLOW_CHECK_NICE"); v != "" && v != "0" {
		// Measured and removed (docs/reference/oauth.md, "Why half the CPUs").
		// Its old default, 0 (the process's priority), asks for what the
		// server does, so a deployment that pinned it still starts.
		p.Addf("CLIENT_SECRET_SLOW_CHECK_NICE: removed; unset it. A lowered thread priority for bcrypt checks added nothing on a quiet machine and stalled requests under load (the Go scheduler cannot take back the P of a thread the kernel sets aside); CLIENT_SECRET_SLOW_CHECKS (default half the CPUs) is what keeps fast clients served")
	}
	for _, kv := range claimMap {
		k, v, ok := strings.Cut(kv, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || v == "" || !slices.Contains(ProfileClaims, k) {
			p.Addf("UPSTREAM_CLAIM_MAP: %q is not claim=upstream_claim with claim one of %s", kv, strings.Join(ProfileClaims, ", "))
			continue
		}
		c.Upstream.ClaimMap[k] = v
	}
	c.Validate(&p)
	return c, p.Err()
}

// LoadClientSecretKey reads CLIENT_SECRET_HMAC_KEY (or _FILE) alone, as
// Load does, for `auth-server hash-client-secret`: a hash made under it
// verifies at an auth-server given the same setting. Unlike Load it
// requires the key: without it the auth-server derives one from
// TOKEN_HMAC_SECRET, which a static registry's hashes should not follow
// (rotating that secret would end them).
func LoadClientSecretKey(getenv func(string) string) (string, error) {
	s := config.NewSource(getenv)
	given := s.Secret("CLIENT_SECRET_HMAC_KEY")
	key := secretValue(given)
	p := s.Problems()
	switch {
	case len(p) > 0:
	case given != "" && key == "":
		p.Addf("CLIENT_SECRET_HMAC_KEY: is only white space")
	case key == "":
		p.Addf("CLIENT_SECRET_HMAC_KEY: not set (nor CLIENT_SECRET_HMAC_KEY_FILE): give the key the auth-server reads (chart: authServer.clientSecretKey); " +
			"the key it derives from TOKEN_HMAC_SECRET without one changes when that secret is rotated")
	case len(key) < 32:
		p.Addf("CLIENT_SECRET_HMAC_KEY: must be at least 32 bytes (white space around it not counted)")
	}
	return key, p.Err()
}

// secretValue is the one rule every secret setting of the HMAC keys is
// read by, current or rotated, from the environment or a file: white
// space around the value is not part of it (config.Source.SecretList trims each
// item of a rotated list so; a Kubernetes secretKeyRef to a key made
// --from-file gives the value with a trailing newline).
func secretValue(v string) string { return strings.TrimSpace(v) }

// untrimmed lists the spellings a secret setting's values may have had
// before secretValue (Config.UntrimmedTokenSecrets, and the tail of
// Config.RotatedClientSecretKeys): given, the current value as read;
// current, as normalised; rotated, the rotated values.
func untrimmed(given, current string, rotated []string) []string {
	var out []string
	add := func(v string) {
		if v != current && !slices.Contains(rotated, v) && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	if current != "" {
		add(given)
	}
	for _, s := range append([]string{current}, rotated...) {
		if s != "" {
			add(s + "\n")
			add(s + "\r\n")
		}
	}
	return out
}

// Resources are the audiences tokens may carry, MCP first.
func (c *Config) Resources() []string {
	var out []string
	for _, r := range []string{c.MCPResource, c.ActionsAudience} {
		if r != "" && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// TrustedRedirectOriginsSetting names Config.TrustedRedirectOrigins.
const TrustedRedirectOriginsSetting = "TRUSTED_REDIRECT_ORIGINS"

// DefaultTrustedRedirectOrigins is TRUSTED_REDIRECT_ORIGINS when unset:
// ChatGPT's, whose connectors register themselves with the redirect URI
// https://chatgpt.com/connector_platform_oauth_redirect and are told why
// an authorization failed at that URI, as before the setting existed.
var DefaultTrustedRedirectOrigins = []string{"https://chatgpt.com"}

// redirectOrigins checks TRUSTED_REDIRECT_ORIGINS (config.Origins: an
// explicit scheme://host[:port], no wildcard, path, query or credentials;
// https in production) and returns each in the form RedirectOrigin gives a
// redirect URI's origin, the form it is compared in. "none" stands alone.
func redirectOrigins(p *config.Problems, list []string, prod bool) []string {
	if slices.Contains(list, "none") {
		p.Addf("%s: none stands alone (no origin is trusted); list origins without it", TrustedRedirectOriginsSetting)
		list = slices.DeleteFunc(slices.Clone(list), func(o string) bool { return o == "none" })
	}
	var out []string
	for _, o := range config.Origins(p, TrustedRedirectOriginsSetting, list, prod) {
		u, _ := url.Parse(o)
		o = RedirectOrigin(u)
		if strings.ContainsFunc(o, func(r rune) bool { return r > unicode.MaxASCII }) {
			p.Addf("%s: %q: the host is not a valid internationalized domain name", TrustedRedirectOriginsSetting, o)
			continue
		}
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out
}

// RedirectOrigin is u's origin as TRUSTED_REDIRECT_ORIGINS is compared
// with it: scheme://host[:port], the scheme and host in lower case, the
// host as it resolves (clients.ASCIIHost: an IDN in its xn-- form), the
// port without the scheme's default (https://app.example:443 is
// https://app.example, RFC 6454 §4).
func RedirectOrigin(u *url.URL) string {
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(clients.ASCIIHost(u))
	if (scheme == "https" && strings.HasSuffix(host, ":443")) || (scheme == "http" && strings.HasSuffix(host, ":80")) {
		host = host[:strings.LastIndexByte(host, ':')]
	}
	return scheme + "://" + host
}

// DynamicClientResourcesSetting names Config.DynamicClientResources.
const DynamicClientResourcesSetting = "DYNAMIC_CLIENT_RESOURCES"

// dynamicResources resolves DynamicClientResources against the served
// resources (Resources): unset, the MCP resource; set, each value must
// name a served resource — scheme and host compare case-insensitively and
// a trailing slash is not part of it, as for MCP_RESOURCE_URL; the legacy
// SSE identifier names the MCP resource (oauth.canonicalResource) — and
// any other value is a problem. It returns the configured forms in the
// order of Resources. With dynamic registration on and no resource for
// it (an install without MCP_RESOURCE_URL, the setting unset), the
// registrations could use nothing: a problem too.
func (c *Config) dynamicResources(p *config.Problems) []string {
	served := c.Resources()
	want := c.DynamicClientResources
	if want == nil {
		want = []string{c.MCPResource}
		if c.MCPResource == "" {
			want = nil
		}
	}
	var sse string
	if c.MCPResource != "" {
		sse = config.LegacySSEResource(c.MCPResource)
	}
	var named []string
	for _, v := range want {
		r, ok := clients.CanonicalResource(served, strings.TrimRight(v, "/"))
		if !ok && sse != "" {
			if _, isSSE := clients.CanonicalResource([]string{sse}, strings.TrimRight(v, "/")); isSSE {
				r, ok = c.MCPResource, true
			}
		}
		if !ok {
			p.Addf("%s: %q is not a resource this server serves (%s)", DynamicClientResourcesSetting, v, strings.Join(served, ", "))
			continue
		}
		named = append(named, r)
	}
	var out []string
	for _, r := range served {
		if slices.Contains(named, r) {
			out = append(out, r)
		}
	}
	if len(out) == 0 && len(want) == 0 && c.DCREnabled {
		p.Addf("%s: dynamic registration (DCR_ENABLED) is on, but without MCP_RESOURCE_URL its clients may use no resource; set %s (e.g. to ACTIONS_AUDIENCE) or turn registration off", DynamicClientResourcesSetting, DynamicClientResourcesSetting)
	}
	return out
}

// issuerPathless refuses a PUBLIC_ISSUER_URL with a path
// ("https://auth.example.com/tenant1"). The auth-server serves its
// endpoints at the root of its origin only — /.well-known/openid-configuration,
// /oauth/authorize, /oauth/jwks, … — and discovery advertises them under
// the issuer (OpenID Connect Discovery 1.0 §4 puts the document at
// <issuer>/.well-known/openid-configuration; RFC 8414 §3 inserts the
// well-known segment before the issuer's path), so an issuer with a path
// advertised endpoints that answer 404 and a metadata URL nothing serves.
// Serving under a prefix would need every route, the cookies' paths and
// the chart's ingress to follow it; one issuer per host is the supported
// shape. A trailing "/" alone is no path (PublicURL trims it).
func issuerPathless(p *config.Problems, issuer string) {
	pathless(p, "PUBLIC_ISSUER_URL", issuer, "the auth-server serves its endpoints (/.well-known/openid-configuration, /oauth/…) at the root of its origin only, so discovery would advertise endpoints that do not exist", "and give the auth-server a host of its own")
}

// pathless adds a problem when the URL raw of the setting key has a path:
// why says what the path would break, then what to set instead.
func pathless(p *config.Problems, key, raw, why, instead string) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return // PublicURL has said why
	}
	if path := strings.Trim(u.EscapedPath(), "/"); path != "" {
		p.Addf("%s: %q has a path (/%s): %s; set the origin alone (%s) %s", key, raw, path, why, u.Scheme+"://"+u.Host, instead)
	}
}

// Validate adds every problem of c to p.
func (c *Config) Validate(p *config.Problems) {
	prod := c.Production()
	c.Common.Validate(p)
	c.Issuer = config.PublicURL(p, "PUBLIC_ISSUER_URL", c.Issuer, prod)
	if c.ActionsOAuthBaseURL != "" {
		c.ActionsOAuthBaseURL = config.PublicURL(p, "ACTIONS_OAUTH_BASE_URL", c.ActionsOAuthBaseURL, prod)
		pathless(p, "ACTIONS_OAUTH_BASE_URL", c.ActionsOAuthBaseURL, "a GPT is sent to <it>/oauth/authorize and <it>/oauth/token, which the Actions Ingress routes to the auth-server at the root of its host only, and sign-ins started there are recognised by host", "(the Actions API's origin, as the actions-api requires)")
	}
	issuerPathless(p, c.Issuer)
	if c.SigningKeysDir == "" {
		p.Addf("SIGNING_KEYS_DIR: required (directory of <kid>.pem RSA keys)")
	}
	if c.AccessTokenAlg != "RS256" && c.AccessTokenAlg != "ES256" {
		p.Addf("ACCESS_TOKEN_SIGNING_ALG: %q is not RS256 or ES256", c.AccessTokenAlg)
	}
	if c.SigningConcurrency < 0 || c.SigningConcurrency > 256 {
		p.Addf("SIGNING_CONCURRENCY: %d is not 0 (one per CPU) to 256", c.SigningConcurrency)
	}
	if c.SigningQueueWait < time.Millisecond || c.SigningQueueWait > time.Minute {
		p.Addf("SIGNING_QUEUE_WAIT: %s is not 1ms to 1m", c.SigningQueueWait)
	}
	if c.GCPercent < 1 {
		p.Addf("GC_PERCENT: %d is not a positive percentage (to turn the collector off, set GOGC=off)", c.GCPercent)
	}
	if c.ClientsFile == "" && prod {
		p.Addf("CLIENTS_FILE: required in production (the static client registry)")
	}
	c.Redis.Validate(p, prod)
	c.Revocation.Validate(p)
	if c.MCPResource == "" && c.ActionsAudience == "" {
		p.Addf("MCP_RESOURCE_URL, ACTIONS_AUDIENCE: at least one audience is required")
	}
	if c.MCPResource != "" {
		c.MCPResource = config.PublicURL(p, "MCP_RESOURCE_URL", c.MCPResource, prod)
	}
	if c.ActionsAudience != "" {
		c.ActionsAudience = config.PublicURL(p, "ACTIONS_AUDIENCE", c.ActionsAudience, prod)
	}
	c.DynamicClientResources = c.dynamicResources(p)
	c.AllowedOrigins = config.Origins(p, "ALLOWED_ORIGINS", c.AllowedOrigins, prod)
	c.TrustedRedirectOrigins = redirectOrigins(p, c.TrustedRedirectOrigins, prod)
	if c.Upstream.Issuer == "" {
		p.Addf("UPSTREAM_ISSUER_URL: required (the upstream OpenID Connect issuer)")
	} else {
		// Checked, but kept character for character: an issuer may end in
		// a slash (Auth0's does), and the ID token's iss must be identical
		// (OpenID Connect Discovery 1.0 §4.3, Core §3.1.3.7 step 2).
		_ = config.PublicURL(p, "UPSTREAM_ISSUER_URL", c.Upstream.Issuer, prod)
	}
	if _, multi := EntraMultiTenant(c.Upstream.Issuer); multi {
		switch {
		case len(c.Upstream.AllowedTenants) == 0:
			p.Addf("UPSTREAM_ALLOWED_TENANTS: required with the multi-tenant issuer %q: the tenant ids (GUIDs) whose users may sign in, or * for any tenant", c.Upstream.Issuer)
		case slices.Contains(c.Upstream.AllowedTenants, "*") && len(c.Upstream.AllowedTenants) > 1:
			p.Addf("UPSTREAM_ALLOWED_TENANTS: * (any tenant) stands alone")
		default:
			for _, t := range c.Upstream.AllowedTenants {
				if t != "*" && !IsTenantID(t) {
					p.Addf("UPSTREAM_ALLOWED_TENANTS: %q is not a tenant id (a lower-case GUID)", t)
				}
			}
		}
	} else if len(c.Upstream.AllowedTenants) > 0 {
		p.Addf("UPSTREAM_ALLOWED_TENANTS: only for a multi-tenant Entra ID issuer (…/common/v2.0 or …/organizations/v2.0), not %q", c.Upstream.Issuer)
	}
	if template, multi := EntraMultiTenant(c.Upstream.Issuer); multi {
		// An allowed tenant's issuer is a user space of its own: listed as
		// a previous issuer too, its sign-ins would count as the current
		// provider's users, and the grants and consents made in its own
		// space would end.
		prefix, suffix, _ := strings.Cut(template, "{tenantid}")
		anyTenant := slices.Contains(c.Upstream.AllowedTenants, "*")
		for _, iss := range c.Upstream.PreviousIssuers {
			t, ok := strings.CutPrefix(strings.TrimSuffix(iss, "/"), prefix)
			if t, ok = strings.CutSuffix(t, suffix); ok && (slices.Contains(c.Upstream.AllowedTenants, t) || anyTenant && IsTenantID(t)) {
				p.Addf("%s: %q is the issuer of tenant %s, allowed by UPSTREAM_ALLOWED_TENANTS: an allowed tenant's users are its own, not former users of the current provider; list it in one of the two", PreviousIssuersSetting, iss, t)
			}
		}
	}
	c.Upstream.validatePrevious(p, prod)
	switch c.Upstream.ResponseMode {
	case ResponseModeQuery:
	case ResponseModeFormPost:
		// SameSite=None cookies must be Secure, and a browser keeps a Secure
		// cookie only from a secure origin (https, or loopback).
		if u, err := url.Parse(c.Issuer); err == nil && c.Issuer != "" && u.Scheme != "https" && !clients.SecureContextHost(u.Hostname()) {
			p.Addf("UPSTREAM_RESPONSE_MODE: form_post needs an https PUBLIC_ISSUER_URL (or a loopback one), not %q: the login cookie must then be SameSite=None; Secure to come back with the provider's cross-site POST", c.Issuer)
		}
	default:
		p.Addf("UPSTREAM_RESPONSE_MODE: %q is neither query nor form_post", c.Upstream.ResponseMode)
	}
	if c.Upstream.DialAddr != "" {
		if _, port, err := net.SplitHostPort(c.Upstream.DialAddr); err != nil || port == "" {
			p.Addf("UPSTREAM_DIAL_ADDR: %q is not host:port", c.Upstream.DialAddr)
		}
	}
	if c.Upstream.ClientID == "" {
		p.Addf("UPSTREAM_CLIENT_ID: required")
	}
	switch {
	case c.Upstream.ClientKey != "" && c.Upstream.ClientSecret != "":
		p.Addf("UPSTREAM_CLIENT_KEY_FILE and UPSTREAM_CLIENT_SECRET: set one (a client authenticates one way per request, RFC 6749 §2.3)")
	case c.Upstream.ClientKey != "":
		key, _, err := UpstreamKey(c.Upstream.ClientKey)
		if err != nil {
			p.Addf("UPSTREAM_CLIENT_KEY_FILE: %v", err)
		} else if c.Upstream.ClientCert != "" {
			if _, err := UpstreamClientCert(c.Upstream.ClientCert, key.Public()); err != nil {
				p.Addf("UPSTREAM_CLIENT_CERT_FILE: %v", err)
			}
		}
	case c.Upstream.ClientKeyID != "":
		p.Addf("UPSTREAM_CLIENT_KEY_ID: only with UPSTREAM_CLIENT_KEY_FILE")
	case c.Upstream.ClientCert != "":
		p.Addf("UPSTREAM_CLIENT_CERT_FILE: only with UPSTREAM_CLIENT_KEY_FILE (the certificate's private key)")
	case prod:
		p.Addf("UPSTREAM_CLIENT_SECRET: required in production (or UPSTREAM_CLIENT_SECRET_FILE, or a key: UPSTREAM_CLIENT_KEY_FILE)")
	}
	if c.Upstream.AppleTeamID != "" {
		c.Upstream.validateApple(p)
	}
	if !slices.Contains(c.Upstream.Scopes, "openid") {
		p.Addf("UPSTREAM_SCOPES: must include openid")
	}
	switch {
	case c.TokenSecret == "" && prod:
		p.Addf("TOKEN_HMAC_SECRET: required in production (or TOKEN_HMAC_SECRET_FILE; at least 32 random bytes)")
	case c.TokenSecret != "" && len(c.TokenSecret) < 32:
		p.Addf("TOKEN_HMAC_SECRET: must be at least 32 bytes (white space around it not counted)")
	}
	for _, s := range c.RotatedTokenSecrets {
		if len(s) < 32 {
			p.Addf("TOKEN_HMAC_SECRETS_ROTATED: every secret must be at least 32 bytes")
			break
		}
	}
	// Only a secret's first 32 bytes key the codes' and refresh tokens'
	// HMAC (fosite's HMAC strategy): a rotated secret that begins as the
	// current one is the same key, and a rotation between the two would
	// leave the old secret able to make tokens. The values are not named.
	if len(c.TokenSecret) >= 32 {
		for _, s := range c.RotatedTokenSecrets {
			if len(s) >= 32 && s != c.TokenSecret && s[:32] == c.TokenSecret[:32] {
				p.Addf("TOKEN_HMAC_SECRETS_ROTATED: a secret shares its first 32 bytes with TOKEN_HMAC_SECRET; only the first 32 bytes key the tokens' HMAC, so it is not another secret (make the new one random from its first byte)")
				break
			}
		}
	}
	ttl := func(key string, d, min, max time.Duration) {
		if d < min || d > max {
			p.Addf("%s: %s is outside %s..%s", key, d, min, max)
		}
	}
	ttl("ACCESS_TOKEN_TTL", c.AccessTokenTTL, time.Minute, 24*time.Hour)
	ttl("REFRESH_TOKEN_TTL", c.RefreshTokenTTL, time.Hour, 365*24*time.Hour)
	ttl("ID_TOKEN_TTL", c.IDTokenTTL, time.Minute, 24*time.Hour)
	ttl("AUTH_CODE_TTL", c.AuthCodeTTL, 10*time.Second, 10*time.Minute)
	ttl("LOGIN_TTL", c.LoginTTL, time.Minute, time.Hour)
	ttl("REFRESH_GRACE_PERIOD", c.RefreshGrace, 0, 5*time.Minute)
	ttl("CONSENT_TTL", c.ConsentTTL, time.Minute, 3*365*24*time.Hour)
	ttl("DCR_UNUSED_TTL", c.DCRTTL, time.Hour, 365*24*time.Hour)
	ttl("CIMD_CACHE_TTL", c.CIMDCacheTTL, time.Minute, 24*time.Hour)
	if c.AccessTokenTTL >= c.RefreshTokenTTL {
		p.Addf("ACCESS_TOKEN_TTL: must be shorter than REFRESH_TOKEN_TTL")
	}
	for _, h := range c.CIMDAllowedHosts {
		if rest := strings.TrimPrefix(h, "*."); rest == "" || strings.ContainsAny(rest, "*/@?# ") {
			p.Addf("CIMD_ALLOWED_HOSTS: %q is not a host name or *.domain", h)
		}
	}
	if _, err := clientip.New(c.TrustedProxies); err != nil {
		p.Addf("%s: %v", clientip.Setting, err)
	}
	if c.ClientSecretKey != "" && len(c.ClientSecretKey) < 32 {
		p.Addf("CLIENT_SECRET_HMAC_KEY: must be at least 32 bytes (white space around it not counted)")
	}
	if c.ClientSecretKey == "" && len(c.RotatedClientSecretKeys) > 0 {
		p.Addf("CLIENT_SECRET_HMAC_KEYS_ROTATED: needs CLIENT_SECRET_HMAC_KEY")
	}
	for _, k := range c.RotatedClientSecretKeys {
		// A spelling of the current key (followed by a newline, as given)
		// is as short as the key: the key's own refusal says so.
		if len(k) < 32 && secretValue(k) != c.ClientSecretKey {
			p.Addf("CLIENT_SECRET_HMAC_KEYS_ROTATED: every key must be at least 32 bytes")
			break
		}
	}
	if c.ClientSecretSlowChecks < 0 || c.ClientSecretSlowChecks > 256 {
		p.Addf("CLIENT_SECRET_SLOW_CHECKS: %d is outside 0..256 (0 = half the CPUs)", c.ClientSecretSlowChecks)
	}
	// 0 is "no cache"; otherwise at least a second: the cache's cleanup
	// ticks every TTL/100, which panics below 100 ns and spins a core below
	// a millisecond (brk42).
	if c.ClientSecretCacheTTL != 0 {
		ttl("CLIENT_SECRET_CACHE_TTL", c.ClientSecretCacheTTL, time.Second, time.Hour)
	}
	ttl("CLIENT_AUTH_FAILURE_WINDOW", c.AuthFailureWindow, time.Second, 24*time.Hour)
	ttl("CLIENTS_FILE_RELOAD_INTERVAL", c.ClientsReload, 0, time.Hour)
	if c.CIMDAllowPrivate && prod {
		p.Addf("CIMD_ALLOW_PRIVATE_NETWORKS: must be false in production (SSRF guard)")
	}
	for _, r := range []struct {
		key string
		n   int
	}{
		{"RATE_LIMIT_AUTHORIZE_PER_MINUTE", c.RateAuthorize}, {"RATE_LIMIT_TOKEN_PER_MINUTE", c.RateToken},
		{"RATE_LIMIT_USERINFO_PER_MINUTE", c.RateUserinfo}, {"RATE_LIMIT_REGISTER_PER_MINUTE", c.RateRegister},
		{"RATE_LIMIT_TOKEN_PER_ADDRESS_PER_MINUTE", c.RateTokenAddress}, {"CLIENT_AUTH_FAILURE_LIMIT", c.AuthFailureLimit},
	} {
		if r.n < 1 {
			p.Addf("%s: must be at least 1", r.key)
		}
	}
}

// appleTeamID is an Apple Developer team id.
var appleTeamID = regexp.MustCompile(`^[A-Z0-9]{10}$`)

// validateApple checks the settings UPSTREAM_APPLE_TEAM_ID needs: the Sign
// in with Apple key (EC P-256, which signs ES256) and its key id, which
// Apple requires in the client secret's header, and no certificate (that
// is private_key_jwt's). The key beside a secret is refused with the key.
func (u Upstream) validateApple(p *config.Problems) {
	if !appleTeamID.MatchString(u.AppleTeamID) {
		p.Addf("UPSTREAM_APPLE_TEAM_ID: %q is not an Apple team id (ten characters A-Z, 0-9)", u.AppleTeamID)
	}
	if u.ClientKey == "" {
		p.Addf("UPSTREAM_APPLE_TEAM_ID: needs UPSTREAM_CLIENT_KEY_FILE, the Sign in with Apple private key (AuthKey_<key id>.p8), which signs the client secret")
	} else if _, alg, err := UpstreamKey(u.ClientKey); err == nil && alg != "ES256" {
		p.Addf("UPSTREAM_CLIENT_KEY_FILE: Sign in with Apple's client secret is signed ES256; an EC P-256 key is required, not %s's key", alg)
	}
	if u.ClientKeyID == "" {
		p.Addf("UPSTREAM_APPLE_TEAM_ID: needs UPSTREAM_CLIENT_KEY_ID, the key's id at Apple (the client secret's kid)")
	}
	if u.ClientCert != "" {
		p.Addf("UPSTREAM_CLIENT_CERT_FILE: not with UPSTREAM_APPLE_TEAM_ID (Sign in with Apple's client secret names its key by kid)")
	}
}

// UpstreamKeyAlg returns the JWS algorithm a private_key_jwt assertion is
// signed with for the PEM key without a certificate (see UpstreamKey).
func UpstreamKeyAlg(pemKey string) (string, error) {
	_, alg, err := UpstreamKey(pemKey)
	return alg, err
}

// UpstreamKey parses UPSTREAM_CLIENT_KEY and returns it with the JWS
// algorithm it signs with: RS256 for RSA of at least 2048 bits, ES256 for
// P-256 (RFC 7518 §3.1, §3.3, §3.4). Other keys are refused.
func UpstreamKey(pemKey string) (crypto.Signer, string, error) {
	key, _, err := oidccrypto.BytesToPrivateKey([]byte(pemKey))
	if err != nil {
		return nil, "", fmt.Errorf("not a PEM private key (PKCS#8, or PKCS#1 RSA): %v", err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, "", fmt.Errorf("an RSA key of %d bits; at least 2048 are required (RFC 7518 §3.3)", k.N.BitLen())
		}
		return k, "RS256", nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, "", fmt.Errorf("an EC key on %s; ES256 needs P-256", k.Curve.Params().Name)
		}
		return k, "ES256", nil
	}
	return nil, "", fmt.Errorf("a %T key; RSA (RS256) or EC P-256 (ES256) is required", key)
}

// UpstreamClientCert parses UPSTREAM_CLIENT_CERT — PEM, the first
// CERTIFICATE block is the client's certificate, any after it its chain —
// and requires its public key to be pub, UPSTREAM_CLIENT_KEY's: the
// provider verifies the assertion with the key of the certificate whose
// thumbprint the header names, so another certificate could never work.
func UpstreamClientCert(pemCert string, pub crypto.PublicKey) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(pemCert))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate (-----BEGIN CERTIFICATE-----)")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not an X.509 certificate: %v", err)
	}
	if k, ok := pub.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("the certificate (subject %q) is not UPSTREAM_CLIENT_KEY_FILE's: its public key differs", cert.Subject.String())
	}
	return cert, nil
}

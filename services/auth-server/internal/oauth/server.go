// Package oauth is the auth-server's OAuth 2.1 / OpenID Connect provider:
// fosite does the grants, PKCE, client authentication and token handling;
// this package adds the upstream IdP bridge, the client sources (static
// registry, Client ID Metadata Documents, dynamic registration), consent,
// RFC 8707 resources, RFC 9207 iss, rate limits and the HTTP surface.
package oauth

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	josev4 "github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/openid"
	fjwt "github.com/ory/fosite/token/jwt"
	"github.com/prometheus/client_golang/prometheus"

	josev3 "github.com/go-jose/go-jose/v3"

	"github.com/tollgate/tollgate/services/auth-server/internal/audit"
	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
	"github.com/tollgate/tollgate/services/auth-server/internal/config"
	"github.com/tollgate/tollgate/services/auth-server/internal/store"
	"github.com/tollgate/tollgate/services/platform/clientip"
	"github.com/tollgate/tollgate/services/platform/ratelimit"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/revocation"
	"github.com/tollgate/tollgate/services/platform/telemetry"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// Options are the server's dependencies.
type Options struct {
	Config  config.Config
	Ring    *tokens.KeyRing
	Redis   *redisx.Client
	Static  *clients.Static
	Log     *slog.Logger
	Metrics prometheus.Registerer
	// UpstreamClient talks to the upstream IdP (default: 10s timeout).
	UpstreamClient *http.Client
	// Audit receives the audit events (nil: none are written).
	Audit *audit.Logger
	// Revocations is this replica's view of the revoked grants (started by
	// the caller); userinfo and introspection refuse their tokens, and
	// revocations made here reach it at once. Nil disables revocation
	// announcements (tests of other parts).
	Revocations *revocation.Set
	// Capabilities is the capability registry whose declared scopes the
	// server supports next to the OpenID Connect ones (scopes_supported,
	// client validation, consent wording). Nil: the OpenID Connect scopes
	// alone.
	Capabilities *registry.Registry
}

// Server serves the OAuth endpoints.
type Server struct {
	cfg      config.Config
	issuer   string
	ring     *tokens.KeyRing
	rdb      *redisx.Client
	static   *clients.Static
	log      *slog.Logger
	provider fosite.OAuth2Provider
	store    *store.Store
	upstream *Upstream
	// issuers are the upstream issuers whose sign-ins' grants and
	// consents count (UPSTREAM_ISSUER_URL, UPSTREAM_ALLOWED_TENANTS,
	// UPSTREAM_PREVIOUS_ISSUERS).
	issuers issuerSet
	limiter *ratelimit.Limiter
	// leases fronts limiter for the per-address and per-client buckets:
	// busy buckets (one client for every ChatGPT user, a proxy's address)
	// are taken from Redis a few tokens at a time (ratelimit.Leasing).
	leases  *ratelimit.Leasing
	metrics *metrics
	cimd    *clients.MetadataFetcher
	audit   *audit.Logger
	now     func() time.Time
	// addrs resolves client addresses (TRUSTED_PROXIES); hasher checks
	// client secrets and hashes the ones dynamic registration issues.
	addrs  *clientip.Resolver
	hasher *clients.SecretHasher
	// route names the route pattern of a request (telemetry).
	route func(*http.Request) string
	// supported are the supported scopes with their consent wording and
	// names, from the capability registry in use (UseRegistry).
	supported atomic.Pointer[scopeSet]
	// verifier checks this server's access tokens (key ring, revocations).
	verifier *tokens.Verifier
	// gate queues the token signatures and bounds the token endpoint's
	// wait for them (signGate).
	gate *signGate
	// strategy makes and checks the access tokens, refresh tokens and
	// codes (accessStrategy).
	strategy *accessStrategy
	// removed answers whether a client was removed from the registry
	// after a time (revocation.Set.ClientRemoved); nil without Redis.
	removed interface {
		ClientRemoved(clientID string, issuedAt time.Time) bool
	}
	// pageLog bounds the log lines of the authorization endpoint's error
	// page (errorPage).
	pageLog *boundedLog
}

// scopeSet is a registry's supported scopes.
type scopeSet struct {
	scopes []registry.Scope
	names  []string // the names of scopes, in the same order
}

// UseRegistry makes reg's scopes the supported ones from now on:
// scopes_supported, the consent page, client registration and the checks
// of clients that are allowed every supported scope follow the backends
// (registry.Discovery.OnChange).
func (s *Server) UseRegistry(reg *registry.Registry) {
	s.supported.Store(&scopeSet{scopes: reg.SupportedScopes(), names: reg.ScopeNames()})
}

// ScopeNames are the names of the scopes supported now.
func (s *Server) ScopeNames() []string { return s.supported.Load().names }

// New composes the provider.
func New(o Options) (*Server, error) {
	cfg := o.Config
	s := &Server{
		cfg: cfg, issuer: cfg.Issuer, ring: o.Ring, rdb: o.Redis, static: o.Static, log: o.Log,
		limiter: ratelimit.New(o.Redis), audit: o.Audit, now: time.Now, issuers: newIssuerSet(cfg.Upstream),
	}
	s.pageLog = &boundedLog{every: pageLogEvery, now: func() time.Time { return s.now() }}
	caps := o.Capabilities
	if caps == nil {
		caps, _ = registry.New() // no services: the OpenID Connect scopes
	}
	s.UseRegistry(caps)
	addrs, err := clientip.New(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", clientip.Setting, err)
	}
	s.addrs = addrs
	s.leases = s.limiter.Leasing(ratelimit.LeaseOptions{MaxTokens: rateLeaseTokens})
	if s.hasher, err = NewSecretHasher(cfg, o.Ring); err != nil {
		return nil, err
	}
	if o.Static != nil {
		if err := s.CheckRegistry(o.Static); err != nil {
			return nil, err
		}
	}
	m, err := newMetrics(o.Metrics)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	if err := registerLeaseMetrics(o.Metrics, s.leases); err != nil {
		return nil, err
	}
	if err := registerSlowCheckMetrics(o.Metrics, s.hasher); err != nil {
		return nil, err
	}
	s.cimd = clients.NewMetadataFetcher(clients.FetchOptions{AllowPrivate: cfg.CIMDAllowPrivate, Production: cfg.Production(), Log: s.log})
	if err := registerFetchMetrics(o.Metrics, s.cimd); err != nil {
		return nil, err
	}
	s.store = store.New(o.Redis, resolver{s}, store.TTLs{
		Code: cfg.AuthCodeTTL, Access: cfg.AccessTokenTTL, Refresh: cfg.RefreshTokenTTL, Grace: cfg.RefreshGrace,
	}, store.WithLogger(o.Log), store.WithGrantOwner(s.grantIssuerAccepted))
	if err := s.store.RegisterMetrics(o.Metrics); err != nil {
		return nil, err
	}
	revoker := auditingRevoker{s: s}
	if o.Revocations != nil {
		s.removed = o.Revocations
		revoker.next = revocation.NewRevoker(o.Redis, RevocationRetention(cfg.AccessTokenTTL), o.Revocations)
	}
	s.store.SetGrantRevoker(revoker)
	s.upstream = NewUpstream(cfg.Upstream, cfg.Issuer+"/oauth/callback", o.UpstreamClient, s.metrics.observeUpstream)

	secret, rotated, err := hmacSecrets(cfg, o.Ring)
	if err != nil {
		return nil, err
	}
	refreshScopes := []string{}
	if cfg.RequireOffline {
		refreshScopes = []string{"offline_access"}
	}
	fc := &fosite.Config{
		AccessTokenLifespan:            cfg.AccessTokenTTL,
		RefreshTokenLifespan:           cfg.RefreshTokenTTL,
		AuthorizeCodeLifespan:          cfg.AuthCodeTTL,
		IDTokenLifespan:                cfg.IDTokenTTL,
		IDTokenIssuer:                  cfg.Issuer,
		AccessTokenIssuer:              cfg.Issuer,
		TokenURL:                       cfg.Issuer + "/oauth/token",
		GlobalSecret:                   secret,
		RotatedGlobalSecrets:           rotated,
		ScopeStrategy:                  fosite.ExactScopeStrategy,
		AudienceMatchingStrategy:       targetStrategy, // fosite.ExactAudienceMatchingStrategy with invalid_target
		EnforcePKCEForPublicClients:    true,
		EnablePKCEPlainChallengeMethod: false,
		RefreshTokenScopes:             refreshScopes,
		SendDebugMessagesToClients:     false,
		// Neither state nor nonce has a length rule in RFC 6749 or OpenID
		// Connect Core: fosite's default 8-character minimum (answered with
		// the non-standard invalid_state) is lowered to 1, its smallest
		// value; newAuthorizeRequest lets an absent state through.
		MinParameterEntropy: 1,
		RedirectSecureChecker: func(_ context.Context, u *url.URL) bool {
			return clients.CheckRedirectURI(u.String(), cfg.Production()) == nil
		},
		JWKSFetcherStrategy: newSigningUseFetcher(s.cimd, s.static.HasJWKSURI, s.log),
	}
	// fosite initialises some settings lazily on first use, which races
	// under concurrent requests; set them all up front.
	fc.ClientSecretsHasher = s.hasher
	hmacStrategy := compose.NewOAuth2HMACStrategy(fc)
	vo := tokens.VerifierOptions{
		Source: ringSource{issuer: cfg.Issuer, ring: o.Ring}, Audiences: cfg.Resources(),
		KeysMaxAge: time.Second, MinRefreshInterval: time.Second,
	}
	if o.Revocations != nil {
		vo.Revocations = o.Revocations
	}
	verifier := tokens.NewVerifier(vo)
	s.verifier = verifier
	successorKey, err := hkdf.Key(sha256.New, secret, nil, "tollgate auth-server refresh token successor", 32)
	if err != nil {
		return nil, err
	}
	s.gate = newSignGate(cfg.SigningConcurrency, cfg.SigningQueueWait)
	core := &accessStrategy{
		hmac: hmacStrategy, successorKey: successorKey, issuer: cfg.Issuer, ring: o.Ring,
		alg: josev4.SignatureAlgorithm(cfg.AccessTokenAlg), verifier: verifier, ttl: cfg.AccessTokenTTL, now: time.Now,
		signing: s.metrics.signing, gate: s.gate,
	}
	if core.alg == "" {
		core.alg = josev4.RS256
	}
	copy(core.macKey[:], secret)
	s.strategy = core
	keyGetter := func(context.Context) (interface{}, error) {
		return &josev3.JSONWebKey{Key: o.Ring.Active(), KeyID: o.Ring.ActiveKeyID(), Algorithm: string(josev4.RS256), Use: "sig"}, nil
	}
	idTokens := compose.NewOpenIDConnectStrategy(keyGetter, fc)
	// The ID token strategy decodes the request's id_token_hint again
	// when it signs the ID token (at the code exchange) — for a request
	// stored with its hint before pending requests dropped it (authorize:
	// pending.HintSubject); a request made since carries none. Its decoder
	// applies the checks of the hint's first receipt (typ JWT, our iss:
	// publishedKeyDecoder.Decode), as does the one below.
	idTokens.Signer = timedSigner{Signer: publishedKeyDecoder{Signer: idTokens.Signer, ring: o.Ring, issuer: cfg.Issuer}, m: s.metrics.signing, alg: string(josev4.RS256), gate: s.gate, lifespan: cfg.IDTokenTTL}
	strategy := &compose.CommonStrategy{
		CoreStrategy:               core,
		OpenIDConnectTokenStrategy: idTokens,
		// The signer fosite's OpenID Connect handlers decode an
		// id_token_hint with: by the key its kid names among the
		// published ones, not the active key only (publishedKeyDecoder).
		Signer: publishedKeyDecoder{Signer: &fjwt.DefaultSigner{GetPrivateKey: keyGetter}, ring: o.Ring, issuer: cfg.Issuer},
	}
	s.provider = compose.Compose(fc, s.store, strategy,
		codeGrantFactory,            // compose.OAuth2AuthorizeExplicitFactory (handlers.go)
		s.refreshGrantFactory(core), // compose.OAuth2RefreshTokenGrantFactory (handlers.go)
		oidcCodeFactory,             // compose.OpenIDConnectExplicitFactory
		refreshIDTokenFactory,
		compose.OAuth2TokenIntrospectionFactory,
		revocationFactory, // compose.OAuth2TokenRevocationFactory (handlers.go)
		compose.OAuth2PKCEFactory,
	)
	f, ok := s.provider.(*fosite.Fosite)
	if !ok {
		return nil, errors.New("oauth: fosite provider of an unexpected type")
	}
	// Its client authentication's lookups are recorded for the audit
	// records of a failed one, and its assertion ids kept per client
	// (clientLookups).
	f.Store = clientLookups{Storage: f.Store, store: s.store}
	f.Config = assertionAudiences{Config: fc, audiences: []string{fc.TokenURL, cfg.Issuer}}
	fc.ClientAuthenticationStrategy = s.authenticateClient(f.DefaultClientAuthenticationStrategy)
	return s, nil
}

// NewSecretHasher is the client secret hasher of cfg. Its HMAC key is
// CLIENT_SECRET_HMAC_KEY, with CLIENT_SECRET_HMAC_KEYS_ROTATED (and the
// key's untrimmed spellings) verifying; without it, a key derived (HKDF)
// from TOKEN_HMAC_SECRET, with the keys derived from the rotated ones
// (TOKEN_HMAC_SECRETS_ROTATED) and from the secrets' untrimmed spellings
// (config.Config.UntrimmedTokenSecrets) verifying; without either, outside
// production, keys derived from the loaded signing keys
// (clients.DevSecretKeys, as dev-init uses).
//
// With CLIENT_SECRET_HMAC_KEY set, the derived keys the server would use
// without it (derivedSecretKeys) verify too, after the explicit rotated
// keys: a dynamic registration (RFC 7591) hashed before the key was set
// authenticates, and its hash is rewritten under the explicit key
// (clients.Attempt.Rehash), until its token secret (or, in development,
// its signing key) is removed. Errors: a key shorter than 32 bytes, or
// one derivation failing (clients.NewSecretHasher, clients.DevSecretKeys).
func NewSecretHasher(cfg config.Config, ring *tokens.KeyRing) (*clients.SecretHasher, error) {
	o := clients.SecretHasherOptions{
		SlowChecks: cfg.ClientSecretSlowChecks, CacheTTL: cfg.ClientSecretCacheTTL,
	}
	if cfg.ClientSecretCacheTTL == 0 {
		o.CacheSize = -1
	}
	derived, derivedRotated, err := derivedSecretKeys(cfg, ring)
	if err != nil {
		return nil, err
	}
	if cfg.ClientSecretKey == "" {
		o.Key, o.Rotated = derived, derivedRotated
		return clients.NewSecretHasher(o)
	}
	o.Key = []byte(cfg.ClientSecretKey)
	for _, k := range cfg.RotatedClientSecretKeys {
		o.Rotated = append(o.Rotated, []byte(k))
	}
	// Verify-only, last: a hash under the explicit keys costs no more
	// than before.
	if derived != nil {
		o.Rotated = append(append(o.Rotated, derived), derivedRotated...)
	}
	return clients.NewSecretHasher(o)
}

// derivedSecretKeys are the client secret HMAC keys of a configuration
// without CLIENT_SECRET_HMAC_KEY: the key derived (HKDF-SHA256, RFC 5869)
// from TOKEN_HMAC_SECRET, and those derived from the rotated secrets and
// the secrets' untrimmed spellings; without TOKEN_HMAC_SECRET, outside
// production, the keys derived from the loaded signing keys
// (clients.DevSecretKeys); otherwise none (nil, nil).
func derivedSecretKeys(cfg config.Config, ring *tokens.KeyRing) (key []byte, rotated [][]byte, err error) {
	switch {
	case cfg.TokenSecret != "":
		// Domain-separated from the token HMAC key it is derived from.
		derive := func(secret string) ([]byte, error) {
			return hkdf.Key(sha256.New, []byte(secret), nil, "tollgate auth-server client secret hmac", 32)
		}
		if key, err = derive(cfg.TokenSecret); err != nil {
			return nil, nil, err
		}
		// The untrimmed spellings last: a registration hashed under one
		// (TOKEN_HMAC_SECRET given with a trailing newline, before it was
		// trimmed) still verifies, and is rewritten under the current key.
		for _, r := range append(slices.Clip(cfg.RotatedTokenSecrets), cfg.UntrimmedTokenSecrets...) {
			k, err := derive(r)
			if err != nil {
				return nil, nil, err
			}
			rotated = append(rotated, k)
		}
		return key, rotated, nil
	case !cfg.Production() && ring != nil:
		return clients.DevSecretKeys(ring)
	}
	return nil, nil, nil
}

// Close stops the server's background work in Redis (the store's
// re-listings: store.Close); call it before closing the Redis client.
func (s *Server) Close() { s.store.Close() }

// Verifier checks access tokens as every verifier of the fleet does, from
// this server's own key ring and revocation set; the gRPC API uses it to
// authenticate callers (services/platform/capauth).
func (s *Server) Verifier() *tokens.Verifier { return s.verifier }

// CheckRegistry refuses a static registry the server cannot verify:
// HMAC-hashed secrets without a client secret key.
func (s *Server) CheckRegistry(st *clients.Static) error {
	if st.HasHMACHashes() && !s.hasher.CanHash() {
		return errors.New("CLIENTS_FILE: a client_secret_hash is an " + clients.HMACPrefix + " hash but CLIENT_SECRET_HMAC_KEY is not set")
	}
	return nil
}

// LongestAccessTokenTTL is the longest ACCESS_TOKEN_TTL the configuration
// accepts (config.Config.Validate; TestLongestAccessTokenTTLIsConfigsBound).
const LongestAccessTokenTTL = 24 * time.Hour

// RevocationRetention is how long a revoked grant is remembered: the
// longest lifetime any access token of the grant may have — accessTTL, but
// never less than LongestAccessTokenTTL — plus the verifiers' clock leeway
// (30 s) and a minute for tokens minted while the revocation was under way.
// After that every token of the grant is refused as expired anyway.
//
// The current ACCESS_TOKEN_TTL alone is not that bound: a token issued
// before the setting was lowered (or by a replica still running the longer
// one during a rollout) outlives it, and its grant's record must too (RFC
// 7009 §2.2: a revoked token is unusable from then on). It is the bound of
// a grant whose record does not say when its latest access token expires
// (none left, or one written by a version before it said so): a grant
// whose record says is kept until then (store.RevokeGrant,
// revocation.Revoker.RevokeUntil; docs/reference/oauth.md).
func RevocationRetention(accessTTL time.Duration) time.Duration {
	return max(accessTTL, LongestAccessTokenTTL) + 30*time.Second + time.Minute
}

// hmacSecrets returns the HMAC key of codes and refresh tokens, and the
// rotated ones that still verify. Outside production, when
// TOKEN_HMAC_SECRET is unset, the key is derived from the active signing
// key (HKDF, clients.DevKeys), so `make dev` needs no extra secret and
// tokens survive restarts; the keys derived from the ring's other RSA keys
// (those SIGNING_KEYS_DIR held when it was loaded) are rotated secrets, so
// activating another signing key (docs/operations/key-rotation.md, step 3)
// keeps the refresh tokens and codes issued under the previous one valid
// until that key is deleted.
func hmacSecrets(cfg config.Config, ring *tokens.KeyRing) ([]byte, [][]byte, error) {
	var rotated [][]byte
	for _, r := range cfg.RotatedTokenSecrets {
		rotated = append(rotated, []byte(r))
	}
	if cfg.TokenSecret != "" {
		return []byte(cfg.TokenSecret), rotated, nil
	}
	if cfg.Production() {
		return nil, nil, errors.New("TOKEN_HMAC_SECRET is required in production")
	}
	key, others, err := clients.DevKeys(ring.RSAKeys(), ring.ActiveKeyID(), "tollgate auth-server token hmac (development)")
	if err != nil {
		return nil, nil, err
	}
	return key, append(rotated, others...), nil
}

// resolver finds clients: static registry, then CIMD (https client ids),
// then dynamic registrations.
type resolver struct{ s *Server }

// GetClient is every client lookup of fosite and the store: the
// authenticating client's (through clientLookups) and a grant's
// (store.decodeGrant). A lookup the fetch bound refused
// (clients.ErrFetchBusy, which is no fosite.ErrNotFound) has the
// request's client authentication, if any, answer 503 (fetchBusy): the
// grant's client of a token a resource server introspects is looked up
// here, not through clientLookups (brk48 #2).
func (r resolver) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := r.s.client(ctx, id)
	if err != nil {
		fetchBusy(ctx, err)
		return nil, err
	}
	return c, nil
}

func (s *Server) client(ctx context.Context, id string) (*clients.Client, error) {
	if c, err := s.static.Get(id); err == nil {
		return c, nil
	}
	switch {
	case strings.HasPrefix(id, "https://") || (s.cfg.CIMDAllowPrivate && strings.HasPrefix(id, "http://")):
		if !s.cfg.CIMDEnabled {
			return nil, fmt.Errorf("%w: client id metadata documents are disabled", fosite.ErrNotFound)
		}
		return s.metadataClient(ctx, id)
	case strings.HasPrefix(id, clients.DynamicPrefix) && s.cfg.DCREnabled:
		return s.dynamicClient(ctx, id)
	}
	return nil, fosite.ErrNotFound
}

// Handler is the public HTTP surface.
//
// A path asked with a method it does not serve gets 405 with Allow and the
// JSON error shape of RFC 6749 §5.2 (invalid_request, naming the methods)
// — an OAuth client parses that, not net/http's plain-text 405.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	allowed := map[string][]string{} // path pattern → methods, in order
	handle := func(method, path string, h http.Handler) {
		mux.Handle(method+" "+path, h)
		if len(allowed[path]) == 0 {
			allowed[path] = nil
		}
		allowed[path] = append(allowed[path], method)
	}
	handle("GET", "/oauth/jwks", http.HandlerFunc(s.jwks))
	handle("GET", "/.well-known/openid-configuration", http.HandlerFunc(s.discovery))
	handle("GET", "/.well-known/oauth-authorization-server", http.HandlerFunc(s.discovery))
	handle("GET", "/.well-known/oauth-authorization-server/{path...}", http.HandlerFunc(s.discoveryAtPath))
	handle("GET", "/oauth/authorize", s.onIssuerHost(s.guard("authorize", false, s.authorize)))
	handle("POST", "/oauth/authorize", http.HandlerFunc(s.authorizePost)) // OIDC Core §3.1.2.1: 303 to the GET
	handle("GET", "/oauth/callback", s.guard("callback", false, s.callback))
	handle("POST", "/oauth/callback", s.guard("callback", false, s.callback)) // UPSTREAM_RESPONSE_MODE=form_post
	handle("POST", "/oauth/consent", s.guard("consent", false, s.consent))
	handle("POST", "/oauth/consent/revoke", s.guard("consent_revoke", true, s.revokeConsent))
	handle("POST", "/oauth/token", s.guard("token", true, s.token))
	handle("GET", "/oauth/userinfo", s.guard("userinfo", true, s.userinfo))
	handle("POST", "/oauth/userinfo", s.guard("userinfo", true, s.userinfo))
	handle("POST", "/oauth/revoke", s.guard("revoke", true, s.revoke))
	handle("POST", "/oauth/introspect", s.guard("introspect", true, s.introspect))
	handle("POST", "/oauth/register", s.guard("register", true, s.register))
	for path, methods := range allowed {
		switch {
		case !slices.Contains(methods, http.MethodGet):
		case getWrites[path]:
			// A GET pattern serves HEAD too: here a HEAD would run the
			// GET's writes. It is refused before the handler runs.
			mux.Handle(http.MethodHead+" "+path, methodNotAllowed(s.metrics, methods))
		default:
			methods = append(methods, http.MethodHead) // a GET pattern serves HEAD too
		}
		mux.Handle(path, methodNotAllowed(s.metrics, methods))
	}
	s.route = telemetry.MuxRoute(mux)
	return s.cors(mux)
}

// getWrites are the paths whose GET changes state: /oauth/authorize stores
// the pending request and sets the login cookie, /oauth/callback consumes
// the single-use sign-in state. net/http's ServeMux sends HEAD to a GET
// pattern, so a HEAD from a link prefetcher, a mail scanner or a proxy's
// health probe spent the state and the user's real GET then failed with
// "unknown, expired or already used sign-in state". HEAD is a safe method
// (RFC 9110 §9.2.1, §9.3.2: the server SHOULD answer it as GET without
// the content), and these answers cannot be given without the writes, so
// HEAD is refused here: 405 with Allow naming the methods that are served
// (RFC 9110 §15.5.6).
var getWrites = map[string]bool{"/oauth/authorize": true, "/oauth/callback": true}

// methodNotAllowed answers a method the path does not serve: 405, Allow
// (RFC 9110 §15.5.6) and the RFC 6749 §5.2 error shape, invalid_request
// ("use POST").
func methodNotAllowed(m *metrics, methods []string) http.Handler {
	allow := strings.Join(methods, ", ")
	desc := "method not allowed: use " + strings.Join(methods, " or ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.errors.WithLabelValues("any", "invalid_request").Inc()
		w.Header().Set("Allow", allow)
		writeJSONError(w, http.StatusMethodNotAllowed, "invalid_request", desc)
	})
}

// Route is the route pattern of r ("/oauth/token", …), a bounded metric
// label; call it after Handler.
func (s *Server) Route(r *http.Request) string {
	if s.route == nil {
		return telemetry.RouteOther
	}
	return s.route(r)
}

// UpstreamReady reports whether the upstream IdP's discovery succeeds. It
// is deliberately not a readiness check: an IdP outage must not take the
// token endpoint (refreshes) out of service.
func (s *Server) UpstreamReady(ctx context.Context) error { return s.upstream.Ready(ctx) }

func randomID() string { return rand.Text() }

// accessAlg is the JWS algorithm of access tokens (ACCESS_TOKEN_SIGNING_ALG).
func (s *Server) accessAlg() string {
	if s.cfg.AccessTokenAlg == "" {
		return string(josev4.RS256)
	}
	return s.cfg.AccessTokenAlg
}

// compile-time check that the session satisfies what fosite's OpenID
// Connect handlers need.
var _ openid.Session = (*Session)(nil)

// rateLeaseTokens is the most tokens the token endpoint's leases take of
// one bucket at a time (ratelimit.LeaseOptions.MaxTokens; the eighth of
// the burst still bounds it: 64 of the default per-client 1,200 a minute,
// 64 of the per-address 600). At 16 a busy bucket was leased every 8
// requests (a lease ahead tops up to the cap when half is left), and the
// benchmark's refreshes made 0.35–0.44 lease round trips each for their
// two buckets, up to 0.2 of them waited for; at 64, 0.06–0.08, next to no
// waits (docs/benchmarks/auth-server-history.md, session "refshare"; the same cap
// as the mcp-gateway's per-subject buckets).
const rateLeaseTokens = 64

// assertionAudiences is fosite's configuration as its client
// authentication reads it, with the audiences a private_key_jwt client
// assertion may name: the token endpoint URL (OpenID Connect Core §9: it
// SHOULD be) and the issuer identifier. RFC 7523 §3 asks only for a value
// that "identifies the authorization server as an intended audience", and
// the issuer is what oauth4webapi — and so openid-client — sends, at every
// endpoint (draft-ietf-oauth-rfc7523bis makes it the one value); fosite
// accepted the token endpoint URL alone, so those clients got 401
// invalid_client (e2e/conformance rp_test.go). The same assertion
// authenticates at the token, revocation and introspection endpoints.
// fosite's handlers keep the plain configuration: only the Fosite value's
// client authentication asks for GetTokenURLs.
type assertionAudiences struct {
	*fosite.Config
	audiences []string
}

func (a assertionAudiences) GetTokenURLs(context.Context) []string { return a.audiences }

// signingUseFetcher is fosite's JWKS fetcher for a private_key_jwt
// client's jwks_uri, answering only the keys an assertion may be verified
// with (clients.AssertionKeys): a key without "use" is a signing key (RFC
// 7517 §4.2), as an inline jwks is read, and a key an inline jwks could
// not use — under 2048 bits, another "alg" — is left out. The fetcher
// filters each set once, when it caches it
// (jwksFetcher.ResolveAssertionKeys).
//
// A set that cannot be fetched is invalid_client (jwksFetchError), and
// log gets what failed, for the operator; jwksFetchFailure classifies
// the fetcher's failures.
//
// The jwks_uris of the operator's own clients (isOperator: a client of
// CLIENTS_FILE names it) are fetched and cached by operator, all others by
// fetcher: their own bound of fetches in flight
// (clients.MetadataFetcher.OperatorRetryableClient) and their own cache,
// so that what anonymous callers make the server fetch and keep — the
// jwks_uris of Client ID Metadata Documents and dynamic registrations —
// neither takes the slots an operator client's fetch needs nor pushes its
// set out of the cache (brk47). The choice is by the URI, not by the
// client that asked (fosite passes only the URI): a self-registered
// client naming an operator's jwks_uri gets that set from operator's
// cache, which costs nothing more — operator fetches one URI once at a
// time, at most once per jwksRefetchInterval for an unknown kid and once
// per jwksFailureTTL when it fails, so operator's fetches stay bounded by
// the operator's number of jwks_uris whoever asks. Without operator
// (nil), fetcher fetches every jwks_uri.
type signingUseFetcher struct {
	fetcher    *jwksFetcher
	operator   *jwksFetcher
	isOperator func(location string) bool
	log        *slog.Logger
}

// newSigningUseFetcher fetches with mf's guarded clients: the jwks_uris
// isOperator names with its OperatorRetryableClient, into a cache of their
// own; the others with its RetryableClient.
func newSigningUseFetcher(mf *clients.MetadataFetcher, isOperator func(location string) bool, log *slog.Logger) signingUseFetcher {
	return signingUseFetcher{
		fetcher: newJWKSFetcher(mf.RetryableClient()), operator: newJWKSFetcher(mf.OperatorRetryableClient()),
		isOperator: isOperator, log: log,
	}
}

// fetcherFor is the fetcher of location: operator for an operator
// client's jwks_uri.
func (f signingUseFetcher) fetcherFor(location string) *jwksFetcher {
	if f.operator != nil && f.isOperator != nil && f.isOperator(location) {
		return f.operator
	}
	return f.fetcher
}

var _ fosite.JWKSFetcherStrategy = signingUseFetcher{}

// Resolve is fosite.JWKSFetcherStrategy's: the fetcher's set of location
// with clients.AssertionKeys applied.
func (f signingUseFetcher) Resolve(ctx context.Context, location string, ignoreCache bool) (*josev3.JSONWebKeySet, error) {
	set, err := f.fetcherFor(location).ResolveAssertionKeys(ctx, location, ignoreCache)
	if err != nil {
		why := jwksFetchFailure(err)
		// Once per failed fetch: the failure is remembered and answered
		// without a GET until it expires (jwksFailureTTL), and logged
		// with the first assertion it refuses only (firstReport). A
		// refusal of the fetch bound is answered 503 (fetchBusy) and is
		// the guarded client's to log (bounded: a line a minute at most).
		if !fetchBusy(ctx, err) && f.log != nil && firstReport(err) {
			f.log.WarnContext(ctx, "client jwks_uri fetch failed: client authentication refused (invalid_client)", "jwks_uri", location, "failure", why,
				"err", err.Error())
		}
		return nil, jwksFetchError(why, err)
	}
	return set, nil
}

// jwksFetchError is a failed fetch of a private_key_jwt client's jwks_uri
// (why: jwksFetchFailure) as the token, revocation and introspection
// endpoints answer it: 401 invalid_client, RFC 6749 §5.2's "client
// authentication failed" — the assertion cannot be verified without the
// client's keys, and the keys are the client's to serve. fosite's own
// fetcher answered server_error (500), which told the client the fault was this
// server's and an operator that the auth-server failed, though nothing of
// it did; a 503 would have the client retry, and an operator's alerts
// fire, for the client's own outage. The description names what failed in
// fixed words (never an address: clients.FetchFailure); the log has the
// detail.
func jwksFetchError(why string, err error) error {
	return fosite.ErrInvalidClient.WithHintf("The client's jwks_uri could not be used to verify the client assertion: %s.", why).WithWrap(err)
}

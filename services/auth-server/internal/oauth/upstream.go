package oauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/zitadel/oidc/v3/pkg/client"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/tollgate/tollgate/services/auth-server/internal/config"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// Identity is the user the upstream IdP vouched for.
type Identity struct {
	Subject  string         `json:"sub"`
	AuthTime time.Time      `json:"auth_time"`
	Profile  tokens.Profile `json:"profile"`
	// Issuer is the verified iss of the upstream ID token that vouched for
	// Subject (for Entra ID multi-tenant, it names the user's tenant): the
	// audit log's upstream_issuer. Empty in a consent request stored before
	// it was recorded.
	Issuer string `json:"iss,omitempty"`
}

// errUpstreamUnreachable means discovery or the token endpoint could not be
// reached: the client gets temporarily_unavailable.
var errUpstreamUnreachable = errors.New("upstream identity provider unreachable")

// errVerifiedClaim means the provider sent email_verified (or, seen only by
// the library's decoding, phone_number_verified) as something other than a
// boolean (OpenID Connect Core §5.1) or the string "true"/"false" that
// Cognito and others send: the sign-in is refused with server_error saying
// so, rather than the value passing for false.
var errVerifiedClaim = errors.New("is neither true nor false (a boolean, OpenID Connect Core §5.1, or the string \"true\" or \"false\")")

// errExchangeUnanswered marks a code exchange the token endpoint did not
// answer (tokenEndpointOutage): the code may not be spent at the
// provider, so the callback may try it again (Server.keepForRetry).
var errExchangeUnanswered = errors.New("token endpoint")

// tokenEndpointOutage reports whether err, of the code exchange's request
// to the token endpoint (golang.org/x/oauth2's Exchange, with a client
// secret or a client assertion), is an outage rather than an answer: a
// network error (no answer, or none read), or 502, 503 or 504 without an
// OAuth error (RFC 9110 §15.6.3-5: at or behind the provider's front).
// A failure of the ID token's JWKS fetch, which comes after the token
// endpoint answered, is not (idTokenKeysError).
func tokenEndpointOutage(err error) bool {
	if idTokenKeysError(err) != nil {
		return false
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.ErrorCode != "" || re.Response == nil {
			return false
		}
		switch re.Response.StatusCode {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// exchangeError classifies err, of rp.CodeExchange (the token endpoint's
// answer, then the ID token's verification, which fetches the JWKS):
//   - the JWKS fetch failed (*keysFetchError, checked first: a network
//     error of the JWKS is not the token endpoint's, and the code is spent
//     by then): an outage (providerOutage) is errUpstreamUnreachable
//     "jwks", another failure errCodeExchange;
//   - the token endpoint did not answer (tokenEndpointOutage):
//     errUpstreamUnreachable and errExchangeUnanswered;
//   - anything else is errCodeExchange (a refusal upstreamRefusal reads,
//     or a verification failure).
func exchangeError(err error) error {
	if je := idTokenKeysError(err); je != nil {
		if providerOutage(je) {
			return fmt.Errorf("%w: jwks: %w", errUpstreamUnreachable, err)
		}
		return fmt.Errorf("%w: %w", errCodeExchange, err)
	}
	if tokenEndpointOutage(err) {
		return fmt.Errorf("%w: %w: %w", errUpstreamUnreachable, errExchangeUnanswered, err)
	}
	return fmt.Errorf("%w: %w", errCodeExchange, libraryVerifiedClaim(err))
}

// errCodeExchange marks a failure of the code exchange itself (the token
// endpoint's answer and its ID token's verification), not of userinfo:
// upstreamRefusal reads only these.
var errCodeExchange = errors.New("code exchange")

// libraryVerifiedClaim recognizes zitadel/oidc's refusal of a *_verified
// claim (oidc.Bool, which takes true, false, "true" and "false") in an ID
// token or userinfo response, which it reports only as text.
func libraryVerifiedClaim(err error) error {
	if err != nil && strings.Contains(err.Error(), " into Bool") {
		return fmt.Errorf("email_verified or phone_number_verified %w: %s", errVerifiedClaim, logSafe(err))
	}
	return err
}

// upstreamRefusal is how the provider's token endpoint refused the code
// exchange: the error code of its answer (RFC 6749 §5.2; "" when it sent
// none, or the exchange failed otherwise) and the HTTP status (0 when
// unknown). golang.org/x/oauth2 (rp.CodeExchange's Exchange, with a client
// secret or a private_key_jwt assertion) keeps both in a RetrieveError;
// zitadel/oidc's HTTP helper keeps no status with a decoded error, and
// reports an answer without one as text (libraryStatus).
func upstreamRefusal(err error) (code string, status int) {
	if !errors.Is(err, errCodeExchange) {
		return "", 0
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return re.ErrorCode, status
	}
	var oe *oidc.Error
	if errors.As(err, &oe) {
		return string(oe.ErrorType), 0
	}
	return "", libraryStatus(err)
}

// libraryStatus is the HTTP status of zitadel/oidc's own error of an
// answer that is no OAuth error (libraryHTTPStatus), found as an error of
// err's chain — never in text appended to another error, which may hold
// the provider's body ("… http status not ok: 401 …" in an undecodable
// answer or an error page), nor below a failed fetch of the ID token's
// JWKS (*keysFetchError: that status is the JWKS endpoint's, not the
// token endpoint's). 0 when none is.
func libraryStatus(err error) int {
	return inChain(err, func(e error) (int, bool) {
		if _, ok := e.(*keysFetchError); ok {
			return 0, true
		}
		return libraryHTTPStatus(e)
	})
}

// libraryHTTPStatus reads zitadel/oidc's error of an answer whose status
// is not 200 and whose body is no OAuth error (RFC 6749 §5.2): its HTTP
// helper (pkg/http.HttpRequest, v3.51) reports it as text only, statusNotOK,
// the status ("503 Service Unavailable") and the whole body, with no type
// or status field to read. This is the one place that text is matched, on
// e's own text from its start (e itself, not what it wraps): ok when it is
// that error, status 0 when no number follows. TestLibraryErrorTexts pins
// it to the library's real error over HTTP, so an upgrade that changes the
// text fails there rather than turning outages into refusals.
func libraryHTTPStatus(e error) (status int, ok bool) {
	rest, ok := strings.CutPrefix(e.Error(), statusNotOK)
	if !ok {
		return 0, false
	}
	status, _ = strconv.Atoi(strings.SplitN(rest, " ", 2)[0])
	return status, true
}

// inChain walks err's chain depth first, as errors.As does (both Unwrap
// forms), calling at on each error. When at reports done, its value is
// the answer for that error and nothing it wraps is visited; a joined
// error's answer is the first non-zero one of its branches. zitadel/oidc
// reports some failures only as text, so libraryStatus matches each
// error's own text at its start, never text appended after it (which may
// hold the provider's body).
func inChain[T comparable](err error, at func(error) (T, bool)) T {
	var zero T
	if err == nil {
		return zero
	}
	if v, done := at(err); done {
		return v
	}
	switch e := err.(type) {
	case interface{ Unwrap() error }:
		return inChain(e.Unwrap(), at)
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			if v := inChain(inner, at); v != zero {
				return v
			}
		}
	}
	return zero
}

// providerOutage reports whether err, of a request to the provider's JWKS
// or userinfo endpoint, is an outage rather than an answer: a network
// error, or a 502, 503 or 504 (RFC 9110 §15.6.3-5) — at or behind the
// provider's front, as the token endpoint's same statuses are. The client
// gets temporarily_unavailable; any other failure stays server_error.
func providerOutage(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	switch libraryStatus(err) {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// idTokenKeysError is the error of the ID token's JWKS fetch in err's chain
// (upstreamKeys' *keysFetchError), or nil when the exchange failed
// otherwise.
func idTokenKeysError(err error) error {
	var ke *keysFetchError
	if errors.As(err, &ke) {
		return ke.err
	}
	return nil
}

// refusedCredentials reports whether a token endpoint refusal (code,
// status) is of this server's client authentication: invalid_client or
// unauthorized_client, or HTTP 401 whatever the body says — RFC 6749 §5.2
// answers 401 only for a failed client authentication, and providers
// send it without a body or with another code (Auth0: access_denied,
// "Unauthorized", for a wrong client secret) — unless the body names
// another code RFC 6749 §5.2 registers (a 401 invalid_grant is the code's
// refusal, as it says).
func refusedCredentials(code string, status int) bool {
	if code == "invalid_client" || code == "unauthorized_client" {
		return true
	}
	return status == http.StatusUnauthorized && !slices.Contains(exchangeRefusalCodes, code)
}

// exchangeRefusalCodes are the token endpoint error codes of RFC 6749
// §5.2 that are not of the client's authentication.
var exchangeRefusalCodes = []string{"invalid_request", "invalid_grant", "unsupported_grant_type", "invalid_scope"}

// emailVerified reads an email_verified value: a boolean, the string "true"
// or "false", or nothing (false).
func emailVerified(name string, v any) (bool, error) {
	switch v := v.(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	case string:
		switch v {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	}
	b, _ := json.Marshal(v)
	if len(b) > 64 {
		b = append(b[:64], "…"...)
	}
	return false, fmt.Errorf("email_verified (claim %s = %s) %w", name, b, errVerifiedClaim)
}

// errUpstreamMismatch means the provider's discovery document says it does
// not support what the auth-server is configured for (a response mode): no
// sign-in can work until the setting or the provider changes, so the client
// gets server_error, not temporarily_unavailable.
var errUpstreamMismatch = errors.New("upstream identity provider does not support the configuration")

// Upstream is the relying party towards the upstream OIDC IdP (zitadel/oidc
// rp: discovery, JWKS, ID-token verification, userinfo). It is created on
// first use and retried until discovery succeeds, so the auth-server starts
// even while the IdP is still starting.
//
// Concurrent requests share one discovery in flight (singleflight) and no
// lock is held across the network call: with an unreachable IdP every
// waiting request fails after one discovery timeout (not one timeout per
// request in turn), and a request whose context ends stops waiting at once.
type Upstream struct {
	cfg      config.Upstream
	redirect string
	client   *http.Client
	observe  func(op string, start time.Time, err error)
	// keyLifetime and keyRefetch bound the ID tokens' key set
	// (upstreamKeys); tests shorten them before the first use.
	keyLifetime, keyRefetch time.Duration

	discovery singleflight.Group
	mu        sync.Mutex // guards party, failed and issParam; never held across I/O
	party     rp.RelyingParty
	// failed is the last discovery's failure and when it may be tried
	// again (nil once one succeeded, or before the first).
	failed *discoveryFailure
	// issParam is the discovery document's
	// authorization_response_iss_parameter_supported (RFC 9207 §3): the
	// provider sends iss in every authorization response.
	issParam bool
	// assertions signs private_key_jwt client assertions, apple mints
	// Sign in with Apple's client secret (both nil with a client secret);
	// set by discover before party.
	assertions *assertionSigner
	apple      *appleSecret
}

// discoveryTimeout bounds one discovery: it runs detached from the request
// that started it, since other requests may be waiting on it.
const discoveryTimeout = 10 * time.Second

// discoveryRetryAfter is how long a failed discovery is answered again,
// without a request to the provider, before the next request tries anew:
// while the provider is down, discovery costs it one request per
// discoveryRetryAfter, not one per sign-in (the singleflight shares only
// concurrent ones), and a sign-in is answered at once rather than after a
// connection attempt or discoveryTimeout each. Once the provider is back,
// the first request after it discovers again: no restart. The callback's
// page says to retry after it (Retry-After, RFC 9110 §10.2.3).
const discoveryRetryAfter = 2 * time.Second

// discoveryFailure is a failed discovery's error, answered again until
// until.
type discoveryFailure struct {
	err   error
	until time.Time
}

type nonceKey struct{}

// NewUpstream returns the bridge; redirect is our /oauth/callback.
func NewUpstream(cfg config.Upstream, redirect string, client *http.Client, observe func(string, time.Time, error)) *Upstream {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second, Transport: upstreamTransport(cfg)}
	}
	return &Upstream{cfg: cfg, redirect: redirect, client: client, observe: observe,
		keyLifetime: upstreamKeyLifetime, keyRefetch: upstreamKeyRefetch}
}

func (u *Upstream) rp(ctx context.Context) (rp.RelyingParty, error) {
	u.mu.Lock()
	party, failed := u.party, u.failed
	u.mu.Unlock()
	if party != nil {
		return party, nil
	}
	if failed != nil && time.Now().Before(failed.until) {
		return nil, failed.err
	}
	ch := u.discovery.DoChan("discovery", func() (any, error) {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), discoveryTimeout)
		defer cancel()
		party, err := u.discover(dctx)
		u.mu.Lock()
		u.failed = nil
		if err != nil {
			u.failed = &discoveryFailure{err: err, until: time.Now().Add(discoveryRetryAfter)}
		}
		u.mu.Unlock()
		return party, err
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(rp.RelyingParty), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: discovery: %w", errUpstreamUnreachable, ctx.Err())
	}
}

// upstreamClockSkew is how far ahead of ours the provider's clock may run:
// an ID token issued "in the future" by up to this much is accepted. Its
// expiry is checked without leeway (upstreamIDClaims).
const upstreamClockSkew = 30 * time.Second

// upstreamIDClaims are the upstream ID token's claims as the verifier
// reads them. zitadel/oidc checks iat and exp against now plus one offset
// (rp.WithIssuedAtOffset): with upstreamClockSkew there, an ID token was
// refused unless more than 30 s of its life remained, and one valid for
// 30 s or less always. OpenID Connect Core 1.0 §3.1.3.7 (9): the current
// time MUST be before exp. GetExpiration adds the offset back, so the
// check is now < exp, while iat keeps the skew.
type upstreamIDClaims struct {
	oidc.IDTokenClaims
}

// GetExpiration is exp plus upstreamClockSkew, the verifier's offset.
func (c *upstreamIDClaims) GetExpiration() time.Time {
	return c.IDTokenClaims.GetExpiration().Add(upstreamClockSkew)
}

// googleIssuer is Google's issuer. Its ID tokens may carry iss without the
// scheme, accounts.google.com, which OpenID Connect Core 1.0 §15.6.2 allows
// for Google alone; no other issuer gets that exception.
const googleIssuer = "https://accounts.google.com"

// discover runs OpenID Connect discovery and keeps the relying party.
//
// The issuer is UPSTREAM_ISSUER_URL character for character (Discovery 1.0
// §4.3; Auth0's ends in a slash), except:
//   - a configured issuer that differs from the discovery document's only by
//     a trailing slash is taken in the document's spelling (the same
//     document is fetched either way, §4.1), as releases that dropped the
//     slash from the setting did;
//   - an Entra ID multi-tenant issuer (…/common/v2.0, …/organizations/v2.0)
//     expects the document's template …/{tenantid}/v2.0, and an ID token's
//     iss must be that template with an allowed tenant id (a GUID)
//     substituted, its tid claim that same tenant (see entraIssuer and
//     Exchange);
//   - Google's ID tokens may say accounts.google.com (Core §15.6.2).
func (u *Upstream) discover(ctx context.Context) (rp.RelyingParty, error) {
	start := time.Now()
	// The key was checked at start-up (config.Load); an error here is a bug.
	var assertions *assertionSigner
	var apple *appleSecret
	switch {
	case u.cfg.AppleTeamID != "":
		var err error
		if apple, err = newAppleSecret(u.cfg); err != nil {
			return nil, err
		}
	case u.cfg.ClientKey != "":
		var err error
		if assertions, err = newAssertionSigner(u.cfg); err != nil {
			return nil, err
		}
	}
	wellKnown := strings.TrimSuffix(u.cfg.Issuer, "/") + oidc.DiscoveryEndpoint
	issuers := []string{u.cfg.Issuer}
	var iss oidc.ISSVerifier
	if template, ok := config.EntraMultiTenant(u.cfg.Issuer); ok {
		issuers = []string{template}
		iss = entraIssuer(template, u.cfg.AllowedTenants)
	} else if strings.HasSuffix(u.cfg.Issuer, "/") {
		issuers = append(issuers, strings.TrimSuffix(u.cfg.Issuer, "/"))
	} else {
		issuers = append(issuers, u.cfg.Issuer+"/")
	}
	var party rp.RelyingParty
	var err error
	// zitadel/oidc keeps no discovery field it does not use: tap reads
	// authorization_response_iss_parameter_supported from the document
	// as the library fetches it (one request, as before).
	tap := &discoveryTap{wellKnown: wellKnown}
	tapped := *u.client
	tap.next = tapped.Transport
	if tap.next == nil {
		tap.next = http.DefaultTransport
	}
	tapped.Transport = tap
	for _, issuer := range issuers {
		tap.answer.Store(nil)
		verifier := iss
		if issuer == googleIssuer {
			verifier = func(got string) error {
				if got != googleIssuer && got != "accounts.google.com" {
					return fmt.Errorf("%w: expected %s or accounts.google.com, got %q", oidc.ErrIssuerInvalid, googleIssuer, got)
				}
				return nil
			}
		}
		vopts := []rp.VerifierOption{
			rp.WithNonce(func(ctx context.Context) string {
				n, _ := ctx.Value(nonceKey{}).(string)
				return n
			}),
			rp.WithIssuedAtOffset(upstreamClockSkew),
		}
		if verifier != nil {
			vopts = append(vopts, rp.WithISSVerifier(verifier))
		}
		opts := []rp.Option{
			rp.WithHTTPClient(&tapped),
			rp.WithCustomDiscoveryUrl(wellKnown),
			// ES256, PS256…: the algorithms the provider says it signs ID
			// tokens with (Discovery 1.0 §3), not only RS256; the key is
			// still the JWKS's, so a symmetric alg finds none.
			rp.WithSigningAlgsFromDiscovery(),
			rp.WithVerifierOpts(vopts...),
		}
		if u.cfg.ClientKey != "" {
			// private_key_jwt (OpenID Connect Core §9) or Sign in with
			// Apple's client secret (client_secret_post, RFC 6749 §2.3.1):
			// Exchange adds the assertion or the secret (clientAuth);
			// client_id goes in the form (no Basic header: one
			// authentication method per request, RFC 6749 §2.3).
			opts = append(opts, rp.WithAuthStyle(oauth2.AuthStyleInParams))
		}
		party, err = rp.NewRelyingPartyOIDC(ctx, issuer, u.cfg.ClientID, u.cfg.ClientSecret, u.redirect, u.cfg.Scopes, opts...)
		if !errors.Is(err, oidc.ErrIssuerInvalid) {
			break
		}
	}
	// What the provider answered decides, not the library's error text:
	// an answer that is no usable discovery document — not JSON, without
	// a member the sign-in needs (which the library takes, to fail
	// later), a status other than 200 and an outage's — or a document
	// naming another issuer is a misconfiguration no retry mends: the
	// client gets server_error, the operator the reason in the log. A
	// network error or a 502, 503 or 504 is an outage
	// (errUpstreamUnreachable): temporarily_unavailable, tried again
	// after discoveryRetryAfter.
	answer := tap.answer.Load()
	switch {
	case answer != nil && answer.problem != "", err != nil && answer != nil && answer.status != http.StatusOK && !answer.outage():
		err = discoveryError(u.cfg.Issuer, wellKnown, answer)
	case errors.Is(err, oidc.ErrIssuerInvalid):
		// Discovery 1.0 §4.3. zitadel/oidc's client.Discover answers a
		// mismatch with the bare oidc.ErrIssuerInvalid; the document's
		// issuer is the tap's.
		var found string
		if answer != nil {
			found = answer.issuer
		}
		err = fmt.Errorf("%w: UPSTREAM_ISSUER_URL is %q, but the provider's discovery document (%s) says issuer %s (OpenID Connect Discovery 1.0 §4.3: they must be identical)",
			errUpstreamMismatch, u.cfg.Issuer, wellKnown, quoteBounded(found, maxLoggedIssuer))
	}
	if err == nil && (u.cfg.ResponseMode == config.ResponseModeFormPost || u.cfg.ClientKey != "") {
		err = u.checkSupport(ctx, party.Issuer(), wellKnown)
	}
	u.observe("discovery", start, err)
	if errors.Is(err, errUpstreamMismatch) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%w: discovery: %v", errUpstreamUnreachable, err)
	}
	// The ID tokens' keys: zitadel/oidc's remote key set, refetched on
	// a signature failure under a known kid and dropped after a lifetime
	// (upstreamKeys). party is not shared yet: nothing reads the verifier.
	if answer != nil {
		party.IDTokenVerifier().KeySet = u.newKeys(&tapped, answer.jwksURI)
	}
	u.mu.Lock()
	u.assertions, u.apple = assertions, apple
	u.issParam = answer != nil && answer.issParam
	u.party = party
	u.mu.Unlock()
	return party, nil
}

// checkSupport refuses what the discovery document says the provider does
// not do (Discovery 1.0 §3): UPSTREAM_RESPONSE_MODE=form_post with
// response_modes_supported listed without form_post (OAuth 2.0 Form Post
// Response Mode §2), a client key with token_endpoint_auth_methods_supported
// listed without private_key_jwt (OpenID Connect Core §9), and
// UPSTREAM_APPLE_TEAM_ID with it listed without client_secret_post (the
// client secret JWT goes in the form, RFC 6749 §2.3.1). A document
// without the list is taken at the operator's word: the defaults it implies
// (query and fragment; client_secret_basic) are often left unstated by
// providers that do more.
func (u *Upstream) checkSupport(ctx context.Context, issuer, wellKnown string) error {
	doc, err := client.Discover(ctx, issuer, u.client, wellKnown)
	if err != nil {
		return err
	}
	if modes := doc.ResponseModesSupported; u.cfg.ResponseMode == config.ResponseModeFormPost && len(modes) > 0 && !slices.Contains(modes, config.ResponseModeFormPost) {
		return fmt.Errorf("%w: UPSTREAM_RESPONSE_MODE=form_post, but the provider's discovery document lists response_modes_supported %q without form_post: set UPSTREAM_RESPONSE_MODE=query",
			errUpstreamMismatch, modes)
	}
	if methods := doc.TokenEndpointAuthMethodsSupported; u.cfg.AppleTeamID != "" && len(methods) > 0 && !slices.Contains(methods, oidc.AuthMethodPost) {
		return fmt.Errorf("%w: UPSTREAM_APPLE_TEAM_ID is set (a client secret JWT sent by client_secret_post), but the provider's discovery document lists token_endpoint_auth_methods_supported %q without client_secret_post",
			errUpstreamMismatch, methods)
	}
	if methods := doc.TokenEndpointAuthMethodsSupported; u.cfg.ClientKey != "" && u.cfg.AppleTeamID == "" && len(methods) > 0 && !slices.Contains(methods, oidc.AuthMethodPrivateKeyJWT) {
		return fmt.Errorf("%w: UPSTREAM_CLIENT_KEY_FILE is set (private_key_jwt), but the provider's discovery document lists token_endpoint_auth_methods_supported %q without private_key_jwt: use a client secret",
			errUpstreamMismatch, methods)
	}
	return nil
}

// discoveryTap passes requests on to next and records the final answer
// of the discovery document's URL — directly or at the end of its
// redirects — as a discoveryAnswer: its status and, for a 200, the
// members the library drops (authorization_response_iss_parameter_supported,
// jwks_uri, and the issuer of a document the library refuses) and what
// makes it unusable. The body is handed on unchanged for the library to
// read.
type discoveryTap struct {
	wellKnown string
	next      http.RoundTripper
	answer    atomic.Pointer[discoveryAnswer]
}

func (t *discoveryTap) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || firstRequest(req).URL.String() != t.wellKnown || (resp.StatusCode >= 300 && resp.StatusCode < 400 && resp.Header.Get("Location") != "") {
		return resp, err
	}
	var body []byte
	if resp.StatusCode == http.StatusOK {
		body, err = io.ReadAll(io.LimitReader(resp.Body, maxDiscoveryDocument+1))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
	}
	t.answer.Store(readDiscoveryAnswer(resp.StatusCode, resp.Status, body))
	return resp, nil
}

// firstRequest is the request that req's chain of redirects started from:
// http.Client sends each hop through the transport with Response set to
// the redirect that led to it.
func firstRequest(req *http.Request) *http.Request {
	for req.Response != nil && req.Response.Request != nil {
		req = req.Response.Request
	}
	return req
}

// errResponseIssuer refuses an authorization response whose iss is not
// the provider's, or that has none from a provider that says it always
// sends one (RFC 9207 §2.4): it may come from another authorization
// server (a mix-up attack, RFC 9700 §4.4).
var errResponseIssuer = errors.New("the authorization response's iss is not the identity provider's issuer (RFC 9207 §2.4)")

// maxLoggedIssuer bounds an iss repeated in an error: it is whatever the
// callback URL carried.
const maxLoggedIssuer = 256

// CheckResponseIssuer checks the iss parameter of the provider's
// authorization response q, success or error alike (RFC 9207 §2.4): when
// present it must be the provider's issuer (the discovery document's,
// compared as the ID token's iss is: exactly, or as entraIssuer and the
// Google exception allow); when absent, the provider must not advertise
// authorization_response_iss_parameter_supported. A provider that neither
// sends nor advertises it is accepted (RFC 9207 §2.4: the client then
// relies on other means — here the ID token's iss, the PKCE verifier and
// the per-provider redirect URI).
func (u *Upstream) CheckResponseIssuer(ctx context.Context, q url.Values) error {
	party, err := u.rp(ctx)
	if err != nil {
		return err
	}
	u.mu.Lock()
	advertised := u.issParam
	u.mu.Unlock()
	got, present := q["iss"]
	switch {
	case !present && advertised:
		return fmt.Errorf("%w: it has none, but the provider's discovery document says authorization_response_iss_parameter_supported", errResponseIssuer)
	case !present:
		return nil
	case len(got) != 1:
		return fmt.Errorf("%w: it has %d", errResponseIssuer, len(got))
	}
	iss := got[0]
	quoted := func() string {
		if len(iss) > maxLoggedIssuer {
			return strconv.Quote(iss[:maxLoggedIssuer]) + "…"
		}
		return strconv.Quote(iss)
	}
	if v := party.IDTokenVerifier().ISS; v != nil {
		if v(iss) != nil {
			return fmt.Errorf("%w: %s", errResponseIssuer, quoted())
		}
		return nil
	}
	if iss != party.Issuer() {
		return fmt.Errorf("%w: %s, want %q", errResponseIssuer, quoted(), party.Issuer())
	}
	return nil
}

// entraIssuer accepts an ID token iss that is template with {tenantid}
// replaced by a tenant id (a GUID) of allowed ("*": any).
func entraIssuer(template string, allowed []string) oidc.ISSVerifier {
	prefix, suffix, _ := strings.Cut(template, "{tenantid}")
	return func(got string) error {
		tenant, ok := strings.CutPrefix(got, prefix)
		if ok {
			tenant, ok = strings.CutSuffix(tenant, suffix)
		}
		if !ok || !config.IsTenantID(tenant) {
			return fmt.Errorf("%w: %q is not %s with a tenant id", oidc.ErrIssuerInvalid, got, template)
		}
		if !slices.Contains(allowed, "*") && !slices.Contains(allowed, tenant) {
			return fmt.Errorf("%w: tenant %s is not in UPSTREAM_ALLOWED_TENANTS", oidc.ErrIssuerInvalid, tenant)
		}
		return nil
	}
}

// Ready reports whether discovery has succeeded (or succeeds now).
func (u *Upstream) Ready(ctx context.Context) error {
	_, err := u.rp(ctx)
	return err
}

// Freshness is what a client asked of the user's authentication (OpenID
// Connect Core 1.0 §3.1.2.1): prompt=login, and max_age in seconds (nil:
// not asked).
type Freshness struct {
	PromptLogin bool
	MaxAge      *int64
}

// AuthURL is where the browser goes to log in upstream, with our state,
// nonce and S256 PKCE challenge, and the client's prompt=login (unless
// UPSTREAM_FORWARD_PROMPT_LOGIN is off) and max_age.
func (u *Upstream) AuthURL(ctx context.Context, state, nonce, verifier string, f Freshness) (string, error) {
	party, err := u.rp(ctx)
	if err != nil {
		return "", err
	}
	opts := []rp.AuthURLOpt{
		rp.WithCodeChallenge(oidc.NewSHACodeChallenge(verifier)),
		rp.AuthURLOpt(rp.WithURLParam("nonce", nonce)),
	}
	if f.PromptLogin && u.cfg.ForwardPromptLogin {
		opts = append(opts, rp.AuthURLOpt(rp.WithURLParam("prompt", oidc.PromptLogin)))
	}
	if f.MaxAge != nil {
		opts = append(opts, rp.AuthURLOpt(rp.WithURLParam("max_age", strconv.FormatInt(*f.MaxAge, 10))))
	}
	if u.cfg.ResponseMode == config.ResponseModeFormPost {
		opts = append(opts, rp.AuthURLOpt(rp.WithURLParam("response_mode", config.ResponseModeFormPost)))
	}
	return rp.AuthURL(state, party, opts...), nil
}

// Exchange redeems the upstream code, verifies the ID token (issuer,
// audience, expiry, signature via JWKS, nonce), fetches userinfo, requires
// the same subject, and maps the profile claims.
func (u *Upstream) Exchange(ctx context.Context, code, verifier, nonce string) (*Identity, error) {
	party, err := u.rp(ctx)
	if err != nil {
		return nil, err
	}
	opts, err := u.clientAuth(party)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	toks, err := rp.CodeExchange[*upstreamIDClaims](context.WithValue(ctx, nonceKey{}, nonce), code, party, append(opts, rp.WithCodeVerifier(verifier))...)
	u.observe("token", start, err)
	if err != nil {
		return nil, exchangeError(err)
	}
	sub := toks.IDTokenClaims.GetSubject()
	if template, ok := config.EntraMultiTenant(u.cfg.Issuer); ok {
		// The iss passed entraIssuer; the tenant it names must be the
		// token's tid (Microsoft identity platform: validate the issuer
		// against the tid claim of a multi-tenant token).
		prefix, suffix, _ := strings.Cut(template, "{tenantid}")
		tenant := strings.TrimSuffix(strings.TrimPrefix(toks.IDTokenClaims.GetIssuer(), prefix), suffix)
		if tid, _ := toks.IDTokenClaims.Claims["tid"].(string); tid != tenant {
			return nil, fmt.Errorf("code exchange: %w: tid %q is not the issuer's tenant %s", oidc.ErrIssuerInvalid, tid, tenant)
		}
	}
	sources := []any{toks.IDTokenClaims}
	// A provider without a userinfo_endpoint (Apple's discovery names
	// none; it is OPTIONAL, Discovery 1.0 §3): the profile is the ID
	// token's.
	if party.UserinfoEndpoint() != "" {
		start = time.Now()
		info, err := rp.Userinfo[*oidc.UserInfo](ctx, toks.AccessToken, toks.TokenType, sub, party)
		u.observe("userinfo", start, err)
		if err != nil {
			if providerOutage(err) {
				return nil, fmt.Errorf("%w: userinfo: %w", errUpstreamUnreachable, err)
			}
			return nil, fmt.Errorf("userinfo: %w", libraryVerifiedClaim(err))
		}
		sources = append(sources, info)
	}
	sets := make([]map[string]any, 0, len(sources))
	claims := map[string]any{}
	for _, src := range sources {
		b, _ := json.Marshal(src)
		m := map[string]any{}
		_ = json.Unmarshal(b, &m)
		sets = append(sets, m)
		for k, v := range m {
			claims[k] = v // userinfo wins over the ID token
		}
	}
	// auth_time is what the IdP said, or zero when it said nothing: it is
	// never made up (a max_age or prompt=login request then fails, see
	// Server.checkFreshness).
	id := &Identity{Subject: sub, AuthTime: toks.IDTokenClaims.GetAuthTime(), Issuer: toks.IDTokenClaims.GetIssuer()}
	str := func(claim string) string {
		s, _ := claims[u.claimName(claim)].(string)
		return s
	}
	id.Profile = tokens.Profile{
		Name: str("name"), GivenName: str("given_name"), FamilyName: str("family_name"),
		PreferredUsername: str("preferred_username"),
	}
	if id.Profile.Email, id.Profile.EmailVerified, err = u.email(sets); err != nil {
		return nil, err
	}
	return id, nil
}

// claimName is the upstream claim a profile claim is read from
// (UPSTREAM_CLAIM_MAP, or the same name).
func (u *Upstream) claimName(claim string) string {
	if m, ok := u.cfg.ClaimMap[claim]; ok {
		return m
	}
	return claim
}

// email reads the email and whether it is verified as a pair from one
// claim set (the ID token's, then userinfo's: the last that has the email
// claim wins, as for the other claims), never the address of one set with
// the verification of another: email_verified says whether the email
// claim's value was verified (OpenID Connect Core §5.1), so it vouches
// only for that value. The email is verified when that set's
// email_verified is true, or, when that set has none, another set's is for
// the same address; and, with the email mapped to another claim
// (UPSTREAM_CLAIM_MAP=email=…), only when email_verified is mapped as well
// or the set's own email claim is that same address — a verified email
// says nothing of preferred_username. A malformed email_verified in any
// set refuses the sign-in (errVerifiedClaim).
func (u *Upstream) email(sets []map[string]any) (email string, verified bool, err error) {
	emailName, evName := u.claimName("email"), u.claimName("email_verified")
	_, evMapped := u.cfg.ClaimMap["email_verified"]
	from := -1
	for i, set := range sets {
		if _, err := emailVerified(evName, set[evName]); err != nil {
			return "", false, err
		}
		if _, ok := set[emailName]; ok {
			from = i
		}
	}
	if from < 0 {
		return "", false, nil
	}
	email, _ = sets[from][emailName].(string)
	if email == "" {
		return "", false, nil
	}
	// vouches is what set says of email: ok is false when it says nothing.
	vouches := func(set map[string]any) (v, ok bool) {
		if s, _ := set[emailName].(string); s != email {
			return false, false
		}
		if emailName != "email" && !evMapped {
			if s, _ := set["email"].(string); s != email {
				return false, false
			}
		}
		if set[evName] == nil {
			return false, false
		}
		v, _ = emailVerified(evName, set[evName])
		return v, true
	}
	if v, ok := vouches(sets[from]); ok {
		return email, v, nil
	}
	for _, set := range sets {
		if v, ok := vouches(set); ok && v {
			return email, true, nil
		}
	}
	return email, false, nil
}

// maxAppleNamePart bounds each part of the name in Apple's user field.
const maxAppleNamePart = 256

// appleUserName reads the name from the user field Sign in with Apple posts
// with the authorization response on a user's first sign-in only
// ({"name":{"firstName":…,"lastName":…},"email":…}; Apple's "Incorporating
// Sign in with Apple into Other Platforms"). The field is not signed: it is
// display profile at most, never identity — sub and email come from the
// verified ID token, and the field's email is ignored. ok is false when the
// field is absent or not that shape (then nothing is taken from it).
func appleUserName(raw string) (given, family string, ok bool) {
	if raw == "" {
		return "", "", false
	}
	var user struct {
		Name struct {
			FirstName string `json:"firstName"`
			LastName  string `json:"lastName"`
		} `json:"name"`
	}
	if err := json.Unmarshal([]byte(raw), &user); err != nil {
		return "", "", false
	}
	given, family = strings.TrimSpace(user.Name.FirstName), strings.TrimSpace(user.Name.LastName)
	for _, part := range []string{given, family} {
		if len(part) > maxAppleNamePart || strings.ContainsFunc(part, unicode.IsControl) {
			return "", "", false
		}
	}
	return given, family, given != "" || family != ""
}

// withAppleName fills the profile's empty name claims from Apple's user
// field (appleUserName); a name the provider vouched for in the ID token or
// userinfo is kept.
func withAppleName(p tokens.Profile, raw string) tokens.Profile {
	given, family, ok := appleUserName(raw)
	if !ok {
		return p
	}
	if p.GivenName == "" && p.FamilyName == "" {
		p.GivenName, p.FamilyName = given, family
	}
	if p.Name == "" {
		p.Name = strings.TrimSpace(given + " " + family)
	}
	return p
}

// upstreamTransport dials cfg.DialAddr whenever a connection to the
// issuer's host:port is asked for (UPSTREAM_DIAL_ADDR); everything else,
// including the Host header and TLS verification, stays as for the issuer.
func upstreamTransport(cfg config.Upstream) http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.DialAddr == "" {
		return t
	}
	u, err := url.Parse(cfg.Issuer)
	if err != nil {
		return t
	}
	target := u.Host
	if u.Port() == "" {
		port := "443"
		if u.Scheme == "http" {
			port = "80"
		}
		target = net.JoinHostPort(u.Hostname(), port)
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if strings.EqualFold(addr, target) {
			addr = cfg.DialAddr
		}
		return dialer.DialContext(ctx, network, addr)
	}
	return t
}

// loginCookieSameSite is the login cookie's SameSite attribute for
// UPSTREAM_RESPONSE_MODE (see setLoginCookie): Lax for query, None for
// form_post.
func (s *Server) loginCookieSameSite() http.SameSite {
	if s.cfg.Upstream.ResponseMode == config.ResponseModeFormPost {
		return http.SameSiteNoneMode
	}
	return http.SameSiteLaxMode
}

// callbackParams returns the authorization response's parameters: the
// query of a GET with UPSTREAM_RESPONSE_MODE=query (RFC 6749 §4.1.2), the
// form body of a POST with form_post (OAuth 2.0 Form Post Response Mode
// §2). A callback in the other method is refused, as is a POST that is not
// a form or also carries parameters in its query: the answer comes one way
// only. desc is the error description, empty when the parameters are read.
func (s *Server) callbackParams(r *http.Request) (params url.Values, desc string) {
	formPost := s.cfg.Upstream.ResponseMode == config.ResponseModeFormPost
	switch {
	case r.Method == http.MethodPost && !formPost:
		return nil, "the identity provider's answer was POSTed, but this server takes it in the query of a GET (UPSTREAM_RESPONSE_MODE=query); start again from the application"
	case r.Method != http.MethodPost && formPost:
		return nil, "the identity provider's answer came in a GET, but this server takes it as a form POST (UPSTREAM_RESPONSE_MODE=form_post); start again from the application"
	case !formPost:
		return r.URL.Query(), ""
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return nil, "the callback POST must be a form (Content-Type: application/x-www-form-urlencoded)"
	}
	if r.URL.RawQuery != "" {
		return nil, "the callback POST carries parameters in its URL; a form_post answer has them in the body only"
	}
	return r.PostForm, ""
}

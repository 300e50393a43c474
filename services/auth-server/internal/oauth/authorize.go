package oauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"
	"golang.org/x/oauth2"

	"github.com/tollgate/tollgate/services/auth-server/internal/audit"
	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
	"github.com/tollgate/tollgate/services/auth-server/internal/store"
	"github.com/tollgate/tollgate/services/platform/ratelimit"
	"github.com/tollgate/tollgate/services/platform/redisx"
)

// pending is an authorization request waiting for the upstream login. It
// is stored under the hash of our upstream state, single use, with a TTL.
type pending struct {
	Query    string    `json:"query"`
	ClientID string    `json:"client_id"`
	Resource string    `json:"resource"`
	Nonce    string    `json:"nonce"`
	Verifier string    `json:"verifier"`
	Created  time.Time `json:"created"`
	// Browser is the hash of the login cookie of the browser that made the
	// request (loginBinding): only that browser may complete it.
	Browser string `json:"browser"`
	// HintSubject is the subject of the request's id_token_hint, verified
	// when the request was made (idTokenHintSubject); the signed-in user
	// must be it (OpenID Connect Core §3.1.2.1). The hint itself, a signed
	// ID token, is not kept: Query is stored without it.
	HintSubject string `json:"hint_sub,omitempty"`
	// Retries counts the callbacks whose code exchange the token endpoint
	// did not answer, which kept the sign-in (keepForRetry).
	Retries int `json:"retries,omitempty"`
}

// consentRequest waits for the user's decision on the consent page. Its
// Pending has no Verifier or Nonce: they served the upstream code's
// redemption, which came before the page.
type consentRequest struct {
	Pending  pending  `json:"pending"`
	Identity Identity `json:"identity"`
	// CSRFHash is the hash of the page's form token, Browser the hash of
	// the consent cookie of the browser shown the page (consentBinding).
	CSRFHash string `json:"csrf_hash"`
	Browser  string `json:"browser,omitempty"`
}

// consentRecord is a remembered approval: the scopes, resources and
// redirect URIs (exact strings, as the requests named them) the user
// approved for a client. The consent page names the host the user will
// be sent to, so a remembered approval skips the page only for a redirect
// URI among RedirectURIs; a record stored before they were remembered has
// none, and the page is shown again. Issuer is the upstream issuer the
// user who approved had signed in at: the approval counts only for a
// user of that issuer's users (issuerSet.consentCounts); a record stored
// before it was remembered has none and counts for no one.
type consentRecord struct {
	Scopes       []string  `json:"scopes"`
	Resources    []string  `json:"resources"`
	RedirectURIs []string  `json:"redirect_uris,omitempty"`
	Approved     time.Time `json:"approved"`
	Issuer       string    `json:"iss,omitempty"`
}

// unregisteredRedirect describes a refused redirect_uri: the URI itself
// (bounded; the error page HTML-escapes it), so that whoever configures
// the client sees exactly what to register, and the matching rule.
func unregisteredRedirect(redirect, clientID string) string {
	if len(redirect) > 300 {
		redirect = redirect[:300] + "..."
	}
	if len(clientID) > 100 {
		clientID = clientID[:100] + "..."
	}
	return fmt.Sprintf("redirect_uri %q is not registered for client %q: add exactly this URI to the client's redirect_uris "+
		"(exact match required; any port only for http loopback IP literals and a port-less http://localhost, RFC 8252 section 7.3)", redirect, clientID)
}

var challengeFormat = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// maxAuthorizeQuery bounds an authorization request's query string (bytes,
// as sent, percent-encoded; 16 KiB itself is accepted): a CIMD client_id, a
// redirect URI, a resource, the scopes and a state of a few KiB fit many
// times over. A longer one is answered 414 URI Too Long.
const maxAuthorizeQuery = 16 << 10

// authorize validates the request completely, stores it, and sends the
// browser to the upstream IdP. Until the redirect URI is verified errors
// are shown, never redirected; after, they go back with state and iss —
// redirected when the redirect URI is trusted, else as a link on a page
// (redirectError, RFC 9700 §4.11.2).
//
// state is optional (OAuth 2.1 §4.1.1; RFC 9700 §4.7.1): PKCE protects the flow
// against CSRF, and a client that sends no state gets none back. Without
// PKCE (a confidential client that does not require it) state is
// required, so that the flow always has a CSRF defence.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	clientID := q.Get("client_id")
	r, rec := s.withAudit(r, audit.Record{Event: audit.AuthorizationRequest, ClientID: clientID})
	defer s.logAudit(r, rec)
	ctx := r.Context()
	if clientID == "" {
		s.fail(w, r, "authorize", http.StatusBadRequest, "invalid_request", "client_id is required")
		return
	}
	c, err := s.client(ctx, clientID)
	if err != nil {
		if errors.Is(err, store.ErrUnavailable) {
			s.fail(w, r, "authorize", http.StatusServiceUnavailable, "temporarily_unavailable", "the service is temporarily unavailable; retry later")
			return
		}
		if retry, desc, ok := fetchNotDone(err); ok {
			// The client's metadata document was not fetched: too many
			// fetches in flight (brk47 #5), or its server gave no answer
			// (auth49 #2). The client is not verified, so nothing is
			// redirected to it: 503 on a page, Retry-After, as for an
			// outage; the bound logs its refusals itself, the fetcher
			// its failures.
			w.Header().Set("Retry-After", retryAfter(retry))
			s.fail(w, r, "authorize", http.StatusServiceUnavailable, "temporarily_unavailable", desc)
			return
		}
		s.log.InfoContext(r.Context(), "authorize: unknown client", "client_id", clientID, "err", err)
		s.fail(w, r, "authorize", http.StatusBadRequest, "invalid_client", clientDescription(err))
		return
	}
	redirect := q.Get("redirect_uri")
	switch {
	case redirect == "" && len(c.RedirectURIs) != 1:
		s.fail(w, r, "authorize", http.StatusBadRequest, "invalid_request", "redirect_uri is required")
		return
	case redirect != "" && clients.RequestedRedirectProblem(redirect) != nil:
		s.fail(w, r, "authorize", http.StatusBadRequest, "invalid_request", "redirect_uri "+clients.RequestedRedirectProblem(redirect).Error())
		return
	case redirect != "" && !clients.MatchRedirectURI(c.RedirectURIs, redirect):
		s.fail(w, r, "authorize", http.StatusBadRequest, "invalid_request", unregisteredRedirect(redirect, clientID))
		return
	}
	// RFC 6749 §4.1.2.1: a request that fails for a reason other than its
	// client or redirect URI — "includes a parameter more than once" among
	// them — is answered at the redirect URI, so the client learns why
	// (guard refused every repeated parameter on a page the user alone
	// saw). A repeated state has no exact value to return: none is.
	if k := repeatedAuthorizeParam(q); k != "" {
		to, ok := s.verifiedRedirect(w, r, c, redirect)
		if !ok {
			return
		}
		state := ""
		if len(q["state"]) == 1 {
			state = q.Get("state")
		}
		s.metrics.errors.WithLabelValues("authorize", "invalid_request").Inc()
		s.redirectError(w, r, c, to, state, "invalid_request", "parameter "+k+" is repeated")
		return
	}
	// Request objects are not supported (request_parameter_supported and
	// request_uri_parameter_supported are false in the metadata): OpenID
	// Connect Core §6.1, §6.2 and RFC 9101 §10.4 have such a request
	// answered request_not_supported / request_uri_not_supported, sent to
	// the redirect URI verified above. Left to fosite, a request object of
	// a client with registered keys was decoded and its parameters used
	// (an unsigned one too: fosite accepts alg "none" when the client
	// names no request_object_signing_alg), while this handler's checks
	// read the query's.
	for _, p := range [...]struct{ param, code string }{{"request", "request_not_supported"}, {"request_uri", "request_uri_not_supported"}} {
		if q.Has(p.param) {
			to, ok := s.verifiedRedirect(w, r, c, redirect)
			if !ok {
				return
			}
			s.metrics.errors.WithLabelValues("authorize", p.code).Inc()
			s.redirectError(w, r, c, to, q.Get("state"), p.code, "the "+p.param+" parameter is not supported (OpenID Connect Core section 6; "+p.param+"_parameter_supported is false): send the parameters in the query")
			return
		}
	}
	// response_mode: query is the code flow's default and the one mode
	// advertised (response_modes_supported); fosite refused it (its
	// clients declare no response modes), so it is taken out of what
	// fosite reads, and any other mode is refused below, once the
	// redirect URI is verified.
	responseMode := q.Get("response_mode")
	q.Del("response_mode")
	if !q.Has("scope") {
		var def []string
		for _, sc := range clients.DefaultScopes {
			if slices.Contains(c.GetScopes(), sc) {
				def = append(def, sc)
			}
		}
		q.Set("scope", strings.Join(def, " "))
	}
	ar, err := s.newAuthorizeRequest(ctx, requestWithQuery(r, q))
	if err != nil && errors.Is(err, fosite.ErrUnsupportedResponseType) && !q.Has("response_type") {
		// fosite answers a missing response_type unsupported_response_type;
		// RFC 6749 §4.1.2.1 has a missing required parameter invalid_request.
		err = fosite.ErrInvalidRequest.WithHint("response_type is required (RFC 6749 section 4.1.1): send response_type=code.")
	}
	if err != nil {
		s.authorizeError(w, r, ar, s.scopeRefusal(audienceRefusal(err, c), ar))
		return
	}
	// From here on the redirect URI is verified: errors go back to the client.
	redirectErr := func(code, desc string) {
		s.metrics.errors.WithLabelValues("authorize", code).Inc()
		s.redirectError(w, r, ar.GetClient(), ar.GetRedirectURI(), ar.GetState(), code, desc)
	}
	if rt := q.Get("response_type"); rt != "code" {
		redirectErr("unsupported_response_type", "response_type must be code")
		return
	}
	// A client may list a scope that no backend declares right now (its
	// backend is down, or dropped the service): it is not granted, since
	// the consent page could not say what it means (RFC 6749 §4.1.2.1).
	// Refused in the words of a scope this server never supported
	// (scopeRefusal): the client cannot tell the two apart, nor need it.
	if sc := s.unsupportedScope(ar.GetRequestedScopes()); sc != "" {
		s.authorizeError(w, r, ar, scopeNotSupported(sc))
		return
	}
	if responseMode != "" && responseMode != "query" {
		redirectErr("invalid_request", "response_mode must be query")
		return
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	switch {
	case challenge == "" && c.NeedsPKCE():
		redirectErr("invalid_request", "code_challenge with code_challenge_method=S256 is required")
		return
	case challenge == "" && method != "":
		redirectErr("invalid_request", "code_challenge_method without code_challenge")
		return
	case challenge != "" && method != "S256":
		redirectErr("invalid_request", "code_challenge_method must be S256 (plain is not supported)")
		return
	case challenge != "" && !challengeFormat.MatchString(challenge):
		redirectErr("invalid_request", "code_challenge must be the 43-character base64url SHA-256 of the verifier")
		return
	case challenge == "" && ar.GetState() == "":
		redirectErr("invalid_request", "state is required when PKCE is not used (RFC 9700 section 4.7.1)")
		return
	}
	resource := c.DefaultResource()
	switch rs := q["resource"]; {
	case len(rs) > 1:
		redirectErr("invalid_target", "only one resource per request is supported")
		return
	case len(rs) == 1:
		canon, ok := clients.CanonicalResource(c.Resources, s.canonicalResource(rs[0]))
		if !ok {
			redirectErr("invalid_target", resourceRefusal(c))
			return
		}
		resource = canon
	}
	fresh, ferr := freshnessOf(q)
	if ferr != "" {
		redirectErr("invalid_request", ferr)
		return
	}
	if prompts := strings.Fields(q.Get("prompt")); slices.Contains(prompts, "none") && len(prompts) > 1 {
		// OpenID Connect Core §3.1.2.1: "If this parameter contains none
		// with any other value, an error is returned."
		redirectErr("invalid_request", "prompt=none cannot be combined with other prompt values")
		return
	}
	if slices.Contains(strings.Fields(q.Get("prompt")), "none") {
		// OpenID Connect Core 1.0 §3.1.2.1: prompt=none with no session
		// here (the auth-server keeps no login session of its own).
		redirectErr("login_required", "prompt=none is not supported: the user must sign in at the identity provider")
		return
	}
	var hintSubject string
	if hint := q.Get("id_token_hint"); hint != "" && idTokenHintApplies(ar) {
		// Refused here, before the user signs in (fosite would check the
		// hint only when it issues the code, after the sign-in).
		var ok bool
		var why string
		if hintSubject, ok, why = s.idTokenHintSubject(r.Context(), hint); !ok {
			s.log.InfoContext(r.Context(), "id_token_hint refused", "client_id", c.GetID(), "reason", why)
			redirectErr("invalid_request", idTokenHintRefused)
			return
		}
	}
	// The request waits for the sign-in in Redis (LOGIN_TTL) without its
	// id_token_hint: the flow needs only the subject it names, checked
	// after the sign-in (callback); without openid the hint means nothing.
	q.Del("id_token_hint")
	stored := parkedQuery(q)
	if kib := len(stored) / 1024; kib > 0 {
		// Anyone may park a request, so the bytes an address parks are
		// limited, not only its requests: see parkedQuery.
		res, err := s.limiter.AllowN(ctx, "authorize-kib", "addr:"+s.addrs.Subject(r), parkedBudget(s.cfg.RateAuthorize), kib)
		switch s.limitVerdict(w, r, "authorize", res, err) {
		case limitOutage:
			redirectErr("temporarily_unavailable", limiterUnavailable)
			return
		case limitRefused:
			// The error goes to the client in the redirect (RFC 6749
			// §4.1.2.1: error, error_description, state — no header), so
			// the delay is said there. Retry-After on the 302 would ask
			// the browser to wait before following it (RFC 9110 §10.2.3),
			// not the client before asking again, and browsers ignore it.
			wait := ratelimit.RetryAfterSeconds(res.RetryAfter)
			w.Header().Del("Retry-After")
			redirectErr("temporarily_unavailable", fmt.Sprintf("too many large authorization requests from this address (%d KiB of parameters); retry in %s s or send a shorter state", kib, wait))
			return
		}
	}
	state, nonce, verifier := randomID(), randomID(), oauth2.GenerateVerifier()
	browser := s.loginBinding(r)
	p := pending{Query: stored, ClientID: c.ID, Resource: resource, Nonce: nonce, Verifier: verifier, Created: s.now(), Browser: redisx.Hash(browser), HintSubject: hintSubject}
	if err := s.store.PutJSON(ctx, "pending", state, p, s.cfg.LoginTTL); err != nil {
		redirectErr("temporarily_unavailable", "the service is temporarily unavailable; retry later")
		return
	}
	target, err := s.upstream.AuthURL(ctx, state, nonce, verifier, fresh)
	if errors.Is(err, errUpstreamMismatch) {
		s.log.ErrorContext(r.Context(), "upstream does not support the configuration", "err", err)
		_ = s.store.Delete(ctx, "pending", state)
		redirectErr("server_error", "the identity provider does not match this server's upstream settings (UPSTREAM_ISSUER_URL, UPSTREAM_RESPONSE_MODE or UPSTREAM_CLIENT_KEY_FILE; see the auth-server log)")
		return
	}
	if err != nil {
		s.log.WarnContext(r.Context(), "upstream unavailable", "err", upstreamLogText(err))
		_ = s.store.Delete(ctx, "pending", state)
		redirectErr("temporarily_unavailable", "the identity provider is unavailable; retry later")
		return
	}
	s.setLoginCookie(w, browser)
	http.Redirect(w, r, target, http.StatusFound)
}

// parkedParams are the authorization request parameters kept while the
// user signs in at the upstream IdP: those of RFC 6749 §4.1.1, RFC 7636
// §4.3, RFC 8707 §2 and OpenID Connect Core §3.1.2.1, and fosite's
// audience. Any other parameter is dropped, as RFC 6749 §3.1 has an
// authorization server ignore unrecognized ones: it was stored for
// LOGIN_TTL before, 16 KiB of junk per anonymous request.
var parkedParams = []string{"response_type", "client_id", "redirect_uri", "scope", "state",
	"code_challenge", "code_challenge_method", "resource", "audience",
	"nonce", "prompt", "max_age", "display", "ui_locales", "claims_locales", "login_hint", "acr_values", "claims"}

// parkedQuery is the part of the authorization request q that is stored
// while the user signs in (parkedParams), encoded. What it may weigh is
// bounded twice: by the 16 KiB query limit, and by a per-address budget of
// RATE_LIMIT_AUTHORIZE_PER_MINUTE KiB a minute that every request of 1 KiB
// or more draws on (floor(bytes/1024) each; a usual request, under 1 KiB,
// draws nothing). An address thus parks at most about twice that many KiB
// a minute, not 16 KiB per request it may make.
func parkedQuery(q url.Values) string {
	kept := url.Values{}
	for _, k := range parkedParams {
		if v, ok := q[k]; ok {
			kept[k] = v
		}
	}
	return kept.Encode()
}

// parkedBudget is the per-address budget of parked KiB: perMinute KiB a
// minute, with a burst of at least maxAuthorizeQuery's 16 KiB, so that a
// request the query bound admits always fits an idle address's budget
// (with RATE_LIMIT_AUTHORIZE_PER_MINUTE under 16 a 16 KiB request could
// never be parked, and was told to retry).
func parkedBudget(perMinute int) ratelimit.Limit {
	return ratelimit.Limit{Rate: perMinute, Burst: max(perMinute, maxAuthorizeQuery>>10), Period: time.Minute}
}

// loginCookieValue is what randomID returns (crypto/rand.Text).
var loginCookieValue = regexp.MustCompile(`^[A-Z2-7]{26}$`)

// loginCookie is the name of the cookie that binds an authorization's
// upstream state to the browser that started it: the __Host- prefix
// (Secure, Path=/, no Domain: no sibling or subdomain can set it) when the
// issuer is https, as production requires. A development issuer on plain
// http gets tollgate-login without Secure: a browser never sends a Secure
// cookie back over plain http to another host (a PUBLIC_URL tunnel), and
// WebKit (Safari, every WKWebView) does not keep one set by
// http://localhost either, unlike Chrome and Firefox, which treat loopback
// as a secure context — so make dev's sign-ins failed in Safari at the
// callback. The one exception is a loopback issuer with
// UPSTREAM_RESPONSE_MODE=form_post: its SameSite=None cookie must be
// Secure for Chrome to keep it (setLoginCookie), so it stays __Host- there
// (and such a development setup needs Chrome or Firefox).
func (s *Server) loginCookie() (name string, secure bool) {
	u, err := url.Parse(s.issuer)
	if err == nil && (u.Scheme == "https" ||
		s.loginCookieSameSite() == http.SameSiteNoneMode && clients.SecureContextHost(u.Hostname())) {
		return "__Host-tollgate-login", true
	}
	return "tollgate-login", false
}

// loginBinding returns the browser's login cookie value, or a new one.
// RFC 6749 §10.12 and RFC 9700 §4.7.1 bind the state of a client (here the
// auth-server, the upstream IdP's client) to the user agent: without it an
// attacker could have a victim's browser complete the attacker's sign-in
// (login CSRF: the victim's app linked to the attacker's account) or
// deliver a state the attacker started. One value serves all the browser's
// authorizations, so two sign-ins in two tabs both complete; it is never
// chosen by the request (a value that is not one of ours is replaced).
func (s *Server) loginBinding(r *http.Request) string {
	name, _ := s.loginCookie()
	return browserBinding(r, name)
}

// browserBinding returns the value of r's cookie name when it is one this
// server issues, or a new one.
func browserBinding(r *http.Request, name string) string {
	if c, err := r.Cookie(name); err == nil && loginCookieValue.MatchString(c.Value) {
		return c.Value
	}
	return randomID()
}

// setLoginCookie (re)sets the login cookie for LOGIN_TTL, HttpOnly. With
// UPSTREAM_RESPONSE_MODE=query it is SameSite=Lax: the upstream IdP sends
// the browser back to the callback with a cross-site top-level GET, which
// Strict would strip. With form_post the provider's page POSTs to the
// callback cross-site, which carries no Lax cookie (RFC 6265bis §5.5,
// "same-site" requests): the cookie is SameSite=None; Secure then (the
// configuration refuses form_post where it could not be Secure). The
// binding is as strong either way: the callback still requires the cookie
// whose hash the state's pending request holds (sameBrowser), so a request
// forged from another site, which a Lax cookie does not stop for a
// top-level GET either, fails without the victim's own state.
func (s *Server) setLoginCookie(w http.ResponseWriter, value string) {
	name, secure := s.loginCookie()
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", Secure: secure, HttpOnly: true,
		SameSite: s.loginCookieSameSite(), MaxAge: int(s.cfg.LoginTTL.Seconds())})
}

// sameBrowser reports whether r comes from the browser that started p.
func (s *Server) sameBrowser(r *http.Request, p pending) bool {
	name, _ := s.loginCookie()
	c, err := r.Cookie(name)
	if err != nil || p.Browser == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(redisx.Hash(c.Value)), []byte(p.Browser)) == 1
}

// reasonAnotherBrowser is the code_issued record's reason for a callback
// refused because another browser started the sign-in: a login CSRF
// attempt, or a user who finished the sign-in elsewhere — apart, in the
// audit log, from the other invalid_request callbacks.
const reasonAnotherBrowser = "callback from another browser than the one that started the sign-in (login CSRF, RFC 6749 §10.12, RFC 9700 §4.7.1); the sign-in is over"

// callback consumes our upstream state once, completes the upstream login
// and either asks for consent or issues the code.
func (s *Server) callback(w http.ResponseWriter, r *http.Request) {
	r, rec := s.withAudit(r, audit.Record{Event: audit.CodeIssued})
	defer s.logAudit(r, rec)
	ctx := r.Context()
	q, desc := s.callbackParams(r)
	if desc != "" {
		s.fail(w, r, "callback", http.StatusBadRequest, "invalid_request", desc)
		return
	}
	state := q.Get("state")
	if state == "" {
		s.fail(w, r, "callback", http.StatusBadRequest, "invalid_request", "the callback has no state")
		return
	}
	// The provider's discovery document is needed to read the answer (its
	// issuer, RFC 9207 §2.4) and redeem the code. Right after a restart
	// with the provider unreachable it is not to be had: the sign-in is
	// kept (its state not taken, the code not redeemed) and the page says
	// to reload it — once the provider is back, the same callback goes on
	// (discovery is tried again after discoveryRetryAfter, Retry-After).
	if err := s.upstream.Ready(ctx); errors.Is(err, errUpstreamUnreachable) {
		s.log.WarnContext(r.Context(), "upstream unavailable at the callback; the sign-in is kept", "err", upstreamLogText(err))
		w.Header().Set("Retry-After", strconv.Itoa(int(discoveryRetryAfter/time.Second)))
		s.fail(w, r, "callback", http.StatusServiceUnavailable, "temporarily_unavailable",
			"the identity provider is unavailable right now; your sign-in is kept: reload this page in a few seconds")
		return
	}
	var p pending
	ok, err := s.store.TakeJSON(ctx, "pending", state, &p)
	if err != nil {
		s.fail(w, r, "callback", http.StatusServiceUnavailable, "temporarily_unavailable", "the service is temporarily unavailable; retry later")
		return
	}
	if !ok {
		s.fail(w, r, "callback", http.StatusBadRequest, "invalid_request", "unknown, expired or already used sign-in state; start again from the application")
		return
	}
	rec.ClientID = p.ClientID
	// The state is consumed either way: a sign-in delivered to another
	// browser is over (RFC 6749 §10.12, RFC 9700 §4.7.1). Not sent back to
	// the client: this browser did not start the request.
	if !s.sameBrowser(r, p) {
		s.log.InfoContext(r.Context(), "callback from another browser than the one that started the sign-in", "client_id", p.ClientID)
		rec.Reason = reasonAnotherBrowser
		s.fail(w, r, "callback", http.StatusBadRequest, "invalid_request",
			"this sign-in was not started in this browser (its sign-in cookie is missing or another's); start again from the application, in a browser that accepts cookies from this site")
		return
	}
	query := mustParseQuery(p.Query) // the stored authorization request
	ar, err := s.newAuthorizeRequest(ctx, requestWithQuery(r, query))
	if err != nil {
		s.stateSpentError(w, r, ar, err)
		return
	}
	redirectErr := func(code, desc string) {
		s.metrics.errors.WithLabelValues("callback", code).Inc()
		s.redirectError(w, r, ar.GetClient(), ar.GetRedirectURI(), ar.GetState(), code, desc)
	}
	// Before anything of the answer is believed, an error too: a forged
	// error is not relayed as the provider's (RFC 9207 §2.4).
	if err := s.upstream.CheckResponseIssuer(ctx, q); err != nil {
		s.log.WarnContext(r.Context(), "upstream authorization response refused", "err", upstreamLogText(err))
		if errors.Is(err, errResponseIssuer) {
			redirectErr("server_error", "the identity provider's answer does not name it as its issuer (RFC 9207 section 2.4: the iss parameter is another's, or missing though the provider says it always sends it); start again from the application")
		} else if errors.Is(err, errUpstreamUnreachable) {
			redirectErr("temporarily_unavailable", "the identity provider is unavailable; retry later")
		} else {
			redirectErr("server_error", "the identity provider does not match this server's upstream settings (UPSTREAM_ISSUER_URL, UPSTREAM_RESPONSE_MODE or UPSTREAM_CLIENT_KEY_FILE; see the auth-server log)")
		}
		return
	}
	if e := q.Get("error"); e != "" {
		s.log.InfoContext(r.Context(), "upstream returned an error", "error", e, "description", q.Get("error_description"))
		switch e {
		// user_cancelled_authorize: Sign in with Apple's cancel (posted
		// with form_post), its access_denied.
		case "access_denied", "login_required", "consent_required", "interaction_required", "account_selection_required", "user_cancelled_authorize":
			redirectErr("access_denied", "the identity provider did not sign the user in ("+e+")")
		case "temporarily_unavailable":
			redirectErr("temporarily_unavailable", "the identity provider is temporarily unavailable")
		default:
			// Only a registered code is repeated to the client (RFC 6749
			// §4.1.2.1, §11.4; OpenID Connect Core §3.1.2.6): the parameter
			// is whatever the callback URL carried, and any other value,
			// however cleaned, could put someone else's words in front of
			// the user. The upstream's own value is in the log above.
			if !slices.Contains(registeredAuthorizeErrors, e) {
				e = "a code OAuth does not define; see the auth-server log"
			}
			redirectErr("server_error", "the identity provider returned an error ("+e+")")
		}
		return
	}
	code := q.Get("code")
	if code == "" {
		redirectErr("server_error", "the identity provider returned neither a code nor an error")
		return
	}
	id, err := s.upstream.Exchange(ctx, code, p.Verifier, p.Nonce)
	if err != nil {
		a := signInFailure(err)
		if a.retry && s.keepForRetry(w, r, state, p, err) {
			return
		}
		s.log.WarnContext(r.Context(), "upstream login failed", "err", upstreamLogText(err))
		redirectErr(a.code, a.desc)
		return
	}
	if r.Method == http.MethodPost {
		id.Profile = withAppleName(id.Profile, q.Get("user"))
	}
	rec.Subject, rec.UpstreamIssuer = id.Subject, id.Issuer
	fresh, _ := freshnessOf(query) // checked when the request was stored
	if code, desc := checkFreshness(fresh, id.AuthTime, p.Created, s.now()); code != "" {
		if code == "login_required" {
			s.log.InfoContext(r.Context(), "authentication not fresh enough", "reason", desc)
		} else {
			s.log.WarnContext(r.Context(), "upstream auth_time refused", "reason", desc, "auth_time", id.AuthTime.Unix(), "upstream_issuer", id.Issuer)
		}
		redirectErr(code, desc)
		return
	}
	id.AuthTime = grantAuthTime(fresh, id.AuthTime, p.Created, s.now())
	if p.HintSubject != "" && p.HintSubject != id.Subject {
		// OpenID Connect Core §3.1.2.1: the end-user signed in is not the
		// one the id_token_hint names. Checked before the consent page, so
		// the user is not asked to approve what cannot be issued.
		s.log.InfoContext(r.Context(), "signed-in user is not the id_token_hint's subject", "client_id", p.ClientID)
		redirectErr("login_required", idTokenHintOtherUser)
		return
	}
	c := ar.GetClient().(*clients.Client)
	// The authorization has reached a signed-in user: a metadata
	// document's client's cached document is kept its full time now.
	s.confirmMetadataClient(ctx, c)
	if c.NeedsConsent() {
		// OpenID Connect Core §3.1.2.1: prompt=consent asks for the page
		// even when the user's approval is remembered; so does a public
		// client's http (loopback) redirect, which does not prove who
		// asks (RFC 8252 §8.6, clients.Client.ApprovalReusable).
		granted := false
		redirect := consentRedirect(query, c)
		if !slices.Contains(strings.Fields(query.Get("prompt")), "consent") && c.ApprovalReusable(redirect) {
			var err error
			if granted, err = s.hasConsent(ctx, id.Subject, id.Issuer, c.ID, ar.GetRequestedScopes(), p.Resource, redirect); err != nil {
				redirectErr("temporarily_unavailable", "the service is temporarily unavailable; retry later")
				return
			}
		}
		if !granted {
			rec.Event = "" // the code_issued event follows the consent
			s.showConsent(w, r, ar, c, p, *id)
			return
		}
	}
	s.issueCode(w, r, ar, p, *id)
}

// registeredAuthorizeErrors are the authorization error codes of RFC 6749
// §4.1.2.1 and OpenID Connect Core §3.1.2.6, RFC 9101 §6.3 and OpenID
// Connect Core §6's request objects: the values of an upstream's error a
// client may be told.
var registeredAuthorizeErrors = []string{
	"invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type", "invalid_scope",
	"server_error", "temporarily_unavailable", "interaction_required", "login_required", "account_selection_required",
	"consent_required", "invalid_request_uri", "invalid_request_object", "request_not_supported",
	"request_uri_not_supported", "registration_not_supported",
}

// issueCode lets fosite mint the code (and store the PKCE and OIDC sessions)
// and redirects to the client with code, state and iss.
func (s *Server) issueCode(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, p pending, id Identity) {
	ctx := r.Context()
	for _, sc := range ar.GetRequestedScopes() {
		ar.GrantScope(sc)
	}
	ar.SetRequestedAudience(fosite.Arguments{p.Resource})
	ar.GrantAudience(p.Resource)
	sess := NewSession()
	sess.Subject = id.Subject
	sess.Username = id.Profile.PreferredUsername
	sess.Profile = id.Profile
	sess.UpstreamIssuer = id.Issuer
	sess.Claims.Subject = id.Subject
	sess.Claims.Issuer = s.issuer
	sess.Claims.AuthTime = id.AuthTime.UTC().Truncate(time.Second)
	sess.Claims.RequestedAt = p.Created.UTC().Truncate(time.Second)
	sess.Claims.Extra = profileMap(ScopedProfile(id.Profile, ar.GetGrantedScopes()))
	if id.AuthTime.IsZero() {
		sess.Claims.Extra[noAuthTimeClaim] = true // the ID token gets no auth_time (timedSigner)
	}
	resp, err := s.provider.NewAuthorizeResponse(ctx, ar, sess)
	if err != nil {
		s.stateSpentError(w, r, ar, err)
		return
	}
	resp.AddParameter("iss", s.issuer)
	if ar.GetState() == "" {
		// fosite always adds state; a request without one gets none back.
		resp.GetParameters().Del("state")
	}
	if rec := auditOf(r); rec != nil {
		rec.GrantID, rec.Subject, rec.ClientID = ar.GetID(), id.Subject, ar.GetClient().GetID()
	}
	s.metrics.grants.WithLabelValues("authorization_request", s.clientLabel(ar.GetClient()), "ok").Inc()
	s.provider.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// authorizeError redirects when fosite verified the redirect URI, and shows
// the error otherwise. A 503 (the store unavailable, the server busy) stays
// on a page with Retry-After at the authorization endpoint: reloading it
// sends the request again.
func (s *Server) authorizeError(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, err error) {
	s.answerAuthorizeError(w, r, ar, err, false)
}

// stateSpentError is authorizeError for the callback and the consent form,
// which have spent the sign-in's state when they fail: a reload of that
// page could only answer "unknown, expired or already used", so a 503 goes
// to the client too once the redirect URI is verified — error
// temporarily_unavailable with state and iss (RFC 6749 §4.1.2.1, RFC 9207)
// — and the client can start the authorization again.
func (s *Server) stateSpentError(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, err error) {
	s.answerAuthorizeError(w, r, ar, err, true)
}

func (s *Server) answerAuthorizeError(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, err error, stateSpent bool) {
	status, code, desc := classify(err)
	if ar != nil && ar.IsRedirectURIValid() && ar.GetRedirectURI() != nil && (status != http.StatusServiceUnavailable || stateSpent) {
		s.metrics.errors.WithLabelValues("authorize", code).Inc()
		s.redirectError(w, r, ar.GetClient(), ar.GetRedirectURI(), ar.GetState(), code, desc)
		return
	}
	s.fail(w, r, "authorize", status, code, desc)
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, endpoint string, status int, code, desc string) {
	setAuditResult(r, code)
	s.metrics.errors.WithLabelValues(endpoint, code).Inc()
	s.errorPage(w, r, endpoint, status, code, desc)
}

// verifiedRedirect is the URL errors of c's authorization request go to
// once its redirect URI is verified: redirect, or c's one registered URI
// when the request named none. When it does not parse, the request is
// refused on a page and ok is false.
func (s *Server) verifiedRedirect(w http.ResponseWriter, r *http.Request, c *clients.Client, redirect string) (*url.URL, bool) {
	u := redirect
	if u == "" {
		u = c.RedirectURIs[0]
	}
	to, err := url.Parse(u)
	if err != nil {
		s.fail(w, r, "authorize", http.StatusBadRequest, "invalid_request", unregisteredRedirect(u, c.ID))
		return nil, false
	}
	return to, true
}

// repeatedAuthorizeParam is the first parameter (in name order) q has more
// than once, RFC 8707's resource aside (more than one is invalid_target);
// "" when none is. guard refused the request already when it is client_id
// or redirect_uri (authorizeRedirectParams).
func repeatedAuthorizeParam(q url.Values) string {
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if len(q[k]) > 1 && !slices.Contains(repeatable, k) {
			return k
		}
	}
	return ""
}

// redirectError sends c's RFC 6749 error response with state and RFC 9207
// iss to its verified redirect URI: a redirect when that URI is trusted
// (trustedRedirect), else a page with the same URL as a link
// (errorInterstitial; RFC 9700 §4.11.2).
//
// The redirect answering a POST — the consent form (a denial, a refusal
// after it), the upstream IdP's form_post callback — is 303 See Other, as
// fosite's code response is: RFC 9110 §15.4.4 has the browser follow it
// with a GET, and RFC 9700 §4.12 asks for 303 when the request may carry
// a user's input; a denial was 302 while the approval of the same form
// was 303 (auth49 #5). The redirect answering a GET (an authorization
// request refused, the query callback) stays 302 Found, RFC 6749
// §4.1.2.1's.
func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, c fosite.Client, redirect *url.URL, state, code, desc string) {
	setAuditResult(r, code)
	u := *redirect
	q := u.Query()
	q.Set("error", code)
	if desc = errorDescription(desc, maxErrorDescription); desc != "" {
		q.Set("error_description", desc)
	}
	if state != "" {
		q.Set("state", state)
	}
	q.Set("iss", s.issuer)
	u.RawQuery = q.Encode()
	if !s.trustedRedirect(c, redirect) {
		s.errorInterstitial(w, r, c, &u, code)
		return
	}
	noStore(w)
	status := http.StatusFound
	if r.Method == http.MethodPost {
		status = http.StatusSeeOther
	}
	http.Redirect(w, r, u.String(), status)
}

// maxErrorDescription bounds an error_description sent to a client in a
// redirect (redirectError); a JSON body or a WWW-Authenticate challenge
// keeps the whole description (writeJSONError, bearerChallenge).
const maxErrorDescription = 512

// errorDescription is desc in the characters RFC 6749 allows in
// error_description (§4.1.2.1, §5.2; RFC 7009 §2.2.1 and RFC 7591 §3.2.2
// use §5.2's; RFC 6750 §3 the same set in the WWW-Authenticate
// challenge): %x20-21 / %x23-5B / %x5D-7E, printable ASCII without '"'
// and '\'. Every OAuth error the auth-server writes passes it — the JSON
// body (writeJSONError), the Bearer challenge (bearerChallenge) and the
// error redirect (redirectError) — because a description may quote the
// request (a scope, a redirect_uri, a header), the upstream IdP's callback
// or fosite. Mapped: '"' and typographic quotes become "'", '\' "/",
// "§" "section ", "…" "...", dashes "-", line breaks and tabs
// spaces, anything else outside the set "?" (docs/reference/oauth.md,
// "Error descriptions"). With limit > 0 the result is at most limit bytes,
// "..." ending a cut one; 0 keeps it whole. A description already in the
// set is returned as is, without allocating.
func errorDescription(desc string, limit int) string {
	if (limit <= 0 || len(desc) <= limit) && descriptionClean(desc) {
		return desc
	}
	var b strings.Builder
	for _, r := range desc {
		switch {
		case r == '"' || r == '\u201c' || r == '\u201d' || r == '\u2018' || r == '\u2019':
			b.WriteByte('\'')
		case r == '\\':
			b.WriteByte('/')
		case r == '\u00a7':
			b.WriteString("section ")
		case r == '\u2026':
			b.WriteString("...")
		case r == '\u2013' || r == '\u2014':
			b.WriteByte('-')
		case r == '\r' || r == '\n' || r == '\t':
			b.WriteByte(' ')
		case r >= 0x20 && r <= 0x7e:
			b.WriteRune(r)
		default:
			b.WriteByte('?')
		}
		if limit > 0 && b.Len() > limit {
			return b.String()[:limit-3] + "..."
		}
	}
	return b.String()
}

// descriptionClean reports whether every byte of desc is in
// error_description's set (%x20-21 / %x23-5B / %x5D-7E).
func descriptionClean(desc string) bool {
	for i := 0; i < len(desc); i++ {
		if c := desc[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// quotedValue is v, a value of the request (a scope), as an error
// description quotes it: at most clients.QuoteLimit bytes of it ("..."
// appended when cut), in error_description's characters, mapped as
// errorDescription maps them ('\' becomes '/', '"' an apostrophe,
// anything else outside the set '?'), so that the words around it can
// quote it with apostrophes (brk49 #2: a refused refresh quoted its scope
// as sent).
func quotedValue(v string) string {
	return errorDescription(clients.Truncate(v, clients.QuoteLimit), 0)
}

// newAuthorizeRequest is fosite's NewAuthorizeRequest with state optional
// (OAuth 2.1 §4.1.1). fosite checks the state length last, after the
// request is complete, and with MinParameterEntropy 1 its only complaint
// can be an absent state: that one is not an error here.
//
// fosite matches redirect_uri against the client's registered URIs with
// rules of its own; the client it looks up is given the request's
// redirect_uri when clients.MatchRedirectURI accepts it
// (clients.Client.ForRedirect: a port-less http://localhost registration
// with a port).
func (s *Server) newAuthorizeRequest(ctx context.Context, r *http.Request) (fosite.AuthorizeRequester, error) {
	ctx = context.WithValue(ctx, authorizeRedirectKey{}, r.URL.Query().Get("redirect_uri"))
	ar, err := s.provider.NewAuthorizeRequest(ctx, r)
	if err != nil && errors.Is(err, fosite.ErrInvalidState) && ar != nil && ar.GetState() == "" && ar.GetClient() != nil && ar.IsRedirectURIValid() {
		return ar, nil
	}
	return ar, err
}

func requestWithQuery(r *http.Request, q url.Values) *http.Request {
	req := r.Clone(r.Context())
	u := *r.URL
	u.Path = "/oauth/authorize"
	u.RawQuery = q.Encode()
	req.URL = &u
	req.Method = http.MethodGet
	req.Form, req.PostForm, req.Body = nil, nil, http.NoBody
	return req
}

func mustParseQuery(raw string) url.Values {
	q, _ := url.ParseQuery(raw)
	return q
}

func clientDescription(err error) string {
	var e *clients.MetadataError
	if errors.As(err, &e) {
		return e.Error() // "client metadata document: <why it is refused>"
	}
	return "unknown client: the client_id is not registered"
}

// --- consent -------------------------------------------------------------------

// consentCookie names the cookie that binds consent pages to the browser
// shown them: __Host-tollgate-consent where the login cookie is __Host-
// (an https issuer, or a loopback one with form_post), else
// tollgate-consent without Secure — a plain-http development issuer, where
// a browser that keeps no Secure cookie over http (any, for another host;
// Safari, for localhost too) would never send it back and no consent could
// be approved.
func (s *Server) consentCookie() (name string, secure bool) {
	if _, secure := s.loginCookie(); secure {
		return "__Host-tollgate-consent", true
	}
	return "tollgate-consent", false
}

// consentBinding returns the browser's consent cookie value, or a new one.
// One value serves every consent page the browser is shown, so that pages
// open in several tabs can each be approved (a value per page, in one
// cookie, let only the last one be); what makes each page's form its own
// is its token (consentRequest.CSRFHash). A value that is not one of ours
// is replaced, never adopted.
func (s *Server) consentBinding(r *http.Request) string {
	name, _ := s.consentCookie()
	return browserBinding(r, name)
}

func consentKey(sub, clientID string) string { return redisx.Hash(sub) + ":" + redisx.Hash(clientID) }

// hasConsent reports whether sub's remembered approval of clientID, given
// by a user of the same upstream issuer's users as iss, the one sub
// signed in at (issuerSet.consentCounts), covers
// every scope, the resource and the redirect URI redirect (the request's
// redirect_uri as sent, or the client's one registered URI when it sent
// none: consentRedirect). The redirect URI is compared as at the
// authorization endpoint (clients.MatchRedirectURI): exactly, but for an
// http loopback IP literal's port (RFC 8252 §7.3), which a native app
// picks anew each time and the page does not show. err is a store error.
func (s *Server) hasConsent(ctx context.Context, sub, iss, clientID string, scopes []string, resource, redirect string) (bool, error) {
	var rec consentRecord
	ok, err := s.store.GetJSON(ctx, "consent", consentKey(sub, clientID), &rec)
	if err != nil || !ok || !s.issuers.consentCounts(rec.Issuer, iss) {
		return false, err
	}
	for _, sc := range scopes {
		if !slices.Contains(rec.Scopes, sc) {
			return false, nil
		}
	}
	return slices.Contains(rec.Resources, resource) && redirect != "" && clients.MatchRedirectURI(rec.RedirectURIs, redirect), nil
}

// consentRedirect is the redirect URI an authorization request (its query
// q, of client c) sends the user to, as the consent page names its host:
// its redirect_uri as sent, or, when it has none, c's one registered URI
// (the authorization endpoint refuses a request without one from a client
// with several). "" when neither is.
func consentRedirect(q url.Values, c fosite.Client) string {
	if r := q.Get("redirect_uri"); r != "" {
		return r
	}
	if uris := c.GetRedirectURIs(); len(uris) == 1 {
		return uris[0]
	}
	return ""
}

// RevokeConsent forgets a user's approval of a client.
func (s *Server) RevokeConsent(ctx context.Context, sub, clientID string) error {
	return s.store.Delete(ctx, "consent", consentKey(sub, clientID))
}

var consentTemplate = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Allow access?</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1b1b1b}
li{margin:.2rem 0}button{font:inherit;padding:.5rem 1.2rem;margin-right:.5rem}
.unverified,.warning{border-left:4px solid #b45309;background:#fef3c7;padding:.5rem .8rem}</style>
</head><body>
{{if .Unverified}}{{if .NameClash}}<h1>Allow an unverified app to access your account?</h1>
<p class="warning"><strong>It calls itself “{{.ClientName}}”, the name of an app this server knows, but it is not that app.</strong> Deny unless you know why it uses that name.</p>
{{else}}<h1>Allow “{{.ClientName}}”, an unverified app, to access your account?</h1>
{{end}}<p class="unverified"><strong>Unverified app:</strong> it registered itself{{if .ClientIDHost}} with a client ID document at <strong>{{.ClientIDHost}}</strong>{{end}}, so this server has not checked who runs it or that its name is true. Continue only if you started this from the app you expect.</p>
{{else}}<h1>Allow {{.ClientName}} to access your account?</h1>
{{end}}<p>It will return to <strong>{{.RedirectHost}}</strong>.</p>
<p>It asks for:</p><ul>{{range .Scopes}}<li>{{.}}</li>{{end}}</ul>
<p>Access is for: <code>{{.Resource}}</code></p>
<p>Signed in as {{.User}}.</p>
<form method="post" action="/oauth/consent">
<input type="hidden" name="consent_id" value="{{.ID}}">
<input type="hidden" name="csrf_token" value="{{.CSRF}}">
<button type="submit" name="decision" value="approve">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form></body></html>`))

func (s *Server) showConsent(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, c *clients.Client, p pending, id Identity) {
	ctx := r.Context()
	consentID, csrf, browser := randomID(), randomID(), s.consentBinding(r)
	// The upstream code has been redeemed: its PKCE verifier and nonce are
	// needed no more, and are not kept while the page waits.
	p.Verifier, p.Nonce = "", ""
	cr := consentRequest{Pending: p, Identity: id, CSRFHash: redisx.Hash(csrf), Browser: redisx.Hash(browser)}
	if err := s.store.PutJSON(ctx, "consent-req", consentID, cr, s.cfg.LoginTTL); err != nil {
		s.redirectError(w, r, ar.GetClient(), ar.GetRedirectURI(), ar.GetState(), "temporarily_unavailable", "the service is temporarily unavailable; retry later")
		return
	}
	// The login cookie's SameSite, not Strict: the page is the answer to
	// the upstream IdP's cross-site redirect (Lax) or form POST (None;
	// Secure, UPSTREAM_RESPONSE_MODE=form_post) to the callback, which
	// would not carry a stricter cookie, so every page would start a new
	// value and strand the other tabs'. The binding holds either way: a
	// form is accepted only with its page's token, which no other site
	// reads, and a browser's value is never one another site chose
	// (__Host-, and a value not ours is replaced).
	name, secure := s.consentCookie()
	http.SetCookie(w, &http.Cookie{Name: name, Value: browser, Path: "/", Secure: secure, HttpOnly: true, SameSite: s.loginCookieSameSite(), MaxAge: int(s.cfg.LoginTTL.Seconds())})
	// Every requested scope is supported (fosite checked it against the
	// client's allowed scopes, a subset of the supported ones): show each
	// in the words its capability declared.
	var scopes []string
	for _, sc := range ar.GetRequestedScopes() {
		for _, known := range s.supported.Load().scopes {
			if known.Name == sc {
				scopes = append(scopes, known.Description)
			}
		}
	}
	user := id.Profile.Email
	if user == "" {
		user = id.Profile.PreferredUsername
	}
	if user == "" {
		user = id.Subject
	}
	// The host as it resolves (clients.ASCIIHost): an IDN look-alike shows
	// its xn-- form, and the CSP can name it.
	ru := ar.GetRedirectURI()
	redirectHost := clients.ASCIIHost(ru)
	pageHeaders(w, ru.Scheme+"://"+redirectHost)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// A client that registered itself (dynamic registration, a client ID
	// metadata document) chose its own name: the page says it is
	// unverified, and says so loudly when the name is a static client's
	// (one registered before the operator named theirs so: registration
	// and a metadata document's lookup refuse such a name,
	// clients.CheckNameAndURI).
	unverified := c.Kind != clients.KindStatic
	nameClash := false
	if unverified && s.static != nil {
		_, nameClash = s.static.ByName(c.Name)
	}
	clientIDHost := ""
	if c.Kind == clients.KindMetadata {
		if u, err := url.Parse(c.ID); err == nil {
			clientIDHost = clients.ASCIIHost(u)
		}
	}
	_ = consentTemplate.Execute(w, map[string]any{
		"ClientName": clients.DisplayName(c.Name), "RedirectHost": redirectHost, "Scopes": scopes, "Resource": p.Resource,
		"User": user, "ID": consentID, "CSRF": csrf,
		"Unverified": unverified, "NameClash": nameClash, "ClientIDHost": clientIDHost,
	})
}

// consent handles the decision posted from the consent page.
func (s *Server) consent(w http.ResponseWriter, r *http.Request) {
	r, rec := s.withAudit(r, audit.Record{Event: audit.Consent})
	defer s.logAudit(r, rec)
	ctx := r.Context()
	name, _ := s.consentCookie()
	cookie, err := r.Cookie(name)
	token, consentID := r.PostForm.Get("csrf_token"), r.PostForm.Get("consent_id")
	csrfFailed := func() {
		s.fail(w, r, "consent", http.StatusForbidden, "access_denied", "the consent form is not valid for this browser (CSRF check failed)")
	}
	if err != nil || token == "" {
		csrfFailed()
		return
	}
	unavailable := func() {
		s.fail(w, r, "consent", http.StatusServiceUnavailable, "temporarily_unavailable", "the service is temporarily unavailable; retry later")
	}
	unknown := func() {
		s.fail(w, r, "consent", http.StatusBadRequest, "invalid_request", "unknown, expired or already used consent request")
	}
	// The request is checked before it is taken: a form posted from
	// another browser, or another page's token, leaves it to the page's
	// own browser; taking it then makes each decision count once.
	var cr consentRequest
	ok, err := s.store.GetJSON(ctx, "consent-req", consentID, &cr)
	switch {
	case err != nil:
		unavailable()
		return
	case !ok:
		unknown()
		return
	case !cr.madeFor(cookie.Value, token):
		csrfFailed()
		return
	}
	if ok, err = s.store.TakeJSON(ctx, "consent-req", consentID, &cr); err != nil {
		unavailable()
		return
	} else if !ok || !cr.madeFor(cookie.Value, token) {
		unknown() // a concurrent post of the same form took it
		return
	}
	rec.ClientID, rec.Subject, rec.UpstreamIssuer = cr.Pending.ClientID, cr.Identity.Subject, cr.Identity.Issuer
	// The consent cookie stays: other tabs' pages are bound to it too.
	ar, err := s.newAuthorizeRequest(ctx, requestWithQuery(r, mustParseQuery(cr.Pending.Query)))
	if err != nil {
		s.stateSpentError(w, r, ar, err)
		return
	}
	if r.PostForm.Get("decision") != "approve" {
		s.metrics.errors.WithLabelValues("consent", "access_denied").Inc()
		s.redirectError(w, r, ar.GetClient(), ar.GetRedirectURI(), ar.GetState(), "access_denied", "the user denied access")
		return
	}
	approval := consentRecord{Scopes: ar.GetRequestedScopes(), Resources: []string{cr.Pending.Resource}, Approved: s.now(), Issuer: cr.Identity.Issuer}
	if redirect := consentRedirect(mustParseQuery(cr.Pending.Query), ar.GetClient()); redirect != "" {
		approval.RedirectURIs = []string{redirect}
	}
	// The approval is merged into what the user approved before (other
	// redirect URIs, scopes, resources): when that cannot be read, nothing
	// is written — a write of this approval alone would forget the rest —
	// and the client is told to retry, as when the write fails. An
	// approval that does not count for this user (another upstream
	// issuer's user's, or one without an issuer) is replaced, not merged.
	var prev consentRecord
	ok, err = s.store.GetJSON(ctx, "consent", consentKey(cr.Identity.Subject, cr.Pending.ClientID), &prev)
	if err != nil {
		s.redirectError(w, r, ar.GetClient(), ar.GetRedirectURI(), ar.GetState(), "temporarily_unavailable", "the service is temporarily unavailable; retry later")
		return
	}
	if ok && s.issuers.consentCounts(prev.Issuer, cr.Identity.Issuer) {
		for _, ru := range prev.RedirectURIs {
			// Compared as hasConsent compares: a loopback URI on another
			// port is the one already approved, not another to keep.
			if !clients.MatchRedirectURI(approval.RedirectURIs, ru) {
				approval.RedirectURIs = append(approval.RedirectURIs, ru)
			}
		}
		for _, sc := range prev.Scopes {
			if !slices.Contains(approval.Scopes, sc) {
				approval.Scopes = append(approval.Scopes, sc)
			}
		}
		for _, res := range prev.Resources {
			if !slices.Contains(approval.Resources, res) {
				approval.Resources = append(approval.Resources, res)
			}
		}
	}
	if err := s.store.PutJSON(ctx, "consent", consentKey(cr.Identity.Subject, cr.Pending.ClientID), approval, s.cfg.ConsentTTL); err != nil {
		s.redirectError(w, r, ar.GetClient(), ar.GetRedirectURI(), ar.GetState(), "temporarily_unavailable", "the service is temporarily unavailable; retry later")
		return
	}
	// The consent is recorded; what follows is the code_issued event.
	s.logAudit(r, rec)
	*rec = audit.Record{Event: audit.CodeIssued, ClientID: cr.Pending.ClientID, Subject: cr.Identity.Subject, UpstreamIssuer: cr.Identity.Issuer, ClientAddr: rec.ClientAddr}
	s.issueCode(w, r, ar, cr.Pending, cr.Identity)
}

// madeFor reports whether a consent form posted with token, from a browser
// whose consent cookie is browser, is the one cr's page showed that
// browser. A request stored before consent cookies were per browser has
// no Browser: its cookie held the page's token itself (double submit).
func (cr consentRequest) madeFor(browser, token string) bool {
	want := cr.Browser
	if want == "" {
		want = cr.CSRFHash
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(redisx.Hash(browser))) == 1 &&
		subtle.ConstantTimeCompare([]byte(cr.CSRFHash), []byte(redisx.Hash(token))) == 1
}

// freshnessOf reads prompt=login and max_age of an authorization request
// (OpenID Connect Core 1.0 §3.1.2.1); a max_age that is not a non-negative
// integer is refused with the returned description.
func freshnessOf(q url.Values) (Freshness, string) {
	f := Freshness{PromptLogin: slices.Contains(strings.Fields(q.Get("prompt")), "login")}
	if v := q.Get("max_age"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return f, "max_age must be a non-negative integer (seconds)"
		}
		f.MaxAge = &n
	}
	return f, ""
}

// authTimeSkew is how far the upstream's clock may run behind ours when
// its auth_time is compared with the request time (prompt=login) or with
// max_age: 5 s, the "wiggle room for timing issues" fosite itself gives
// an auth_time ahead of its clock (handler/openid strategy_jwt.go and
// validator.go, v0.49). It is smaller on purpose than upstreamClockSkew,
// the 30 s an ID token's iat may run ahead (zitadel/oidc's
// rp.WithIssuedAtOffset, whose own default is 1 s): accepting a sign-in
// the IdP reports as up to authTimeSkew before the request as fresh
// accepts, at worst, a single sign-on session that old.
const authTimeSkew = 5 * time.Second

// checkFreshness checks the upstream's auth_time against what the original
// request asked, f (OpenID Connect Core 1.0 §3.1.2.1) and returns the error the
// sign-in ends in, and why, or "", "". An auth_time more than
// upstreamClockSkew after now — the most the provider's clock may run
// ahead of ours, as for its ID token's iat — is no time the user could
// have signed in (a clock a year off, milliseconds sent as seconds):
// server_error whatever the request asked, since the grant's auth_time
// must be the upstream's and this one cannot be put on our clock; and
// not login_required, which asks the client to send the user to sign in
// again, when the provider would answer the same. With max_age,
// auth_time is required (§2: REQUIRED when max_age is requested) and must
// be within max_age of now; with prompt=login, the user must have
// authenticated after the request was made (requested, whole seconds).
// Both allow the upstream's clock to be authTimeSkew behind ours, and are
// login_required when not met.
func checkFreshness(f Freshness, authTime, requested, now time.Time) (errCode, desc string) {
	if ahead := authTime.Sub(now); !authTime.IsZero() && ahead > upstreamClockSkew {
		return "server_error", fmt.Sprintf("the identity provider's auth_time is %ds in the future, more than the %ds its clock may run ahead of this server's",
			int64(ahead.Seconds()), int64(upstreamClockSkew.Seconds()))
	}
	if f.MaxAge == nil && !f.PromptLogin {
		return "", ""
	}
	if authTime.IsZero() {
		return "login_required", "the identity provider did not say when the user signed in (no auth_time), so max_age or prompt=login cannot be honoured"
	}
	if f.MaxAge != nil && now.Sub(authTime) > time.Duration(*f.MaxAge)*time.Second+authTimeSkew {
		return "login_required", fmt.Sprintf("the user signed in at the identity provider %ds ago, more than max_age=%d", int64(now.Sub(authTime).Seconds()), *f.MaxAge)
	}
	if f.PromptLogin && authTime.Truncate(time.Second).Add(authTimeSkew).Before(requested.Truncate(time.Second)) {
		return "login_required", fmt.Sprintf("prompt=login: the identity provider did not authenticate the user again (it says the user signed in %ds before the request)",
			int64(requested.Truncate(time.Second).Sub(authTime.Truncate(time.Second)).Seconds()))
	}
	return "", ""
}

// grantAuthTime is the auth_time the grant records, and its ID tokens
// carry, for an upstream sign-in at authTime that checkFreshness accepted:
// the upstream's, on our clock where the two clocks disagree. An auth_time
// after now (the upstream's clock runs ahead; its ID token's iat may, by
// upstreamClockSkew, and checkFreshness refused one further ahead) is now. One that satisfies prompt=login or max_age
// only by authTimeSkew (the upstream's clock runs behind) is moved forward
// to satisfy it exactly: to the request time for prompt=login, to max_age
// before it for max_age — at most authTimeSkew. fosite checks both
// against the request time, without leeway, when it issues the code
// (login_required) and signs the ID token (server_error), and refuses an
// auth_time more than 5 s in the future there with server_error. Zero
// stays zero (no auth_time upstream).
func grantAuthTime(f Freshness, authTime, requested, now time.Time) time.Time {
	if authTime.IsZero() {
		return authTime
	}
	if authTime.After(now) {
		authTime = now
	}
	requested = requested.Truncate(time.Second)
	if f.MaxAge != nil && *f.MaxAge > 0 {
		if earliest := requested.Add(-time.Duration(*f.MaxAge) * time.Second); authTime.Before(earliest) {
			authTime = earliest
		}
	}
	if f.PromptLogin && authTime.Before(requested) {
		authTime = requested
	}
	return authTime
}

// resourceRefusal is the invalid_target description (RFC 8707 §2) of a
// resource the client may not use: the resources it may use, and where
// that list is set, as the token endpoint says it (resourcesOf). The
// refused value is not echoed: it is the request's, and may hold anything.
func resourceRefusal(c *clients.Client) string {
	return "resource is not allowed for this client: " + resourcesOf(c)
}

// audienceRefusal is err, or, when fosite's audience check
// (targetStrategy) refused a value of the authorization request's
// audience parameter, RFC 8707 §2's invalid_target saying what c may use
// and where that is set (resourcesOf). The refused value is not echoed,
// as resourceRefusal's is not: anyone may build the request with a
// client's id and redirect URI, and the description reaches that
// client's redirect URI.
// unsupportedScope is the first of scopes that this server does not
// support now (not in scopes_supported: the OpenID Connect scopes and
// those its capability backends declare, ScopeNames), or "" when it
// supports each.
func (s *Server) unsupportedScope(scopes []string) string {
	supported := s.ScopeNames()
	for _, sc := range scopes {
		if !slices.Contains(supported, sc) {
			return sc
		}
	}
	return ""
}

// scopeNotSupported is the invalid_scope refusal (RFC 6749 §4.1.2.1 at the
// authorization endpoint, §5.2 at the token endpoint) of a request naming
// sc, a scope this server does not support now — apart from a supported
// scope the client may not request, which fosite refuses "The OAuth 2.0
// Client is not allowed to request scope …".
func scopeNotSupported(sc string) error {
	return fosite.ErrInvalidScope.WithHintf("The scope '%s' is not supported by this server: scopes_supported in its metadata lists the scopes it supports now.", quotedValue(sc))
}

// scopeRefusal is err, fosite's refusal of authorization request ar, with
// an invalid_scope that names a scope this server does not support at all
// said so (scopeNotSupported): fosite checks the requested scopes against
// the client's only, and told a client asking for "admin" that it "is not
// allowed to request scope 'admin'", as if another client might.
func (s *Server) scopeRefusal(err error, ar fosite.AuthorizeRequester) error {
	if ar == nil || !errors.Is(err, fosite.ErrInvalidScope) {
		return err
	}
	if sc := s.unsupportedScope(ar.GetRequestedScopes()); sc != "" {
		return scopeNotSupported(sc)
	}
	return err
}

func audienceRefusal(err error, c *clients.Client) error {
	var refused *targetRefused
	if !errors.As(err, &refused) {
		return err
	}
	return errInvalidTarget.WithHintf("The audience is not allowed for this client: %s.", resourcesOf(c)).WithWrap(refused)
}

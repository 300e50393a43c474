package oauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ory/fosite"

	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
	"github.com/tollgate/tollgate/services/auth-server/internal/store"
	"github.com/tollgate/tollgate/services/platform/ratelimit"
)

// maxFormBytes bounds request bodies of the OAuth endpoints.
const maxFormBytes = 64 << 10

// repeatable parameters may appear more than once (RFC 8707 resource; we
// then refuse more than one with invalid_target, which is more precise).
var repeatable = []string{"resource"}

// authorizeRedirectParams are the authorization request's parameters that
// name where its errors go (RFC 6749 §4.1.2.1): repeated, the redirect URI
// cannot be verified, so guard refuses the request on a page. Any other
// repeated parameter is refused by the authorize handler once the redirect
// URI is verified, at that URI (repeatedAuthorizeParam).
var authorizeRedirectParams = []string{"client_id", "redirect_uri"}

// guard wraps an endpoint: no-store, refusal of duplicate parameters,
// duplicate Authorization headers and access_token in the query, rate
// limiting in Redis by client address (503 when Redis is down), error
// mapping, and at the client-authenticating endpoints the client
// authentication state of clientauth.go.
func (s *Server) guard(endpoint string, api bool, h http.HandlerFunc) http.Handler {
	fail := func(w http.ResponseWriter, r *http.Request, status int, code, desc string) {
		s.metrics.errors.WithLabelValues(endpoint, code).Inc()
		s.auditRefused(r, endpoint, code)
		if api {
			writeJSONError(w, status, code, desc)
		} else {
			s.errorPage(w, r, endpoint, status, code, desc)
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noStore(w)
		if endpoint == "authorize" && len(r.URL.RawQuery) > maxAuthorizeQuery {
			// The whole authorization request is stored in Redis until the
			// user is back from the IdP (LOGIN_TTL), and its state echoed
			// in a Location header: net/http alone lets a query reach 1 MB,
			// so an address within its rate limit could park 60 MB a
			// minute in Redis for ten minutes. Judged on the raw query's
			// length before anything parses it (a malformed one, or one of
			// more parameters than url.ParseQuery takes, is as long): 414
			// URI Too Long (RFC 9110 §15.5.15, the request-target is longer
			// than the server will interpret), as a page or JSON
			// (errorPage) with invalid_request, never redirected — no
			// redirect URI is verified (RFC 6749 §4.1.2.1) — and the state
			// not echoed.
			fail(w, r, http.StatusRequestURITooLong, "invalid_request",
				fmt.Sprintf("the authorization request's query is larger than %d bytes (HTTP 414 URI Too Long): send a shorter state, nonce or scope", maxAuthorizeQuery))
			return
		}
		if len(r.Header["Authorization"]) > 1 {
			fail(w, r, http.StatusBadRequest, "invalid_request", "more than one Authorization header")
			return
		}
		if r.URL.RawQuery != "" && r.URL.Query().Has("access_token") {
			fail(w, r, http.StatusBadRequest, "invalid_request", "access_token in the query string is not accepted")
			return
		}
		if p := queryCredential(endpoint, r); p != "" {
			fail(w, r, http.StatusBadRequest, "invalid_request",
				p+" in the query string is not accepted: send client credentials in the request body or the Authorization header, never in the URL (RFC 6749 section 2.3.1)")
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		}
		if len(r.Header["Content-Type"]) > 1 {
			// Content-Type is a singleton field (RFC 9110 §5.3, §8.3): with
			// two, net/http and the handlers read the first and a proxy or
			// a logger may read the other.
			code := "invalid_request"
			if endpoint == "register" {
				code = "invalid_client_metadata" // RFC 7591 section 3.2.2
			}
			fail(w, r, http.StatusBadRequest, code, "more than one Content-Type header (RFC 9110 section 5.3: it is a single value)")
			return
		}
		if desc := formOnly(endpoint, r); desc != "" {
			fail(w, r, http.StatusBadRequest, "invalid_request", desc)
			return
		}
		// Registration's body is JSON (RFC 7591 §3.1) and read by its
		// handler; every other endpoint's parameters are a query or a form,
		// checked here whatever Content-Type the request declares (a GET
		// with "Content-Type: application/json" skipped the checks before).
		if endpoint != "register" {
			if err := r.ParseForm(); err != nil {
				fail(w, r, bodyStatus(err), "invalid_request", bodyProblem(endpoint, r, err))
				return
			}
			dropEmptyParams(r)
			for k, v := range r.Form {
				if len(v) > 1 && !slices.Contains(repeatable, k) && (endpoint != "authorize" || slices.Contains(authorizeRedirectParams, k)) {
					fail(w, r, http.StatusBadRequest, "invalid_request", repeatedParam(endpoint, api, k))
					return
				}
			}
		}
		// Before authentication, requests are limited by the trusted client
		// address only: a client id in the request is a claim, and keying on
		// it would let anyone spend a client's budget. IPv6 addresses count
		// per /64 (clientip.Resolver.Subject). A busy address's tokens are
		// leased (ratelimit.Leasing): no Redis round trip for most requests.
		addr := s.addrs.Subject(r)
		// The fetches the request makes (a Client ID Metadata Document, a
		// self-registered client's jwks_uri) count against its address's
		// share of the fetch slots (clients.WithFetchAddress).
		r = r.WithContext(clients.WithFetchAddress(r.Context(), addr))
		res, err := s.leases.Allow(r.Context(), endpoint, "addr:"+addr, s.limit(endpoint))
		if err == nil {
			ratelimit.SetHeaders(w.Header(), res)
		}
		switch s.limitVerdict(w, r, endpoint, res, err) {
		case limitOutage:
			w.Header().Set("Retry-After", unavailableRetryAfter)
			fail(w, r, http.StatusServiceUnavailable, "temporarily_unavailable", limiterUnavailable)
			return
		case limitRefused:
			fail(w, r, http.StatusTooManyRequests, rateLimited, "too many requests; retry after the Retry-After delay")
			return
		}
		if !authenticatesClient(endpoint) {
			h(w, r)
			return
		}
		ca, ctx := s.startClientAuth(r, endpoint, addr)
		rw := &refusedWriter{ResponseWriter: w, s: s, ca: ca}
		h(rw, r.WithContext(ctx))
		s.finishClientAuth(ca, rw.status)
	})
}

// formSpecs are the endpoints whose parameters are a form body only, with
// the section that says so (none for our own consent revocation, whose
// client_id is a form parameter, docs/reference/oauth.md#consent).
var formSpecs = map[string]string{
	"token":          "RFC 6749 section 3.2",
	"revoke":         "RFC 7009 section 2.1",
	"introspect":     "RFC 7662 section 2.1",
	"consent_revoke": "",
}

// formBodies are the endpoints whose POST body, when there is one, is a
// form: those of formSpecs, the consent page's form and the form_post
// callback (OAuth 2.0 Form Post Response Mode §2), whose handlers refuse
// another declared type themselves. The userinfo endpoint reads no body
// (the access token is in the Authorization header, RFC 6750 §2.1;
// access_token in a form body is refused).
var formBodies = map[string]string{
	"consent":  "the consent page's form",
	"callback": "OAuth 2.0 Form Post Response Mode section 2",
}

// endpointNames name endpoints in error descriptions where the guard's
// name is not the endpoint's.
var endpointNames = map[string]string{"consent_revoke": "consent revocation"}

func endpointName(endpoint string) string {
	if n, ok := endpointNames[endpoint]; ok {
		return n
	}
	return endpoint
}

// formWanted says what endpoint takes: "the token endpoint takes form
// parameters (RFC 6749 §3.2)"; ok is false for an endpoint that takes no
// form body.
func formWanted(endpoint string) (desc string, ok bool) {
	spec, ok := formSpecs[endpoint]
	if !ok {
		spec, ok = formBodies[endpoint]
	}
	if !ok {
		return "", false
	}
	desc = "the " + endpointName(endpoint) + " endpoint takes form parameters"
	if spec != "" {
		desc += " (" + spec + ")"
	}
	return desc, true
}

// quotedHeader quotes a request header's value for an error description,
// at most clients.QuoteLimit bytes of it ("…" when cut, clients.Truncate).
func quotedHeader(v string) string {
	return strconv.Quote(clients.Truncate(v, clients.QuoteLimit))
}

// malformedContentType describes a POST whose Content-Type is not a media
// type (RFC 9110 §8.3.1: type "/" subtype, then parameters of name=value):
// net/http's form parsing fails on it, and at an endpoint that takes no
// form the description must not say it is a form that is wrong. It is ""
// when the header is absent or parses.
func malformedContentType(endpoint string, r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	if ct == "" || (r.Method != http.MethodPost && r.Method != http.MethodPut && r.Method != http.MethodPatch) {
		return ""
	}
	if _, _, err := mime.ParseMediaType(ct); err == nil {
		return ""
	}
	desc := "the Content-Type header " + quotedHeader(ct) + " is not a valid media type (RFC 9110 section 8.3.1)"
	if wanted, ok := formWanted(endpoint); ok {
		return desc + "; " + wanted + ": send Content-Type: application/x-www-form-urlencoded"
	}
	if endpoint == "userinfo" {
		return desc + "; the userinfo endpoint reads no request body: send the access token in the Authorization header (RFC 6750 section 2.1) and no Content-Type, or a valid one"
	}
	return desc
}

// bodyStatus is the status of a request whose body could not be read
// (err is r.ParseForm's or the registration body's read error): 413
// Content Too Large for a body over maxFormBytes (RFC 9110 §15.5.14),
// else 400. The answer keeps its OAuth error body (RFC 6749 §5.2 names
// 400 for the token endpoint's errors, but a body the server would not
// read is an HTTP condition before any OAuth one, and 413 tells a client
// that the same request sent again fails again).
func bodyStatus(err error) int {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// bodyProblem describes why the query and form of a request to endpoint
// could not be read (err is r.ParseForm's): a Content-Type that is no
// media type, a body over maxFormBytes, or a declared form that does not
// decode (RFC 6749 Appendix B). Only the last is a malformed form.
func bodyProblem(endpoint string, r *http.Request, err error) string {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return fmt.Sprintf("the request body is larger than %d bytes", tooBig.Limit)
	}
	if desc := malformedContentType(endpoint, r); desc != "" {
		return desc
	}
	if _, qerr := url.ParseQuery(r.URL.RawQuery); qerr != nil {
		return "the query string is not valid (RFC 3986 section 3.4, percent-encoding)"
	}
	return "the request body is not a valid form (application/x-www-form-urlencoded, RFC 6749 Appendix B)"
}

// formOnly refuses a POST to a form-only endpoint whose body is declared
// as something else — typically JSON, which clients written for JSON APIs
// send, and which otherwise left every parameter missing ("grant_type is
// required"). A body sent without any Content-Type is refused the same way:
// net/http reads form parameters only from a body declared as a form, so
// its parameters would be ignored too. A POST with no body and no
// Content-Type is left to the parameter checks. A Content-Type that is no
// media type at all is said to be so (malformedContentType).
func formOnly(endpoint string, r *http.Request) string {
	_, ok := formSpecs[endpoint]
	ct := headerValue(r.Header, "Content-Type")
	if !ok || r.Method != http.MethodPost {
		return ""
	}
	if ct == "application/x-www-form-urlencoded" {
		return "" // what clients send, without parsing it as a media type
	}
	if ct == "" {
		if r.ContentLength == 0 {
			return ""
		}
		wanted, _ := formWanted(endpoint)
		return wanted + " and the body has no Content-Type, so none were read: send Content-Type: application/x-www-form-urlencoded"
	}
	mt, _, err := mime.ParseMediaType(ct)
	switch {
	case err != nil:
		return malformedContentType(endpoint, r)
	case mt == "application/x-www-form-urlencoded":
		return ""
	}
	wanted, _ := formWanted(endpoint)
	return wanted + ", not " + quotedHeader(mt) + ": send Content-Type: application/x-www-form-urlencoded"
}

// authenticatesClient: the endpoints where clients authenticate (RFC 6749
// §2.3), limited again per verified client after authentication.
func authenticatesClient(endpoint string) bool {
	return endpoint == "token" || endpoint == "revoke" || endpoint == "introspect"
}

// queryCredentials are the client credentials a client-authenticating
// request must not carry in its URL: client_secret (RFC 6749 §2.3.1: "MUST
// NOT be included in the request URI") and a client assertion (RFC 7521
// §4.2 and RFC 7523 §2.2 send it in the body).
var queryCredentials = []string{"client_secret", "client_assertion"}

// queryCredential is the first of queryCredentials the query string of a
// request to a client-authenticating endpoint holds, or "". Such a request
// is refused 400 invalid_request naming the parameter, never its value:
// fosite reads credentials from the body only, and answered "no client
// authentication" (401) to a client whose secret then sat in every log of
// URLs between it and us.
func queryCredential(endpoint string, r *http.Request) string {
	if r.URL.RawQuery == "" || !authenticatesClient(endpoint) {
		return ""
	}
	q := r.URL.Query()
	for _, p := range queryCredentials {
		if q.Has(p) {
			return p
		}
	}
	return ""
}

// remoteAddr is the request's trusted client address (platform/clientip).
func (s *Server) remoteAddr(r *http.Request) string { return s.addrs.String(r) }

// limit is the per-address limit of an endpoint.
func (s *Server) limit(endpoint string) ratelimit.Limit {
	switch endpoint {
	case "token", "revoke", "introspect":
		return ratelimit.PerMinute(s.cfg.RateTokenAddress)
	case "userinfo":
		return ratelimit.PerMinute(s.cfg.RateUserinfo)
	case "register":
		return ratelimit.PerMinute(s.cfg.RateRegister)
	}
	return ratelimit.PerMinute(s.cfg.RateAuthorize)
}

func noStore(w http.ResponseWriter) {
	h := w.Header()
	h["Cache-Control"] = []string{"no-store"} // Set, with the key canonical already
	h["Pragma"] = []string{"no-cache"}
}

// headerValue is h.Get(key) for a key in canonical form
// (textproto.CanonicalMIMEHeaderKey: "Content-Type"), the form net/http
// stores a request's header keys in: the map read, without canonicalizing
// key again — ~400 instructions a call, which a token request made a
// dozen times (docs/benchmarks/auth-server-history.md, session 40
// "perf12").
func headerValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// cors lets ALLOWED_ORIGINS call the JSON endpoints from a browser. It
// also refuses an access_token in the query string on every path.
func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery != "" && r.URL.Query().Has("access_token") {
			s.metrics.errors.WithLabelValues("any", "invalid_request").Inc()
			writeJSONError(w, http.StatusBadRequest, "invalid_request", "access_token in the query string is not accepted")
			return
		}
		origin := headerValue(r.Header, "Origin")
		if origin != "" && slices.Contains(s.cfg.AllowedOrigins, origin) && !strings.HasPrefix(r.URL.Path, "/oauth/authorize") {
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Add("Vary", "Origin")
			if r.Method == http.MethodOptions {
				w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
				// MCP-Protocol-Version: MCP clients send it on every
				// discovery request (the TypeScript SDK on the
				// authorization server's metadata); not safelisted, so
				// the browser asks for it here.
				w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, MCP-Protocol-Version")
				w.Header().Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// rateLimited names a 429 answer (a rate limit or a client's failure
// back-off) in tollgate_auth_errors_total, audit results and logs, where it
// must stay apart from a 503. It is no OAuth error code: the answer's
// error is wireError's.
const rateLimited = "rate_limited"

// wireError is the error code sent for code. A 429 is answered
// temporarily_unavailable, with Retry-After: RFC 6749 §5.2 (token), RFC
// 7009 §2.2.1 (revocation), RFC 7591 §3.2.2 (registration) and RFC 6750
// §3.1 define no code for a rate limit, and temporarily_unavailable is the
// registered one for "unable to handle the request due to a temporary
// overloading" (RFC 6749 §4.1.2.1, §11.4 registry; RFC 7009 §2.2.1 uses
// it at the revocation endpoint), so a client that reads the error field
// sees a code it knows; slow_down (RFC 8628 §3.5) is the device flow's
// polling signal and means nothing to other grants. Status 429 and
// Retry-After (RFC 6585 §4) say it is a limit.
func wireError(code string) string {
	if code == rateLimited {
		return "temporarily_unavailable"
	}
	return code
}

// writeJSONError writes an OAuth error response's JSON body (RFC 6749
// §5.2; RFC 7009 §2.2.1, RFC 7591 §3.2.2, RFC 7662 §2.3, RFC 6750 §3.1
// share it) with status, code (wireError's) and desc in error_description's
// characters (errorDescription): every JSON error of the auth-server is
// written here.
func writeJSONError(w http.ResponseWriter, status int, code, desc string) {
	code = wireError(code)
	desc = errorDescription(desc, 0)
	noStore(w)
	w.Header().Set("Content-Type", "application/json")
	// An error can quote the request (an unregistered redirect_uri, a
	// client id): never let a browser sniff it as HTML.
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(oauthError{Error: code, Description: desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// hintNoClientCredentials is fosite's hint for a request with neither
// HTTP Basic nor a client_id (nor a client assertion).
const hintNoClientCredentials = "Client credentials missing or malformed in both HTTP Authorization header and HTTP POST body."

// descCodeEnded is the error_description of a code whose user disconnected
// its app after it was issued.
const descCodeEnded = "The user disconnected this app after the authorization code was issued: the code no longer works. Start a new authorization request."

// classify turns an error from fosite or the store into an OAuth error:
// Redis outages become 503 temporarily_unavailable, a code redeemed by a
// concurrent request invalid_grant; a request without any client
// authentication invalid_client; internals never reach the client.
func classify(err error) (status int, code, desc string) {
	switch {
	case errors.Is(err, store.ErrUnavailable):
		return http.StatusServiceUnavailable, "temporarily_unavailable", "the service is temporarily unavailable; retry later"
	case errors.Is(err, errSigningBusy):
		return http.StatusServiceUnavailable, "temporarily_unavailable", "the server is busy; retry after the Retry-After delay"
	case errors.Is(err, clients.ErrFetchBusy), errors.Is(err, clients.ErrFetchUnavailable):
		// A client's metadata document could not be fetched (the fetch
		// bound stayed full, or its server gave no answer): a grant of
		// it read meanwhile is neither inactive nor invalid (brk48 #2,
		// auth49 #2).
		_, desc, _ := fetchNotDone(err)
		return http.StatusServiceUnavailable, "temporarily_unavailable", desc
	case errors.Is(err, store.ErrCodeReplayed), errors.Is(err, fosite.ErrInvalidatedAuthorizeCode):
		return http.StatusBadRequest, "invalid_grant", "The authorization code has already been used."
	case errors.Is(err, store.ErrCodeEnded):
		// The user disconnected the app after the code was issued
		// (Disconnect, store.EndCodes): RFC 6749 §5.2's invalid_grant,
		// "revoked".
		return http.StatusBadRequest, "invalid_grant", descCodeEnded
	}
	rfc := fosite.ErrorToRFC6749Error(err)
	if rfc.ErrorField == "invalid_request" && rfc.HintField == hintNoClientCredentials {
		// RFC 6749 §5.2 names "no client authentication included" as
		// invalid_client (401); fosite answered invalid_request.
		return http.StatusUnauthorized, "invalid_client", "no client authentication: send client_id (a public client) or the client's credentials (client_secret_basic, client_secret_post or private_key_jwt; RFC 6749 section 2.3)"
	}
	if rfc.ErrorField == "invalid_request" && errors.Is(err, fosite.ErrInactiveToken) {
		return http.StatusBadRequest, "invalid_grant", "The refresh token was already used."
	}
	status = rfc.CodeField
	if status == 0 {
		status = http.StatusBadRequest
	}
	code = rfc.ErrorField
	switch code {
	case "request_unauthorized", "request_forbidden":
		code = "invalid_request"
	case "jti_known":
		// RFC 7523: a replayed client assertion is a failed authentication.
		return http.StatusUnauthorized, "invalid_client", "the client assertion was already used"
	}
	if status >= 500 {
		return http.StatusInternalServerError, "server_error", "the server could not complete the request"
	}
	return status, code, rfc.GetDescription()
}

var errorTemplate = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign-in error</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1b1b1b}code{background:#f2f2f2;padding:.1rem .3rem}</style>
</head><body><h1>Sign-in could not continue</h1>
<p>{{.Description}}</p><p>Error code: <code>{{.Error}}</code></p>
<p>Return to the application and start again.</p></body></html>`))

// unavailableRetryAfter is the Retry-After (seconds) of a 503 for a store
// or rate-limiter outage.
const unavailableRetryAfter = "5"

// limiterUnavailable is the error description of a request a rate limiter
// could not judge (limitOutage).
const limiterUnavailable = "the service is temporarily unavailable; retry later"

// limitVerdict is what a rate limiter's answer means for a request.
type limitVerdict int

const (
	limitPass    limitVerdict = iota // within the limit: the request goes on
	limitOutage                      // the limiter failed (Redis): refused, temporarily_unavailable
	limitRefused                     // over the limit: refused, Retry-After set
)

// limitVerdict reads the answer (res, err) of a rate limiter of endpoint to
// r, and does what every limiter's refusal does whatever the endpoint
// answers with (guard: a 503 or 429 page or JSON; the authorization
// request's parked-KiB budget: a redirect to the client): a failure is
// logged, "rate limiter unavailable", and the request is refused, not let
// through unlimited; a refusal is counted in
// tollgate_auth_rate_limit_rejections_total and says when to retry
// (Retry-After, RFC 6585 §4, RFC 9110 §10.2.3). The caller answers
// limitOutage and limitRefused its own way.
func (s *Server) limitVerdict(w http.ResponseWriter, r *http.Request, endpoint string, res ratelimit.Result, err error) limitVerdict {
	switch {
	case err != nil:
		s.log.WarnContext(r.Context(), "rate limiter unavailable", "endpoint", endpoint, "err", err)
		return limitOutage
	case !res.Allowed:
		s.metrics.rateLimited.WithLabelValues(endpoint).Inc()
		w.Header().Set("Retry-After", ratelimit.RetryAfterSeconds(res.RetryAfter))
		return limitRefused
	}
	return limitPass
}

// pageParams are the parameters the pages other than the authorization
// endpoint's take, which their error pages may name: the callback's
// (callbackParams) and the consent form's fields, as its template has them
// (consentFormFields) — a field added to the form is named without a list
// to keep in step.
var pageParams = slices.Concat(callbackParams, consentFormFields)

// callbackParams are the parameters of the upstream's authorization
// response the callback reads: RFC 6749 §4.1.2 and §4.1.2.1, RFC 9207
// §2, OpenID Connect Session Management's session_state, and Sign in with
// Apple's user (its form_post's name of the user, withAppleName).
var callbackParams = []string{"state", "code", "iss", "error", "error_description", "error_uri", "session_state", "user"}

// consentFormFields are the names of the consent form's fields (inputs
// and buttons), read from consentTemplate's form: the one place they are
// defined.
var consentFormFields = formFieldNames(consentTemplate)

// formFieldName is a field's name attribute in a template's text.
var formFieldName = regexp.MustCompile(`\bname="([^"{}]+)"`)

// formFieldNames returns the name attributes, each once, found between
// the first "<form" and the "</form>" after it in t's text (none when t
// has no form). A name written with a template action is not found:
// the auth-server's TestRepeatedPageFieldIsNamed sends each field of a
// rendered consent page twice and wants it named.
func formFieldNames(t *template.Template) []string {
	text := t.Tree.Root.String()
	start := strings.Index(text, "<form")
	if start < 0 {
		return nil
	}
	form, _, _ := strings.Cut(text[start:], "</form>")
	var names []string
	for _, m := range formFieldName.FindAllStringSubmatch(form, -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	return names
}

// repeatedParam describes the refusal of a repeated parameter k. A page
// names k only when it is one of the page's own parameters: anyone can
// send a browser to the callback or post a cross-site form to the consent
// endpoint with a parameter named with a sentence of their choosing,
// which the page would show under this server's name (reflected content,
// a phishing text). The authorization endpoint's page says fixed words
// (errorPage); a JSON answer is read by the client that sent it.
func repeatedParam(endpoint string, api bool, k string) string {
	if api || endpoint == "authorize" || slices.Contains(pageParams, k) {
		return "parameter " + k + " is repeated"
	}
	return "a parameter of the request is repeated"
}

// errorPage answers an authorization-endpoint error that must not redirect
// (the redirect URI is not verified): HTML for browsers, JSON otherwise.
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, endpoint string, status int, code, desc string) {
	noStore(w)
	if status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		// Every 503 says when to retry (RFC 9110 §10.2.3), pages too: a
		// store outage found past the rate limiter (the address's tokens
		// leased, so no Redis round trip there) reached the client lookup
		// and answered without one.
		w.Header().Set("Retry-After", unavailableRetryAfter)
	}
	if !strings.Contains(r.Header.Get("Accept"), "text/html") {
		writeJSONError(w, status, code, desc)
		return
	}
	text := desc
	if endpoint == "authorize" {
		// The page is on this server's origin, and anyone can send a
		// browser to it with a client_id, redirect_uri or scope of their
		// choosing, which the description quotes: on the page it would be
		// the sender's words under our name (reflected content, a phishing
		// text). The page says fixed words chosen by the code; the
		// description stays in the JSON answer and in the log.
		text = authorizePageText(status, code)
		// At most a line a minute (pageLog): anyone can send browsers
		// here. The JSON answer has the description at every request.
		if n, ok := s.pageLog.event(); ok {
			s.log.InfoContext(r.Context(), "authorization error shown on a page: the redirect URI is not verified (at most one line a minute)",
				"error", code, "status", status, "error_description", desc, "pages", n)
		}
	}
	pageHeaders(w, "")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = errorTemplate.Execute(w, oauthError{Error: wireError(code), Description: text})
}

// authorizePageText is what the authorization endpoint's error page says
// (shown when the error cannot go to a verified redirect URI, RFC 6749
// §4.1.2.1): fixed words by the HTTP status or the error code, never the
// error_description (errorPage).
func authorizePageText(status int, code string) string {
	switch {
	case status == http.StatusServiceUnavailable:
		return "This server could not start the sign-in now. Try again in a moment: reload this page."
	case status == http.StatusTooManyRequests:
		return "Too many sign-in requests came from your network. Try again in a minute."
	case status == http.StatusRequestEntityTooLarge || status == http.StatusRequestURITooLong:
		return "The app's sign-in request is too long for this server."
	case code == "invalid_client":
		return "The app that sent you here is not known to this server, or its registration could not be checked."
	case code == "invalid_request":
		return "The app's sign-in request was not valid, so this server cannot tell where to send you back."
	}
	if t, ok := interstitialText[code]; ok {
		return t
	}
	return "The sign-in could not be completed."
}

// cspOrigin is an origin that can stand in a CSP source list as is: a
// redirect URI's host may hold RFC 3986 sub-delimiters (semicolon, comma,
// apostrophe, star, …), which would end the directive or the policy and
// add a directive of the client's choosing (a dynamically registered
// https://a.example;sandbox/cb).
var cspOrigin = regexp.MustCompile(`^https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)

// pageHeaders forbid framing and limit what a server-rendered page may do;
// formTarget (an origin the page's form answer redirects to) is added to
// form-action when it is a plain origin, and left out otherwise.
func pageHeaders(w http.ResponseWriter, formTarget string) {
	csp := "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
	if cspOrigin.MatchString(formTarget) {
		csp += " " + formTarget
	}
	w.Header().Set("Content-Security-Policy", csp)
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
}

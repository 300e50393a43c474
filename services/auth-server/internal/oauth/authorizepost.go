package oauth

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
)

// authorizePost answers an authorization request sent with POST, which
// OpenID Connect Core 1.0 §3.1.2.1 says the authorization server MUST
// support (parameters form-serialized, §13.2, as
// application/x-www-form-urlencoded): 303 See Other (RFC 9110 §15.4.4: the
// browser follows with a GET) to the issuer's GET /oauth/authorize with
// the same parameters, so the request is handled exactly as that GET —
// its checks, rate limit, audit record and errors.
//
// Not handled in place: the login cookie that binds the sign-in to the
// browser is SameSite=Lax (setLoginCookie), and a relying party's form
// posting from its own site is a cross-site POST, which carries no Lax
// cookie (RFC 6265bis §5.5): the sign-in would be given a new binding
// and replace the browser's, ending a sign-in under way in another tab.
// The GET that follows the 303 is a top-level navigation and carries it.
// The target is always the configured issuer (as onIssuerHost's).
//
// Refused here, on the error page (the redirect URI is not verified yet,
// RFC 6749 §4.1.2.1), 400 invalid_request unless said: parameters in the
// query too (ambiguous: which one counts?), a body that is not
// application/x-www-form-urlencoded or does not decode, and a body longer
// than the GET's query may be (maxAuthorizeQuery; 413 Content Too Large).
func (s *Server) authorizePost(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, desc string) {
		s.metrics.errors.WithLabelValues("authorize", "invalid_request").Inc()
		s.auditRefused(r, "authorize", "invalid_request")
		s.errorPage(w, r, "authorize", status, "invalid_request", desc)
	}
	tooLarge := func() {
		fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("the authorization request's body is larger than %d bytes (HTTP 413): send a shorter state, nonce or scope", maxAuthorizeQuery))
	}
	if r.URL.RawQuery != "" {
		fail(http.StatusBadRequest, "a POST authorization request carries its parameters in the body only, not also in the query (OpenID Connect Core 1.0 section 3.1.2.1): send them in the body, or all in the query of a GET")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAuthorizeQuery))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		tooLarge()
		return
	case err != nil:
		fail(http.StatusBadRequest, "the request body could not be read")
		return
	}
	if len(body) > 0 {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/x-www-form-urlencoded" || len(r.Header.Values("Content-Type")) > 1 {
			fail(http.StatusBadRequest, "the parameters of a POST authorization request are a form: send Content-Type: application/x-www-form-urlencoded (OpenID Connect Core 1.0 section 3.1.2.1, section 13.2)")
			return
		}
	}
	params, err := url.ParseQuery(string(body))
	if err != nil {
		fail(http.StatusBadRequest, "the request body is not a valid form (application/x-www-form-urlencoded, RFC 6749 Appendix B)")
		return
	}
	// Encode writes each parameter percent-encoded, so the Location holds
	// nothing a header may not (a raw space, CR or LF of the body). It may
	// be longer than the body: judged again as the GET's query would be.
	query := params.Encode()
	if len(query) > maxAuthorizeQuery {
		tooLarge()
		return
	}
	s.toIssuerAuthorize(w, http.StatusSeeOther, query)
}

package oauth

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// callbackAnswer is how the callback answers a sign-in that failed
// upstream (Upstream.Exchange's error; signInFailure decides it).
type callbackAnswer struct {
	// retry: the token endpoint did not answer the code exchange
	// (errExchangeUnanswered), so the code may be unspent at the provider
	// and the sign-in may be kept for a reload (keepForRetry: a 503 page).
	// When it is not kept (its retries spent, LOGIN_TTL nearly over), the
	// client gets code below like any other failure.
	retry bool
	// code and desc are the error response sent to the client's redirect
	// URI (RFC 6749 §4.1.2.1: error, error_description), with its state.
	code, desc string
}

// signInFailure is the one map from a failed upstream sign-in to the
// callback's answer (docs/reference/oauth.md: the error table of
// "Authorization request", and #exchange-retry). The error's kind comes from Upstream.Exchange
// (exchangeError for the code exchange):
//   - errUpstreamUnreachable, an outage (RFC 9110 §15.6.3-5: a network
//     error, or 502, 503 or 504 without an OAuth error) of discovery, the
//     token endpoint, the ID token's JWKS or userinfo: temporarily_unavailable,
//     and retry when it is the token endpoint's (errExchangeUnanswered);
//   - the token endpoint's refusal of this server's client authentication
//     (refusedCredentials): server_error telling the operator;
//   - another refusal RFC 6749 §5.2 defines: server_error repeating its code;
//   - a 5xx that is no outage (500, 501, …): server_error naming the status;
//   - a refusal in another shape: server_error, its text only in the log;
//   - an email_verified that is no boolean (errVerifiedClaim), and any
//     other failure to verify the answer: server_error saying so.
//
// Nothing the provider wrote is repeated to the client but a code RFC 6749
// §5.2 registers; the log line (upstreamLogText) has the rest.
func signInFailure(err error) callbackAnswer {
	if errors.Is(err, errUpstreamUnreachable) {
		return callbackAnswer{retry: errors.Is(err, errExchangeUnanswered),
			code: "temporarily_unavailable", desc: "the identity provider is unavailable; retry later"}
	}
	code, status := upstreamRefusal(err)
	switch {
	case refusedCredentials(code, status):
		// The operator's upstream client settings, not the user: say so
		// rather than blame the answer's verification.
		if code != "invalid_client" && code != "unauthorized_client" {
			code = "HTTP 401" // the provider's own code, if any, is in the log
		}
		return callbackAnswer{code: "server_error", desc: "the identity provider refused this server's client credentials (" + code + "); the operator must check the upstream client settings"}
	case slices.Contains(exchangeRefusalCodes, code):
		// Only a registered code (RFC 6749 §5.2) is repeated to the client.
		return callbackAnswer{code: "server_error", desc: "the identity provider refused the code exchange (" + code + ")"}
	case code == "" && status >= 500:
		// 502, 503 and 504 without an OAuth error are outages
		// (tokenEndpointOutage), answered above.
		return callbackAnswer{code: "server_error", desc: fmt.Sprintf("the identity provider's token endpoint failed (HTTP %d)", status)}
	case code != "" || status >= 400:
		// A refusal in a shape RFC 6749 §5.2 does not define: it is not a
		// verification failure; its text is the log's.
		return callbackAnswer{code: "server_error", desc: "the identity provider refused the code exchange (see the auth-server log)"}
	case errors.Is(err, errVerifiedClaim):
		return callbackAnswer{code: "server_error", desc: "the identity provider's email_verified is neither true nor false (a boolean, OpenID Connect Core section 5.1, or the string 'true' or 'false')"}
	}
	return callbackAnswer{code: "server_error", desc: "the identity provider's response could not be verified"}
}

// maxExchangeRetries is how many times a sign-in whose upstream code
// exchange the token endpoint did not answer may be tried again from the
// same callback URL: the first attempt and two reloads. Each attempt sends
// the code to the provider once more; the bound keeps a user reloading
// during a long outage from doing so without end (the state's LOGIN_TTL
// and the provider's code lifetime end it too).
const maxExchangeRetries = 2

// exchangeRetryAfter is the Retry-After (RFC 9110 §10.2.3) of the page of
// a kept sign-in: the token endpoint is tried only when the user reloads.
const exchangeRetryAfter = 5 * time.Second

// keepForRetry answers a callback whose code exchange failed with err,
// after its state p was taken, and reports whether it did. It is called
// only when the token endpoint did not answer (signInFailure's retry:
// errExchangeUnanswered, a network error, or 502, 503 or 504 without an
// OAuth error): the code may be unspent at the provider, so while retries
// and LOGIN_TTL are left the sign-in is put back under its state — for what is left
// of LOGIN_TTL, with one retry more counted — and the browser gets a 503
// page saying to reload it: the same callback URL, reloaded once the
// provider is back, redeems the code (RFC 6749 §4.1.3, with the same PKCE
// verifier, RFC 7636 §4.5). Any other outcome spends the state, as before:
// a success (the sign-in goes on), a refusal (invalid_grant, …), an
// outage after the token endpoint answered (JWKS, userinfo: the code is
// spent), and the maxExchangeRetries+1-th unanswered attempt — reported
// false, for the caller's usual answer to the client.
//
// A callback takes the state with GETDEL (one atomic read and delete), and
// only the callback holding it puts it back, after its exchange failed
// without a session: two callbacks never hold it at once, so however many
// arrive, at most one signs in (a concurrent reload is told the state is
// unknown or used; TestConcurrentCallbacksOneSignIn).
func (s *Server) keepForRetry(w http.ResponseWriter, r *http.Request, state string, p pending, err error) bool {
	if p.Retries >= maxExchangeRetries {
		return false
	}
	left := p.Created.Add(s.cfg.LoginTTL).Sub(s.now())
	if left < time.Second {
		return false
	}
	p.Retries++
	if perr := s.store.PutJSON(r.Context(), "pending", state, p, left); perr != nil {
		return false
	}
	s.log.WarnContext(r.Context(), "upstream token endpoint unavailable at the callback; the sign-in is kept for a reload",
		"err", upstreamLogText(err), "client_id", p.ClientID, "retries_left", maxExchangeRetries-p.Retries)
	w.Header().Set("Retry-After", strconv.Itoa(int(exchangeRetryAfter/time.Second)))
	s.fail(w, r, "callback", http.StatusServiceUnavailable, "temporarily_unavailable",
		"the identity provider is unavailable right now; your sign-in is kept: reload this page in a few seconds")
	return true
}

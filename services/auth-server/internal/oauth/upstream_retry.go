package oauth

import (
	"errors"
	"net/http"
	"strconv"
	"time"
)

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
// after its state p was taken, and reports whether it did. When the token
// endpoint did not answer (errExchangeUnanswered: a network error, or 502,
// 503 or 504 without an OAuth error) the code may be unspent at the
// provider, so the sign-in is put back under its state — for what is left
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
	if !errors.Is(err, errExchangeUnanswered) || p.Retries >= maxExchangeRetries {
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

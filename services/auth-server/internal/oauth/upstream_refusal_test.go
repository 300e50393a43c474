package oauth

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"
)

// TestUpstreamRefusal: the status of a refused code exchange is read only
// where zitadel/oidc's own "http status not ok: " error begins, never from
// the provider's body appended to an error ("… http status not ok: 401"
// in an undecodable answer was taken for a 401, so for refused client
// credentials), nor from the JWKS fetch's; and a registered RFC 6749 §5.2
// code wins over the 401 rule.
func TestUpstreamRefusal(t *testing.T) {
	exchange := func(err error) error { return fmt.Errorf("%w: %w", errCodeExchange, err) }
	lib := func(status, body string) error { return fmt.Errorf("%s%s %s", statusNotOK, status, body) }
	for name, tc := range map[string]struct {
		err         error
		code        string
		status      int
		credentials bool
	}{
		"library 401":            {exchange(lib("401 Unauthorized", "no")), "", 401, true},
		"library 401, wrapped":   {exchange(fmt.Errorf("token: %w", lib("401 Unauthorized", ""))), "", 401, true},
		"library 403 naming 401": {exchange(lib("403 Forbidden", "proxy said http status not ok: 401 Unauthorized")), "", 403, false},
		"undecodable 200 naming 401": {exchange(fmt.Errorf("%s%w %s", undecodable, errors.New("invalid character"), "<p>http status not ok: 401 Unauthorized</p>")),
			"", 0, false},
		"wrapped as text": {exchange(fmt.Errorf("verify: %v", lib("401 Unauthorized", ""))), "", 0, false},
		"JWKS 401":        {exchange(fmt.Errorf("verify: %w", &keysFetchError{fmt.Errorf("oidc: failed to get keys: %w", lib("401 Unauthorized", ""))})), "", 0, false},
		"JSON access_denied naming 401": {exchange(&oidc.Error{ErrorType: "access_denied", Description: "http status not ok: 401 Unauthorized"}),
			"access_denied", 0, false},
		"oauth2 401 access_denied": {exchange(&oauth2.RetrieveError{Response: &http.Response{StatusCode: 401}, ErrorCode: "access_denied"}),
			"access_denied", 401, true},
		"oauth2 401 invalid_grant": {exchange(&oauth2.RetrieveError{Response: &http.Response{StatusCode: 401}, ErrorCode: "invalid_grant"}),
			"invalid_grant", 401, false},
		"oauth2 400 invalid_client": {exchange(&oauth2.RetrieveError{Response: &http.Response{StatusCode: 400}, ErrorCode: "invalid_client"}),
			"invalid_client", 400, true},
		"not the exchange": {lib("401 Unauthorized", ""), "", 0, false},
	} {
		code, status := upstreamRefusal(tc.err)
		if code != tc.code || status != tc.status || refusedCredentials(code, status) != tc.credentials {
			t.Errorf("%s: %q %d (credentials %v), want %q %d (%v)", name, code, status, refusedCredentials(code, status), tc.code, tc.status, tc.credentials)
		}
	}
}

// TestSignInFailure: the one map from a failed upstream sign-in to the
// callback's answer. Only the token endpoint's own outage may keep the
// sign-in for a reload (retry); an outage after it answered (the ID
// token's JWKS, userinfo) goes to the client as temporarily_unavailable
// at once, and a 5xx that is no outage (500) is server_error naming it.
func TestSignInFailure(t *testing.T) {
	const unavailable = "the identity provider is unavailable; retry later"
	answer := func(status int, code string) error {
		return &oauth2.RetrieveError{Response: &http.Response{StatusCode: status}, ErrorCode: code}
	}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	for name, tc := range map[string]struct {
		err        error
		retry      bool
		code, desc string
	}{
		"token endpoint 503":         {exchangeError(answer(503, "")), true, "temporarily_unavailable", unavailable},
		"token endpoint 504":         {exchangeError(answer(504, "")), true, "temporarily_unavailable", unavailable},
		"token endpoint unreachable": {exchangeError(refused), true, "temporarily_unavailable", unavailable},
		"token endpoint 503 with an OAuth error": {exchangeError(answer(503, "temporarily_unavailable")), false, "server_error",
			"the identity provider refused the code exchange (see the auth-server log)"},
		"JWKS unreachable": {exchangeError(fmt.Errorf("verify: %w", &keysFetchError{fmt.Errorf("oidc: failed to get keys: %w", refused)})),
			false, "temporarily_unavailable", unavailable},
		"JWKS 404": {exchangeError(fmt.Errorf("verify: %w", &keysFetchError{fmt.Errorf("oidc: failed to get keys: %s404 Not Found", statusNotOK)})),
			false, "server_error", "the identity provider's response could not be verified"},
		"userinfo unreachable":  {fmt.Errorf("%w: userinfo: %w", errUpstreamUnreachable, refused), false, "temporarily_unavailable", unavailable},
		"discovery unreachable": {fmt.Errorf("%w: discovery: %w", errUpstreamUnreachable, refused), false, "temporarily_unavailable", unavailable},
		"token endpoint 500":    {exchangeError(answer(500, "")), false, "server_error", "the identity provider's token endpoint failed (HTTP 500)"},
		"invalid_grant":         {exchangeError(answer(400, "invalid_grant")), false, "server_error", "the identity provider refused the code exchange (invalid_grant)"},
		"401 without a code": {exchangeError(answer(401, "")), false, "server_error",
			"the identity provider refused this server's client credentials (HTTP 401); the operator must check the upstream client settings"},
		"invalid_client": {exchangeError(answer(400, "invalid_client")), false, "server_error",
			"the identity provider refused this server's client credentials (invalid_client); the operator must check the upstream client settings"},
		"email_verified": {fmt.Errorf("userinfo: %w", libraryVerifiedClaim(errors.New(`json: cannot unmarshal number into Bool`))), false, "server_error",
			"the identity provider's email_verified is neither true nor false (a boolean, OpenID Connect Core section 5.1, or the string 'true' or 'false')"},
		"ID token not verified": {exchangeError(errors.New("oidc: id token signature is invalid")), false, "server_error",
			"the identity provider's response could not be verified"},
	} {
		if a := signInFailure(tc.err); a != (callbackAnswer{retry: tc.retry, code: tc.code, desc: tc.desc}) {
			t.Errorf("%s: %+v\nwant retry %v, %s %q", name, a, tc.retry, tc.code, tc.desc)
		}
	}
}

package oauth

import (
	"errors"
	"fmt"
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

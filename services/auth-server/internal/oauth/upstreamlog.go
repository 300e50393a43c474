package oauth

import (
	"errors"
	"strings"

	"golang.org/x/oauth2"
)

// statusNotOK is how zitadel/oidc's HTTP helper begins the error of an
// answer whose status is not 200 and whose body is no OAuth error (RFC 6749
// §5.2); it appends the status and then the whole body.
const statusNotOK = "http status not ok: "

// upstreamLogText is err's text for the log: logSafe's, and without the
// body of an error answer that is no OAuth error either — a gateway's or
// framework's error page, which may echo the request (the code, a client
// assertion, the access token of a userinfo call) or hold the user's data.
// golang.org/x/oauth2 (the code exchange with a client secret) appends that
// body after "\nResponse: ", zitadel/oidc (userinfo, and the code exchange
// with private_key_jwt) after the status. The status stays; an OAuth error
// answer is logged as its code and description.
func upstreamLogText(err error) string {
	msg := logSafe(err)
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.ErrorCode == "" {
		status := "no response"
		if re.Response != nil {
			status = re.Response.Status
		}
		msg = strings.Replace(msg, re.Error(), "oauth2: cannot fetch token: "+status+" (response body not logged)", 1)
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if full := e.Error(); strings.HasPrefix(full, statusNotOK) {
			code, _, _ := strings.Cut(strings.TrimPrefix(full, statusNotOK), " ")
			msg = strings.Replace(msg, full, statusNotOK+code+" (response body not logged)", 1)
			break
		}
	}
	if i := strings.Index(msg, statusNotOK); i >= 0 && !strings.Contains(msg[i:], "(response body not logged)") {
		// Not found as an error of the chain (flattened by a %v): cut at
		// the status code.
		code, _, _ := strings.Cut(msg[i+len(statusNotOK):], " ")
		msg = msg[:i+len(statusNotOK)] + code + " (response body not logged)"
	}
	return msg
}

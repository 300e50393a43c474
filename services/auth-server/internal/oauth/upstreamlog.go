package oauth

import (
	"errors"
	"strings"

	"golang.org/x/oauth2"
)

// undecodable is how zitadel/oidc's HTTP helper begins the error of a 200
// answer it could not decode; it appends the whole response body after the
// decoding error.
const undecodable = "failed to unmarshal response: "

// statusNotOK is how zitadel/oidc's HTTP helper begins the error of an
// answer whose status is not 200 and whose body is no OAuth error (RFC 6749
// §5.2); it appends the status and then the whole body.
const statusNotOK = "http status not ok: "

// cutBody replaces, in msg (err's text or a redaction of it), the text of
// the chain's error that begins with prefix — one of the library's, which
// end in a response body — by prefix, what kept takes from that error and
// the rest of its text, and a note that the body is not logged. When no
// error of the chain begins with prefix (one wrapped it with %v), msg is
// cut there instead, kept reading the rest of msg with a nil error.
func cutBody(msg string, err error, prefix string, kept func(e error, rest string) string) string {
	i := strings.Index(msg, prefix)
	if i < 0 {
		return msg
	}
	redacted := func(e error, rest string) string {
		return strings.TrimRight(prefix+kept(e, rest), " ") + " (response body not logged)"
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if full := e.Error(); strings.HasPrefix(full, prefix) {
			return strings.Replace(msg, full, redacted(e, strings.TrimPrefix(full, prefix)), 1)
		}
	}
	return msg[:i] + redacted(nil, msg[i+len(prefix):])
}

// logSafe is err's text without the response body the library appends to
// a decoding error: a userinfo body holds the user's personal data and a
// token response (private_key_jwt goes through that helper) the tokens, so
// neither may reach the log. The decoding error itself stays.
func logSafe(err error) string {
	return cutBody(err.Error(), err, undecodable, func(e error, _ string) string {
		if inner := errors.Unwrap(e); e != nil && inner != nil {
			return inner.Error()
		}
		return ""
	})
}

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
	// The status code is the first word after the prefix.
	return cutBody(msg, err, statusNotOK, func(_ error, rest string) string {
		code, _, _ := strings.Cut(rest, " ")
		return code
	})
}

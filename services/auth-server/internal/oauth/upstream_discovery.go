package oauth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxDiscoveryDocument bounds the discovery document read, as zitadel/oidc
// bounds it (pkg/http.MaxResponseBodySize).
const maxDiscoveryDocument = 1 << 20

// discoveryAnswer is what the provider's discovery URL answered, as the
// discovery tap read it: the final status of its redirects and, for a 200,
// the document's members the auth-server reads and what makes it unusable.
type discoveryAnswer struct {
	status     int
	statusText string // "404 Not Found"
	// problem says what makes a 200 answer no usable discovery document
	// ("" when none does), with a bounded, scrubbed excerpt of the body
	// where the body is at fault.
	problem  string
	issuer   string
	jwksURI  string
	issParam bool
}

// outage reports whether the answer is an outage at or behind the
// provider's front (RFC 9110 §15.6.3-5: 502, 503, 504), as a token, JWKS or
// userinfo endpoint's same statuses are (providerOutage): discovery is
// tried again, and the client told temporarily_unavailable.
func (a *discoveryAnswer) outage() bool {
	switch a.status {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// readDiscoveryAnswer reads a 200 answer's body: a JSON object (OpenID
// Connect Discovery 1.0 §4.2) with the members the auth-server needs, of
// those §3 makes REQUIRED — issuer, authorization_endpoint, token_endpoint
// and jwks_uri, each a string, the endpoints absolute http(s) URLs. The
// other REQUIRED members (response_types_supported,
// subject_types_supported, id_token_signing_alg_values_supported) are not
// required: nothing reads the first two, and without the third the
// library verifies RS256, the algorithm §3 says every provider supports.
func readDiscoveryAnswer(status int, statusText string, body []byte) *discoveryAnswer {
	a := &discoveryAnswer{status: status, statusText: statusText}
	if status != http.StatusOK {
		return a
	}
	if len(body) > maxDiscoveryDocument {
		a.problem = fmt.Sprintf("is larger than %d bytes", maxDiscoveryDocument)
		return a
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil || members == nil {
		why := "null"
		if err != nil {
			why = err.Error()
		}
		a.problem = fmt.Sprintf("is not a JSON object (%s; OpenID Connect Discovery 1.0 §4.2); it begins %s", why, bodyExcerpt(body))
		return a
	}
	var missing, malformed []string
	str := func(name string, isURL bool) string {
		raw, ok := members[name]
		if !ok || string(raw) == "null" {
			missing = append(missing, name)
			return ""
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			malformed = append(malformed, name+" is not a string")
			return ""
		}
		if s == "" {
			missing = append(missing, name)
			return ""
		}
		if isURL {
			if u, err := url.Parse(s); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				malformed = append(malformed, fmt.Sprintf("%s %s is not an absolute http(s) URL", name, quoteBounded(s, maxLoggedIssuer)))
				return ""
			}
		}
		return s
	}
	a.issuer = str("issuer", false)
	str("authorization_endpoint", true)
	str("token_endpoint", true)
	a.jwksURI = str("jwks_uri", true)
	var iss bool
	if json.Unmarshal(members["authorization_response_iss_parameter_supported"], &iss) == nil {
		a.issParam = iss
	}
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, "lacks "+strings.Join(missing, ", "))
	}
	parts = append(parts, malformed...)
	if len(parts) > 0 {
		a.problem = strings.Join(parts, "; ") + " (REQUIRED members, OpenID Connect Discovery 1.0 §3)"
	}
	return a
}

// discoveryError is the configuration error of an answer that is no
// usable discovery document and no outage: a document readDiscoveryAnswer
// refused, or a status other than 200 (Discovery 1.0 §4.2: a successful
// answer is 200 OK) and the outages'. The message names the setting, the
// URL and what is wrong — never more of the body than its excerpt.
func discoveryError(issuer, wellKnown string, a *discoveryAnswer) error {
	if a.problem != "" {
		return fmt.Errorf("%w: UPSTREAM_ISSUER_URL is %q, but the provider's discovery document (%s) %s",
			errUpstreamMismatch, issuer, wellKnown, a.problem)
	}
	return fmt.Errorf("%w: UPSTREAM_ISSUER_URL is %q, but its discovery document's URL (%s) answered HTTP %s, not 200 (OpenID Connect Discovery 1.0 §4.2; §4.1: the issuer plus /.well-known/openid-configuration)",
		errUpstreamMismatch, issuer, wellKnown, a.statusText)
}

// maxBodyExcerpt bounds the part of a body quoted in an error.
const maxBodyExcerpt = 80

// bodyExcerpt is the start of body for the log: maxBodyExcerpt bytes
// (and the rest of the last character), each run of white space one space, every other character that is
// not printable (control characters, bidirectional overrides, invalid
// UTF-8) a '?', quoted. A discovery request carries no credential, so its
// answer echoes none; the bound keeps a large error page out of the log.
func bodyExcerpt(body []byte) string {
	var b strings.Builder
	space := false
	for len(body) > 0 && b.Len() < maxBodyExcerpt {
		r, n := utf8.DecodeRune(body)
		body = body[n:]
		switch {
		case unicode.IsSpace(r):
			if !space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = true
			continue
		case r == utf8.RuneError || !unicode.IsPrint(r):
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
		space = false
	}
	s := strconv.Quote(strings.TrimRight(b.String(), " "))
	if len(bytes.TrimSpace(body)) > 0 {
		s += "…"
	}
	return s
}

// quoteBounded quotes s, cut to n bytes ("…" after a cut).
func quoteBounded(s string, n int) string {
	if len(s) > n {
		return strconv.Quote(strings.ToValidUTF8(s[:n], "")) + "…"
	}
	return strconv.Quote(s)
}

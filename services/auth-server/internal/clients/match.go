package clients

import (
	"net"
	"net/url"
	"strconv"
	"strings"
)

// MatchRedirectURI reports whether the redirect_uri of an authorization
// request matches one of the client's registered redirect URIs:
//
//   - by exact string comparison (RFC 6749 §3.1.2.3, OAuth 2.1 §2.3.1;
//     RFC 9700 §4.1.3) — so "https://app.example:443/cb", a changed
//     letter case or an added path segment do not match
//     "https://app.example/cb";
//   - or, for a registered loopback IP literal with the http scheme
//     (http://127.0.0.1/…, http://[::1]/…), with any TCP port (1–65535, or
//     none): RFC 8252 §7.3
//     says the server MUST allow any port for loopback IP redirect URIs.
//     Scheme (its letter case too), IP literal, path and query must still
//     be identical.
//
// "localhost" is not a loopback IP literal and keeps exact matching:
// RFC 8252 §8.3 calls it NOT RECOMMENDED because the name may resolve to
// a non-loopback interface.
func MatchRedirectURI(registered []string, requested string) bool {
	for _, reg := range registered {
		if reg == requested || loopbackMatch(reg, requested) {
			return true
		}
	}
	return false
}

func loopbackMatch(registered, requested string) bool {
	// url.Parse lowers the scheme: "HTTP://127.0.0.1:1/cb" must not pass
	// as "http://127.0.0.1:1/cb" — only the port may differ.
	if !strings.HasPrefix(registered, "http://") || !strings.HasPrefix(requested, "http://") {
		return false
	}
	reg, err := url.Parse(registered)
	if err != nil || !isLoopbackIPRedirect(reg) {
		return false
	}
	req, err := url.Parse(requested)
	if err != nil || !isLoopbackIPRedirect(req) {
		return false
	}
	return req.Hostname() == reg.Hostname() && req.EscapedPath() == reg.EscapedPath() &&
		req.RawQuery == reg.RawQuery && req.ForceQuery == reg.ForceQuery
}

// isLoopbackIPRedirect: http, a loopback IP literal, no user info or
// fragment, and no port or a TCP port (1–65535: a client listens on one, so
// port 0 or 99999 names no redirect the client can receive).
func isLoopbackIPRedirect(u *url.URL) bool {
	if u.Scheme != "http" || u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return false
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return false
		}
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}

// CanonicalResource returns the entry of allowed that the RFC 8707
// resource indicator requested names, and whether there is one. The scheme
// and host compare case-insensitively (RFC 3986 §6.2.2.1: they are
// case-insensitive; the MCP authorization spec's canonical server URI is
// lower-case); the path, query and port compare exactly. The returned value
// is the configured (canonical) form, which becomes the token's aud.
func CanonicalResource(allowed []string, requested string) (string, bool) {
	want, ok := resourceKey(requested)
	if !ok {
		return "", false
	}
	for _, a := range allowed {
		if k, ok := resourceKey(a); ok && k == want {
			return a, true
		}
	}
	return "", false
}

// resourceKey is the resource with scheme and host lower-cased. RFC 8707
// §2: an absolute URI without a fragment.
func resourceKey(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" || strings.Contains(raw, "#") {
		return "", false
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	return u.String(), true
}

// HostAllowed reports whether the Client ID Metadata Document URL clientID
// is on one of the allowed hosts (CIMD_ALLOWED_HOSTS). An entry is a host
// name compared case-insensitively ("app.example.com", with a port if the
// URL has one) or "*." and a domain, which allows every subdomain of it
// (not the domain itself). An empty list allows every host.
func HostAllowed(allowed []string, clientID string) bool {
	if len(allowed) == 0 {
		return true
	}
	u, err := url.Parse(clientID)
	if err != nil || u.Host == "" {
		return false
	}
	host := strings.ToLower(u.Host)
	for _, a := range allowed {
		a = strings.ToLower(a)
		if suffix, ok := strings.CutPrefix(a, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) {
				return true
			}
		} else if host == a {
			return true
		}
	}
	return false
}

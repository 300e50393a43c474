package clients

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
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
//     be identical;
//   - or, for a registered http://localhost/… without a port, with any TCP
//     port (or none) on the same host "localhost" (exactly, lower-case),
//     path and query: the same rule. Native apps' published Client ID
//     Metadata Documents list "http://localhost/callback" and then listen
//     on a port of their own (Claude Code). RFC 8252 §8.3 calls localhost
//     NOT RECOMMENDED (the name may resolve to a non-loopback interface)
//     but does not forbid it, and a port-less registration can mean
//     nothing else: no native app listens on port 80. A registered
//     localhost URI with a port keeps exact matching (a browser app such
//     as the MCP Inspector UI at http://localhost:6274 is one origin, not
//     a port pattern), and localhost never matches 127.0.0.1 or ::1, nor
//     the other way round.
//
// A requested URI with a fragment never matches, an empty one ("…/cb#")
// included: RFC 6749 §3.1.2 forbids a fragment component, and "#" starts
// one even when nothing follows it (RFC 3986 §3.5); url.Parse drops an
// empty fragment, so the redirect would lose what the token request had
// to repeat. Nor does a loopback URI whose port is empty
// ("127.0.0.1:/cb") or has a leading zero ("127.0.0.1:08976/cb"):
// RFC 8252 §7.3 lets the port vary, not its spelling (CheckPort).
func MatchRedirectURI(registered []string, requested string) bool {
	if RequestedRedirectProblem(requested) != nil {
		return false
	}
	for _, reg := range registered {
		if reg == requested || loopbackMatch(reg, requested) {
			return true
		}
	}
	return false
}

// ForRedirect is c as fosite's authorization request handling is to see
// it for the request's redirect URI redirect: fosite checks redirect_uri
// again against GetRedirectURIs with rules of its own, which lack the
// port-less localhost rule of MatchRedirectURI. When redirect matches c
// only under MatchRedirectURI's rules, the copy returned lists it too, so
// MatchRedirectURI alone decides; otherwise it is c itself.
func (c *Client) ForRedirect(redirect string) *Client {
	if redirect == "" || slices.Contains(c.RedirectURIs, redirect) || !MatchRedirectURI(c.RedirectURIs, redirect) {
		return c
	}
	cp := *c
	cp.RedirectURIs = append(slices.Clip(c.RedirectURIs), redirect)
	return &cp
}

func loopbackMatch(registered, requested string) bool {
	// url.Parse lowers the scheme: "HTTP://127.0.0.1:1/cb" must not pass
	// as "http://127.0.0.1:1/cb" — only the port may differ.
	if !strings.HasPrefix(registered, "http://") || !strings.HasPrefix(requested, "http://") {
		return false
	}
	reg, err := url.Parse(registered)
	if err != nil || !isLoopbackIPRedirect(reg) && !isPortlessLocalhostRedirect(reg) {
		return false
	}
	req, err := url.Parse(requested)
	if err != nil || !isLoopbackIPRedirect(req) && !isLocalhostRedirect(req) {
		return false
	}
	return req.Hostname() == reg.Hostname() && req.EscapedPath() == reg.EscapedPath() &&
		req.RawQuery == reg.RawQuery && req.ForceQuery == reg.ForceQuery
}

// isLocalhostRedirect: http, the host exactly "localhost", no user info,
// fragment or opaque part, and no port or a TCP port (CheckPort).
func isLocalhostRedirect(u *url.URL) bool {
	return u.Scheme == "http" && u.Host != "" && u.Hostname() == "localhost" && u.User == nil &&
		u.Fragment == "" && u.Opaque == "" && CheckPort(u) == nil
}

// isPortlessLocalhostRedirect: a localhost redirect (isLocalhostRedirect)
// registered without a port, which matches any port (MatchRedirectURI).
func isPortlessLocalhostRedirect(u *url.URL) bool {
	return isLocalhostRedirect(u) && u.Host == "localhost"
}

// RequestedRedirectProblem says why the redirect_uri of an authorization
// request can match no registered URI whatever the client registered,
// nil if it may: a fragment, even an empty "#" (RFC 6749 §3.1.2), or a
// port CheckPort refuses. The authorization endpoint shows it (the
// request is not redirected: its redirect URI is not verified).
func RequestedRedirectProblem(raw string) error {
	if strings.Contains(raw, "#") {
		return errors.New(`must not have a fragment, not even an empty "#" (RFC 6749 section 3.1.2)`)
	}
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return CheckPort(u)
	}
	return nil
}

// isLoopbackIPRedirect: http, a loopback IP literal, no user info or
// fragment, and no port or a TCP port (1–65535: a client listens on one, so
// port 0 or 99999 names no redirect the client can receive).
func isLoopbackIPRedirect(u *url.URL) bool {
	if u.Scheme != "http" || u.User != nil || u.Fragment != "" || u.Opaque != "" || CheckPort(u) != nil {
		return false
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}

// CheckPort accepts a URL without a port, or with a TCP port (1–65535)
// written as one canonical decimal number. Refused: an empty port after
// the ":" (RFC 3986 §3.2.3 allows it, but §6.2.3 normalizes it away:
// "http://127.0.0.1:/cb" is "http://127.0.0.1/cb" spelled otherwise), a
// leading zero (":08976" is port 8976 spelled otherwise), port 0 and
// ports over 65535 (no client listens there). A redirect URI has one
// spelling: the authorization request's is compared as a string with the
// registered one (RFC 6749 §3.1.2.3) and the token request's with the
// authorization request's (§4.1.3).
func CheckPort(u *url.URL) error {
	if strings.HasSuffix(u.Host, ":") {
		return errors.New(`has an empty port: remove the ":" after the host, or give the port (RFC 3986 section 3.2.3, section 6.2.3)`)
	}
	p := u.Port()
	if p == "" {
		return nil
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a TCP port (1-65535)", p)
	}
	if p[0] == '0' {
		return fmt.Errorf("port %q has a leading zero: write %d", p, n)
	}
	return nil
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

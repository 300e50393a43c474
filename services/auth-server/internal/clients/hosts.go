package clients

import (
	"net"
	"net/netip"
	"strings"
)

// Three questions are asked of a host name here, and each has its own
// rule, named for what it decides: is it a loopback redirect host (RFC
// 8252), may a browser treat an http origin on it as secure (W3C Secure
// Contexts), does it reach the user's own machine (consent reuse, a
// metadata document's host). They differ on purpose: RFC 8252 tolerates
// "localhost" only, not the *.localhost names browsers and RFC 6761 treat
// as loopback; and an unspecified address (0.0.0.0) connects to the local
// machine without being a secure context.

// LoopbackRedirectHost reports whether h (url.URL.Hostname) is the host of
// a loopback redirect URI in the sense of RFC 8252 §7.3: a loopback IP
// literal (127.0.0.0/8, ::1), on which only a process of the user's device
// can listen — or "localhost", in any letter case, which RFC 8252 §8.3
// calls NOT RECOMMENDED (the name may resolve elsewhere) and which is
// tolerated because native and MCP clients register
// http://localhost:<port>/callback. A *.localhost name is not: RFC 8252
// names none. It decides where a plain-http redirect URI is allowed in
// production (CheckRedirectURI) and whose errors go to the client without
// the interstitial page (oauth's trustedRedirect).
func LoopbackRedirectHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// SecureContextHost reports whether a browser treats an http origin on
// host h as potentially trustworthy (W3C Secure Contexts §3.1): a loopback
// address (127.0.0.0/8, ::1) or a localhost name (localhostName). There it
// keeps a Secure cookie from plain http, so the login cookie can be
// __Host- and SameSite=None (UPSTREAM_RESPONSE_MODE=form_post).
func SecureContextHost(h string) bool {
	if localhostName(h) {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

// ownMachine reports whether host names the machine the browser runs on:
// a localhost name (localhostName), a loopback address, or an unspecified
// one (0.0.0.0, ::), which connects to the local machine; an address
// written with a trailing dot too.
func ownMachine(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if localhostName(h) {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && (ip.IsLoopback() || ip.IsUnspecified())
}

// localhostName reports whether h is localhost or a name under it, which
// resolve to a loopback address (RFC 6761 §6.3), in any letter case (a
// browser's URL parser lower-cases the host) and with or without one
// trailing dot (W3C Secure Contexts §3.1 lists "localhost.").
func localhostName(h string) bool {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	return h == "localhost" || strings.HasSuffix(h, ".localhost")
}

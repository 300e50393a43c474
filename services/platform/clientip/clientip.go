// Package clientip is the fleet's one rule for the address of the client
// behind a request, used by every service that keys anything (rate
// limits, audit records) on it:
//
//   - The TCP peer is the client unless it is a trusted proxy
//     (TRUSTED_PROXIES: comma-separated CIDRs or addresses; empty by
//     default, so nothing is trusted and X-Forwarded-For is ignored).
//   - Behind trusted proxies, the client is the right-most
//     X-Forwarded-For entry that is not a trusted proxy: every proxy
//     appends the address it received the request from, so entries to the
//     right of the first untrusted one were written by our proxies and
//     entries to its left are whatever the client chose to send.
//   - When every entry is a trusted proxy, the left-most one is the client.
//     An entry that is not an IP address ends the walk: the client is the
//     last trusted hop seen (a request never gets to name its address).
//
// This is the "rightmost untrusted" rule of the X-Forwarded-For
// documentation (MDN) and of RFC 7239 §5.2's node chain.
//
// Rate limits key on Subject: the address for IPv4, its /64 for IPv6.
package clientip

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Setting is the environment variable that lists the trusted proxies.
const Setting = "TRUSTED_PROXIES"

// Resolver resolves client addresses. The zero value trusts nothing.
type Resolver struct{ trusted []netip.Prefix }

// New parses trusted proxies: CIDRs ("10.0.0.0/8") or single addresses
// ("192.0.2.7"). It reports every entry that is neither.
func New(proxies []string) (*Resolver, error) {
	r := &Resolver{}
	var bad []string
	for _, p := range proxies {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if pfx, err := netip.ParsePrefix(p); err == nil {
			r.trusted = append(r.trusted, pfx.Masked())
			continue
		}
		if a, err := netip.ParseAddr(p); err == nil {
			a = a.Unmap()
			r.trusted = append(r.trusted, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		bad = append(bad, fmt.Sprintf("%q", p))
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("not a CIDR or IP address: %s", strings.Join(bad, ", "))
	}
	return r, nil
}

// Trusted reports whether a is a trusted proxy.
func (r *Resolver) Trusted(a netip.Addr) bool {
	if r == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// PeerTrusted reports whether req came straight from a trusted proxy (its
// TCP peer, RemoteAddr), whose forwarding headers may then be read.
func (r *Resolver) PeerTrusted(req *http.Request) bool {
	return r.Trusted(parseHop(req.RemoteAddr))
}

// Addr is the client address of req (see the package rules). It is the
// zero Addr only when RemoteAddr is not an address (never for a request
// from net/http's server).
func (r *Resolver) Addr(req *http.Request) netip.Addr {
	peer := parseHop(req.RemoteAddr)
	if !r.Trusted(peer) {
		return peer
	}
	var hops []string
	for _, v := range req.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a := parseHop(hops[i])
		if !a.IsValid() {
			return client
		}
		client = a
		if !r.Trusted(a) {
			return a
		}
	}
	return client
}

// String is Addr as text, the form rate-limit subjects use (IPv4-mapped
// IPv6 addresses in their IPv4 form). An unparsable RemoteAddr is returned
// as it is.
func (r *Resolver) String(req *http.Request) string {
	if a := r.Addr(req); a.IsValid() {
		return a.String()
	}
	return req.RemoteAddr
}

// IPv6LimitPrefix is the prefix length under which IPv6 client addresses
// share one rate-limit subject: an IPv6 end site usually holds at least a
// /64 (RFC 6177, RFC 7421), so one client can pick any of 2^64 addresses.
const IPv6LimitPrefix = 64

// Subject is what rate limits and failure back-offs key on for req: its
// client address (Addr) for IPv4, the address's /64 (IPv6LimitPrefix) for
// IPv6 ("2001:db8:1:2::/64"). Logs and audit records keep the full address
// (String).
func (r *Resolver) Subject(req *http.Request) string {
	a := r.Addr(req)
	if !a.IsValid() {
		return req.RemoteAddr
	}
	if a.Is6() {
		if p, err := a.Prefix(IPv6LimitPrefix); err == nil {
			return p.String()
		}
	}
	return a.String()
}

// parseHop accepts "ip", "ip:port", "[ipv6]" and "[ipv6]:port".
func parseHop(s string) netip.Addr {
	s = strings.TrimSpace(s)
	// "ip:port" first: every RemoteAddr net/http's server sets has that
	// form. No string is both an address and an address and port.
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("")
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return a.Unmap().WithZone("")
	}
	return netip.Addr{}
}

package clientip_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/platform/clientip"
)

func TestAddr(t *testing.T) {
	r, err := clientip.New([]string{"10.0.0.0/8", "192.0.2.7", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	none, _ := clientip.New(nil)
	for _, tc := range []struct {
		name   string
		r      *clientip.Resolver
		peer   string
		xff    []string
		client string
	}{
		{"no proxies trusted: XFF ignored", none, "203.0.113.9:4000", []string{"198.51.100.1"}, "203.0.113.9"},
		{"untrusted peer: spoofed XFF ignored", r, "203.0.113.9:4000", []string{"198.51.100.1, 10.1.1.1"}, "203.0.113.9"},
		{"trusted peer without XFF", r, "10.2.3.4:4000", nil, "10.2.3.4"},
		{"trusted peer: its entry", r, "10.2.3.4:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"spoofed left entries skipped", r, "10.2.3.4:4000", []string{"1.1.1.1, 2.2.2.2, 198.51.100.1"}, "198.51.100.1"},
		{"chain of trusted proxies", r, "10.2.3.4:4000", []string{"1.1.1.1, 198.51.100.1, 192.0.2.7, 10.9.9.9"}, "198.51.100.1"},
		{"several headers are one list", r, "10.2.3.4:4000", []string{"1.1.1.1", "198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"all trusted: left-most", r, "10.2.3.4:4000", []string{"10.5.5.5, 10.9.9.9"}, "10.5.5.5"},
		{"garbage stops at the last trusted hop", r, "10.2.3.4:4000", []string{"198.51.100.1, nonsense, 10.9.9.9"}, "10.9.9.9"},
		{"entries with ports", r, "10.2.3.4:4000", []string{"198.51.100.1:555"}, "198.51.100.1"},
		{"IPv6 peer and entries", r, "[fd00::1]:4000", []string{"[2001:db8::5]:9, fd00::2"}, "2001:db8::5"},
		{"IPv4-mapped peer", r, "[::ffff:10.2.3.4]:4000", []string{"::ffff:198.51.100.1"}, "198.51.100.1"},
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = tc.peer
		for _, v := range tc.xff {
			req.Header.Add("X-Forwarded-For", v)
		}
		if got := tc.r.String(req); got != tc.client {
			t.Errorf("%s: client %s, want %s", tc.name, got, tc.client)
		}
	}
}

func TestNewRefusesBadEntries(t *testing.T) {
	_, err := clientip.New([]string{"10.0.0.0/8", "nope", "10.0.0.0/33"})
	if err == nil || !strings.Contains(err.Error(), `"nope"`) || !strings.Contains(err.Error(), `"10.0.0.0/33"`) {
		t.Errorf("error %v does not list both bad entries", err)
	}
	var zero *clientip.Resolver
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.RemoteAddr = "10.0.0.1:1"
	req.Header.Set("X-Forwarded-For", "1.2.3.4")
	if got := zero.String(req); got != "10.0.0.1" {
		t.Errorf("nil resolver: %s", got)
	}
}

// TestSubject: rate limits key on the IPv4 address, or the IPv6 address's
// /64 (IPv4-mapped IPv6 counts as IPv4).
func TestSubject(t *testing.T) {
	r, err := clientip.New([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ peer, xff, want string }{
		{"192.0.2.1:1234", "", "192.0.2.1"},
		{"[2001:db8:1:2::1]:1234", "", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff:ffff:ffff:ffff]:1", "", "2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.9]:1", "", "192.0.2.9"},
		{"10.0.0.1:1", "2001:db8:9:9::5", "2001:db8:9:9::/64"},
		{"10.0.0.1:1", "198.51.100.7", "198.51.100.7"},
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = tc.peer
		if tc.xff != "" {
			req.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := r.Subject(req); got != tc.want {
			t.Errorf("peer %s xff %q: Subject = %s, want %s", tc.peer, tc.xff, got, tc.want)
		}
	}
}

// PeerTrusted judges the TCP peer alone, in RemoteAddr's forms (IPv4,
// [IPv6]:port, an IPv4-mapped IPv6 peer), never a forwarding header.
func TestPeerTrusted(t *testing.T) {
	r, err := clientip.New([]string{"10.0.0.0/8", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	for peer, want := range map[string]bool{
		"10.2.3.4:4000": true, "[fd00::1]:443": true, "[::ffff:10.2.3.4]:80": true,
		"203.0.113.9:4000": false, "[2001:db8::1]:443": false, "not an address": false,
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = peer
		req.Header.Set("X-Forwarded-For", "10.1.1.1")
		if got := r.PeerTrusted(req); got != want {
			t.Errorf("PeerTrusted(%s) = %v, want %v", peer, got, want)
		}
	}
	var none *clientip.Resolver
	if none.PeerTrusted(httptest.NewRequest(http.MethodGet, "/", nil)) {
		t.Error("a nil Resolver trusts a peer")
	}
}

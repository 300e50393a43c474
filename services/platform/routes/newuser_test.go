package routes_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/platform/clientip"
	"github.com/tollgate/tollgate/services/platform/devfleet"
)

// TestDevIngressSpoofedForwardedForIgnored: under `make dev` the
// auth-server trusts the loopback local ingress (TRUSTED_PROXIES from
// devfleet.Components), so the address it keys rate limits and the
// failure back-off on is whatever X-Forwarded-For the ingress sends. The
// ingress is the edge: it replaces any X-Forwarded-For the client wrote
// with the client's own address, so a client cannot pick its bucket —
// from loopback (itself a trusted address) or from any other peer. Found
// re-running issue 10's reproductions against make dev, where nothing
// covered this link of the chain.
func TestDevIngressSpoofedForwardedForIgnored(t *testing.T) {
	var trusted string
	for _, c := range devfleet.Components(devfleet.Options{Ports: devfleet.DefaultPorts()}, t.TempDir(), "redis-server") {
		if c.Name == "auth-server" {
			trusted = c.Env[clientip.Setting]
		}
	}
	if trusted == "" {
		t.Fatal("make dev's auth-server has no TRUSTED_PROXIES")
	}
	resolver, err := clientip.New(strings.Split(trusted, ","))
	if err != nil {
		t.Fatal(err)
	}
	// The backend answers the address the auth-server would key on, and
	// the X-Forwarded-For it received.
	ingressURL := ingressTo(t, "/oauth", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, resolver.Subject(r)+"|"+strings.Join(r.Header.Values("X-Forwarded-For"), ";"))
	}))

	from := func(local string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}}}
	}
	for _, peer := range []string{"127.0.0.1", "127.0.0.2"} { // 127.0.0.2: a loopback address make dev does not trust
		for _, spoof := range []string{"203.0.113.9", "203.0.113.9, 198.51.100.1", "127.0.0.1", "not-an-address"} {
			req, _ := http.NewRequest(http.MethodPost, ingressURL+"/oauth/token", strings.NewReader("grant_type=refresh_token"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Forwarded-For", spoof)
			resp, err := from(peer).Do(req)
			if err != nil {
				if peer != "127.0.0.1" {
					t.Skipf("cannot dial from %s here: %v", peer, err)
				}
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got, want := string(b), peer+"|"+peer; got != want {
				t.Errorf("from %s with X-Forwarded-For %q: the auth-server would key on|received %q, want %q", peer, spoof, got, want)
			}
		}
	}
}

package gateway

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/services/mcp-gateway/internal/config"
)

// TestHostCheckOnlyOnLoopbackArrivals: checkHost judges the address a
// request arrived on (http.LocalAddrContextKey): one arriving on the pod's
// own address (an ingress) is not checked, one arriving on 127.0.0.1,
// ::1 or an IPv4-mapped loopback address is, and one without a local
// address is checked rather than let through. TestHostCheckOnLoopback
// covers the loopback arrivals over real HTTP; no test here may send
// traffic to a non-loopback address, hence this one.
func TestHostCheckOnlyOnLoopbackArrivals(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{cfg: config.Config{AllowedHosts: []string{"localhost"}}, metrics: m}
	h := g.checkHost(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	for ip, want := range map[string]int{
		"10.0.0.5": http.StatusNoContent, "2001:db8::5": http.StatusNoContent,
		"127.0.0.1": http.StatusForbidden, "127.8.0.1": http.StatusForbidden, "::1": http.StatusForbidden, "::ffff:127.0.0.1": http.StatusForbidden,
		"": http.StatusForbidden,
	} {
		r := httptest.NewRequest(http.MethodGet, "http://evil.example/mcp", nil)
		if ip != "" {
			r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.ParseIP(ip), Port: 4000}))
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("arrived on %q with Host evil.example: %d, want %d", ip, w.Code, want)
		}
	}
}

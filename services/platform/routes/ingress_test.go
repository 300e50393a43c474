package routes_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/tollgate/tollgate/services/platform/routes"
)

// ingressTo serves backend behind an ingress (routes.Proxy) that sends
// every path under prefix to it, both over real TCP on loopback, and
// returns the ingress's URL. Both servers stop when the test ends (the
// ingress first).
func ingressTo(t *testing.T, prefix string, backend http.Handler) string {
	t.Helper()
	b := httptest.NewServer(backend)
	t.Cleanup(b.Close)
	u, err := url.Parse(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	h, err := routes.Proxy([]routes.Rule{{Path: prefix, PathType: "Prefix", Service: "backend"}}, map[string]*url.URL{"backend": u})
	if err != nil {
		t.Fatal(err)
	}
	ingress := httptest.NewServer(h)
	t.Cleanup(ingress.Close)
	return ingress.URL
}

package routes_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/tollgate/tollgate/services/platform/routes"
)

// The local ingress forwards the request target's query as sent, as
// nginx (the chart's dev edge) and ingress controllers do. With Rewrite,
// httputil.ReverseProxy removes the pairs url.ParseQuery cannot read (a
// ";" separator, a bad escape) before Rewrite runs, so the actions-api's
// documented 400 for a malformed query (TestMalformedQueryIsRefused) is
// never reached behind `make dev`: "?text=a;b" arrives as a call without
// text, and "/health?a;b" answers 200.
func TestProxyKeepsTheQueryAsSent(t *testing.T) {
	got := make(chan string, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.RawQuery
	}))
	defer backend.Close()
	u, _ := url.Parse(backend.URL)
	h, err := routes.Proxy([]routes.Rule{{Path: "/", PathType: "Prefix", Service: "actions-api"}}, map[string]*url.URL{"actions-api": u})
	if err != nil {
		t.Fatal(err)
	}
	edge := httptest.NewServer(h)
	defer edge.Close()
	for _, q := range []string{"text=a;b", "text=%ZZ", "a;b", "x=1&y=%ZZ", "text=a%3Bb"} {
		resp, err := http.Get(edge.URL + "/actions/notes?" + q)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if r := <-got; r != q {
			t.Errorf("?%s reached the backend as ?%s", q, r)
		}
	}
}

package oauth

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
)

// TestAnonymousSetsDoNotEvictOperatorSets (brk47): over a real loopback
// server, an operator client's jwks_uri set is fetched once; then 100
// sets of ~60 KiB each that anonymous callers name (Client ID Metadata
// Documents' jwks_uris: ~25 MiB against the cache's jwksCacheBytes)
// are fetched; the operator's set is still cached — its next assertion
// fetches nothing. Before, one cache held both and the anonymous sets
// pushed the operator's out, so that its next assertion needed a fetch
// (which anonymous callers holding every fetch slot then refused:
// TestAnonymousFetchesDoNotDenyOperatorClients).
func TestAnonymousSetsDoNotEvictOperatorSets(t *testing.T) {
	var operatorGets atomic.Int32
	pad := strings.Repeat("x", 60<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/operator.json" {
			operatorGets.Add(1)
			_, _ = w.Write([]byte(`{"keys":[]}`))
			return
		}
		_, _ = w.Write([]byte(`{"keys":[],"pad":"` + pad + `"}`))
	}))
	t.Cleanup(srv.Close)
	operator := srv.URL + "/operator.json"
	f := newSigningUseFetcher(clients.NewMetadataFetcher(clients.FetchOptions{AllowPrivate: true}),
		func(location string) bool { return location == operator }, nil)
	ctx := context.Background()

	if _, err := f.Resolve(ctx, operator, false); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := f.Resolve(ctx, fmt.Sprintf("%s/anonymous/%d.json", srv.URL, i), false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.Resolve(ctx, operator, false); err != nil {
		t.Fatal(err)
	}
	if n := operatorGets.Load(); n != 1 {
		t.Errorf("the operator's jwks_uri was fetched %d times, want once: 100 anonymous sets of 60 KiB pushed its set out of the cache", n)
	}
	if sets, bytes := f.fetcher.cached(); bytes > jwksCacheBytes || sets == 0 {
		t.Errorf("the anonymous cache holds %d sets, %d bytes; want some, within %d bytes", sets, bytes, jwksCacheBytes)
	}
}

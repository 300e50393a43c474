package oauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/hashicorp/go-retryablehttp"
)

// TestSigningUseFetcher: a private_key_jwt client's jwks_uri set, fetched
// over real HTTPS, answers its keys without "use" with the use "sig"
// (RFC 7517 §4.2: "use" is optional; fosite verifies an assertion only
// with a "sig" key), leaves out the keys an inline jwks could not use
// ("use" "enc", under 2048 bits, "alg" PS256), and leaves the fetcher's
// cached set unchanged. Without signingUseFetcher, fosite got the key
// without "use" (and every assertion of such a client was invalid_client)
// and the 1024-bit and PS256 keys (with which it verified RS256
// assertions).
func TestSigningUseFetcher(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	set, err := json.Marshal(josev3.JSONWebKeySet{Keys: []josev3.JSONWebKey{
		{Key: &key.PublicKey, KeyID: "bare"},
		{Key: &key.PublicKey, KeyID: "enc", Use: "enc"},
		{Key: &key.PublicKey, KeyID: "sig", Use: "sig"},
		{Key: &small.PublicKey, KeyID: "small", Use: "sig"},
		{Key: &key.PublicKey, KeyID: "ps", Use: "sig", Algorithm: "PS256"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	inner, url, _ := jwksOverTLS(t, set)
	f := signingUseFetcher{fetcher: inner}
	got, err := f.Resolve(context.Background(), url+"/jwks.json", false)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"bare": "sig", "sig": "sig"}
	if len(got.Keys) != len(want) {
		t.Fatalf("%d keys, want %d", len(got.Keys), len(want))
	}
	for _, k := range got.Keys {
		if _, ok := want[k.KeyID]; !ok {
			t.Errorf("key %q answered, want only %v", k.KeyID, want)
		} else if k.Use != want[k.KeyID] {
			t.Errorf("key %q: use %q, want %q", k.KeyID, k.Use, want[k.KeyID])
		}
	}
	// The fetcher's cache is not written to: a concurrent request
	// reading it would race, and the set is the client's, not ours.
	cached, err := inner.Resolve(context.Background(), url+"/jwks.json", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(cached.Keys) != 5 || cached.Keys[0].Use != "" {
		t.Errorf("the cached set was changed: %d keys, the first of use %q", len(cached.Keys), cached.Keys[0].Use)
	}
}

// TestSigningUseFetcherFiltersOncePerFetch: a jwks_uri set is filtered
// (clients.AssertionKeys) once, when it is fetched and cached, not at each
// lookup: every lookup of the cached set answers the same filtered set,
// without allocating, and a refetch filters the new set once.
func TestSigningUseFetcherFiltersOncePerFetch(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	set, err := json.Marshal(josev3.JSONWebKeySet{Keys: []josev3.JSONWebKey{
		{Key: &key.PublicKey, KeyID: "bare"},
		{Key: &key.PublicKey, KeyID: "enc", Use: "enc"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	inner, url, gets := jwksOverTLS(t, set)
	now := time.Now()
	inner.now = func() time.Time { return now }
	f := signingUseFetcher{fetcher: inner}
	ctx := context.Background()
	loc := url + "/jwks.json"
	first, err := f.Resolve(ctx, loc, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Keys) != 1 || first.Keys[0].KeyID != "bare" || first.Keys[0].Use != "sig" {
		t.Fatalf("first lookup gave %+v, want the key \"bare\" with use \"sig\"", first.Keys)
	}
	var again *josev3.JSONWebKeySet
	allocs := testing.AllocsPerRun(100, func() {
		again, err = f.Resolve(ctx, loc, false)
	})
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Errorf("a lookup of the cached set gave another set (%p, first %p): filtered again", again, first)
	}
	if allocs != 0 {
		t.Errorf("a lookup of the cached set allocates %v times, want 0 (filtered once per fetch)", allocs)
	}
	// A refetch (an unknown kid, the set older than jwksRefetchInterval)
	// filters the new set, once.
	now = now.Add(jwksRefetchInterval)
	refetched, err := f.Resolve(ctx, loc, true)
	if err != nil {
		t.Fatal(err)
	}
	if refetched == first || len(refetched.Keys) != 1 || refetched.Keys[0].KeyID != "bare" {
		t.Errorf("the refetched set gave %p %+v, want a new set of the key \"bare\"", refetched, refetched.Keys)
	}
	if again, _ := f.Resolve(ctx, loc, false); again != refetched {
		t.Errorf("a lookup after the refetch gave %p, want the refetched set %p", again, refetched)
	}
	if n := gets.Load(); n != 2 {
		t.Errorf("%d GETs of the jwks_uri, want 2 (the fetch and the refetch)", n)
	}
}

// jwksOverTLS serves set (a JWK set's JSON) at every path of a real HTTPS
// server on loopback, closed when t ends, and returns a jwksFetcher that
// trusts it and does not retry, the server's URL, and the count of the
// requests it has answered.
func jwksOverTLS(t *testing.T, set []byte) (f *jwksFetcher, url string, gets *atomic.Int32) {
	t.Helper()
	gets = new(atomic.Int32)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(set)
	}))
	t.Cleanup(srv.Close)
	client := retryablehttp.NewClient()
	client.HTTPClient = srv.Client()
	client.RetryMax = 0
	return newJWKSFetcher(client), srv.URL, gets
}

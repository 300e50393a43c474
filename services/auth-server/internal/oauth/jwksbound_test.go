package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
)

// TestJWKSFetchIsBounded: anyone may run a client whose jwks_uri the
// auth-server fetches (a Client ID Metadata Document with
// private_key_jwt), inside a token request. With the auth-server's own
// guarded client: an answer larger than jwksMaxBytes is refused as no key
// set, not read whole and kept for an hour (before: a 32 MiB answer was
// decoded and cached); a redirect is a status, not a key set; and the one
// retry waits at most RetryWaitMax whatever Retry-After a 429 or 503 asks
// (before: retryablehttp obeyed Retry-After: 20 and the token request
// waited 20 s). review2.
func TestJWKSFetchIsBounded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big.json":
			_, _ = w.Write([]byte(`{"keys":[],"pad":"` + strings.Repeat("x", jwksMaxBytes) + `"}`))
		case "/just.json":
			pad := jwksMaxBytes - len(`{"keys":[],"pad":""}`)
			_, _ = w.Write([]byte(`{"keys":[],"pad":"` + strings.Repeat("x", pad) + `"}`))
		case "/moved":
			http.Redirect(w, r, "/just.json", http.StatusFound)
		}
	}))
	t.Cleanup(srv.Close)
	rc := clients.NewMetadataFetcher(clients.FetchOptions{AllowPrivate: true}).RetryableClient()
	f := newJWKSFetcher(rc)
	ctx := context.Background()

	var de *jwksDecodeError
	if _, err := f.Resolve(ctx, srv.URL+"/big.json", false); !errors.As(err, &de) || !strings.Contains(err.Error(), "larger than 65536 bytes") {
		t.Errorf("an answer over %d bytes: %v, want a jwksDecodeError saying it is larger", jwksMaxBytes, err)
	}
	if f.hasSet(srv.URL + "/big.json") {
		t.Error("the oversized answer was cached as a set")
	}
	if _, err := f.Resolve(ctx, srv.URL+"/just.json", false); err != nil {
		t.Errorf("an answer of exactly %d bytes: %v", jwksMaxBytes, err)
	}
	var se *jwksStatusError
	if _, err := f.Resolve(ctx, srv.URL+"/moved", false); !errors.As(err, &se) || se.Code != http.StatusFound {
		t.Errorf("a redirect: %v, want a jwksStatusError with 302", err)
	}

	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		resp := &http.Response{StatusCode: status, Header: http.Header{"Retry-After": {"20"}}}
		if wait := rc.Backoff(rc.RetryWaitMin, rc.RetryWaitMax, 0, resp); wait > time.Second || rc.RetryWaitMax > time.Second {
			t.Errorf("HTTP %d with Retry-After: 20: the retry waits %v (RetryWaitMax %v), want at most 1s", status, wait, rc.RetryWaitMax)
		}
	}
}

// TestJWKSCacheIsBoundedByBytes: over a real loopback server, 100
// jwks_uri sets of ~60 KiB each (anyone may name such a jwks_uri in a
// Client ID Metadata Document and have one token request fetch it): the
// cache keeps at most jwksCacheBytes of them, the most recent, and drops
// the least recently used — before, it kept every one (up to 10,000 sets,
// ~650 MiB). A set of more than jwksMaxKeys keys, or with a kid longer
// than jwksMaxKIDBytes, is no key set and is not cached as one (its
// failure is, briefly: TestJWKSFailuresAreRemembered). An unknown kid
// (fosite's Resolve with ignoreCache right after the fetch) does not
// fetch the set a second time: before, every such assertion fetched it
// twice.
func TestJWKSCacheIsBoundedByBytes(t *testing.T) {
	var asked sync.Map // path → *atomic.Int32
	pad := strings.Repeat("x", 60<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := asked.LoadOrStore(r.URL.Path, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		switch {
		case r.URL.Path == "/many.json":
			_, _ = w.Write([]byte(`{"keys":[` + strings.TrimSuffix(strings.Repeat(`{"kty":"oct","k":"AAAA"},`, jwksMaxKeys+1), ",") + `]}`))
		case r.URL.Path == "/longkid.json":
			_, _ = w.Write([]byte(`{"keys":[{"kty":"oct","k":"AAAA","kid":"` + strings.Repeat("k", jwksMaxKIDBytes+1) + `"}]}`))
		default:
			_, _ = w.Write([]byte(`{"keys":[],"pad":"` + pad + `"}`))
		}
	}))
	t.Cleanup(srv.Close)
	f := newJWKSFetcher(clients.NewMetadataFetcher(clients.FetchOptions{AllowPrivate: true}).RetryableClient())
	ctx := context.Background()
	gets := func(path string) int32 {
		n, ok := asked.Load(path)
		if !ok {
			return 0
		}
		return n.(*atomic.Int32).Load()
	}
	twice := 0
	for i := range 100 {
		loc := fmt.Sprintf("%s/set/%d", srv.URL, i)
		// As fosite asks for an assertion whose kid is not in the set.
		for _, ignore := range []bool{false, true} {
			if _, err := f.Resolve(ctx, loc, ignore); err != nil {
				t.Fatal(err)
			}
		}
		if n := gets(fmt.Sprintf("/set/%d", i)); n != 1 {
			twice++
		}
	}
	if twice > 0 {
		t.Errorf("%d of 100 sets were fetched more than once for one unknown kid, want none", twice)
	}
	sets, bytes := f.cached()
	if bytes > jwksCacheBytes || sets > jwksCacheBytes/(60<<10) {
		t.Errorf("the cache holds %d sets, %d bytes; want at most %d bytes", sets, bytes, jwksCacheBytes)
	}
	if sets < jwksCacheBytes/(61<<10) {
		t.Errorf("the cache holds %d sets; want the %d most recent", sets, jwksCacheBytes/(61<<10))
	}
	f.mu.Lock()
	newest, oldest := f.cache.Contains(srv.URL+"/set/99"), f.cache.Contains(srv.URL+"/set/0")
	f.mu.Unlock()
	if !newest || oldest {
		t.Errorf("the newest set cached: %v, the oldest: %v; want the least recently used dropped", newest, oldest)
	}

	for _, tc := range []struct{ path, want string }{
		{"/many.json", fmt.Sprintf("more than %d keys", jwksMaxKeys)},
		{"/longkid.json", fmt.Sprintf("a kid longer than %d bytes", jwksMaxKIDBytes)},
	} {
		var de *jwksDecodeError
		if _, err := f.Resolve(ctx, srv.URL+tc.path, false); !errors.As(err, &de) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a jwksDecodeError saying %q", tc.path, err, tc.want)
		}
		if f.hasSet(srv.URL + tc.path) {
			t.Errorf("%s was cached as a set", tc.path)
		}
	}
}

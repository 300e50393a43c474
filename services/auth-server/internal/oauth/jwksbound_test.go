package oauth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
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
	f.mu.Lock()
	_, cached := f.cache[srv.URL+"/big.json"]
	f.mu.Unlock()
	if cached {
		t.Error("the oversized answer was cached")
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

package oauth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// TestJWKSFetcherCacheAndTypedErrors: jwksFetcher, over a real loopback
// server, keeps a fetched set an hour as fosite's default fetcher does (a
// second Resolve asks nothing; ignoreCache fetches anew once the set is
// jwksRefetchInterval old) and fails with typed
// errors — the status of an error answer, Retried for one the retry
// policy gave up on (503, asked twice) and not for one it does not retry
// (501, asked once), a jwksDecodeError for a body that is no JWK set —
// which errors.As finds through signingUseFetcher's invalid_client.
func TestJWKSFetcherCacheAndTypedErrors(t *testing.T) {
	var asked atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		switch r.URL.Path {
		case "/jwks.json":
			_, _ = w.Write([]byte(`{"keys":[]}`))
		case "/501":
			w.WriteHeader(http.StatusNotImplemented)
		case "/503":
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			_, _ = w.Write([]byte(`<html>`))
		}
	}))
	t.Cleanup(srv.Close)
	client := retryablehttp.NewClient()
	client.HTTPClient = srv.Client()
	client.RetryMax = 1
	client.RetryWaitMin, client.RetryWaitMax = 0, 0
	client.Logger = nil
	f := newJWKSFetcher(client)
	ctx := context.Background()

	now := time.Now()
	f.now = func() time.Time { return now }
	for i, step := range []struct {
		ignore bool
		after  time.Duration
		want   int32
	}{
		{false, 0, 1},
		{false, 0, 1},
		// fosite's second ask for an unknown kid: not fetched again
		// within jwksRefetchInterval of the fetch, fetched after it.
		{true, jwksRefetchInterval - time.Second, 1},
		{true, time.Second, 2},
		{false, jwksCacheTTL - time.Second, 2},
		{false, time.Second, 3},
	} {
		now = now.Add(step.after)
		if _, err := f.Resolve(ctx, srv.URL+"/jwks.json", step.ignore); err != nil {
			t.Fatal(err)
		}
		if asked.Load() != step.want {
			t.Errorf("Resolve %d (ignoreCache %v): the server was asked %d times, want %d", i, step.ignore, asked.Load(), step.want)
		}
	}

	for _, tc := range []struct {
		path    string
		code    int
		retried bool
		asks    int32
		why     string
	}{
		{"/501", 501, false, 1, "it answered HTTP 501"},
		{"/503", 503, true, 2, "it answered a server error status"},
	} {
		asked.Store(0)
		_, err := signingUseFetcher{fetcher: f}.Resolve(ctx, srv.URL+tc.path, false)
		var st *jwksStatusError
		if !errors.As(err, &st) || st.Code != tc.code || st.Retried != tc.retried || asked.Load() != tc.asks {
			t.Errorf("%s: %v (%+v), asked %d times; want a jwksStatusError %d, retried %v, asked %d times", tc.path, err, st, asked.Load(), tc.code, tc.retried, tc.asks)
		}
		if got := jwksFetchFailure(err); got != tc.why {
			t.Errorf("%s: %q, want %q", tc.path, got, tc.why)
		}
	}
	_, err := signingUseFetcher{fetcher: f}.Resolve(ctx, srv.URL+"/html", false)
	var dec *jwksDecodeError
	if !errors.As(err, &dec) || jwksFetchFailure(err) != "its answer is not a JWK set" {
		t.Errorf("an HTML answer: %v, want a jwksDecodeError", err)
	}
}

package oauth

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/ory/fosite"
)

// syncBuffer is a log destination safe for concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) count(substr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Count(s.b.String(), substr)
}

// TestJWKSFailureLoggedOncePerFetch: a client's jwks_uri that answers 404
// (over real HTTP) refuses each of its assertions invalid_client, but its
// failure is logged once per failed fetch — not once per assertion while
// the failure is remembered (jwksFailureTTL) — with 40 assertions in a
// row and 20 at once; once the failure expires the next assertion fetches
// again and that failure is logged once more. Before, each assertion of a
// client whose jwks_uri fails (anyone's, by a metadata document) wrote a
// warning.
func TestJWKSFailureLoggedOncePerFetch(t *testing.T) {
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		http.NotFound(w, r)
	}))
	defer srv.Close()
	rc := retryablehttp.NewClient()
	rc.HTTPClient = srv.Client()
	rc.RetryMax = 0
	rc.Logger = nil
	inner := newJWKSFetcher(rc)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	inner.now = func() time.Time { return time.Unix(0, clock.Load()) }
	logs := &syncBuffer{}
	f := signingUseFetcher{fetcher: inner, log: slog.New(slog.NewTextHandler(logs, nil))}
	const line = `msg="client jwks_uri fetch failed`
	uri := srv.URL + "/jwks.json"
	resolve := func() {
		_, err := f.Resolve(context.Background(), uri, false)
		if fosite.ErrorToRFC6749Error(err).ErrorField != "invalid_client" {
			t.Errorf("Resolve: %v, want invalid_client", err)
		}
	}
	for range 40 {
		resolve()
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() { defer wg.Done(); resolve() }()
	}
	wg.Wait()
	if n := logs.count(line); n != 1 || gets.Load() != 1 {
		t.Fatalf("60 assertions within the remembered failure: %d warnings, %d GETs; want 1 and 1\n%s", n, gets.Load(), logs.b.String())
	}
	clock.Add(int64(jwksFailureTTL + time.Second))
	for range 10 {
		resolve()
	}
	if n := logs.count(line); n != 2 || gets.Load() != 2 {
		t.Errorf("after the failure expired: %d warnings, %d GETs; want 2 and 2", n, gets.Load())
	}
	if !strings.Contains(logs.b.String(), "failure=\"it answered HTTP 404\"") {
		t.Errorf("the warning does not say what failed:\n%s", logs.b.String())
	}
}

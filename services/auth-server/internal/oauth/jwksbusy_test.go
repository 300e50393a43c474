package oauth

import (
	"context"
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

// TestJWKSFetchBounds: a jwks_uri fetch is held to the guarded client's
// bounds and their refusals are answered as an unreachable jwks_uri is
// (401 invalid_client, fixed words): headers over 16 KiB are refused; with
// 16 fetches hanging, a 17th waits briefly, then is refused without
// reaching the server — and that refusal, the auth-server's load and no
// fault of the client's, is not remembered as the jwks_uri's failure: the
// next assertion, once a slot is free, fetches the set.
func TestJWKSFetchBounds(t *testing.T) {
	var (
		total   atomic.Int64
		arrived = make(chan struct{}, 64)
		release = make(chan struct{})
		once    sync.Once
	)
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		total.Add(1)
		switch {
		case r.URL.Path == "/big":
			w.Header().Set("X-Big", strings.Repeat("a", 20<<10))
		case strings.HasPrefix(r.URL.Path, "/hang/"):
			arrived <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	t.Cleanup(srv.Close)
	mf := clients.NewMetadataFetcher(clients.FetchOptions{AllowPrivate: true, Timeout: time.Minute, QueueWait: 50 * time.Millisecond})
	f := signingUseFetcher{fetcher: newJWKSFetcher(mf.RetryableClient())}
	refused := func(err error, want string) {
		t.Helper()
		if err == nil {
			t.Fatal("resolved")
		}
		status, code, desc := classify(err)
		if status != http.StatusUnauthorized || code != "invalid_client" || !strings.Contains(desc, "jwks_uri could not be used to verify the client assertion: "+want+".") {
			t.Errorf("%d %s %q, want 401 invalid_client saying %q", status, code, desc, want)
		}
	}

	_, err := f.Resolve(context.Background(), srv.URL+"/big", false)
	refused(err, "response headers are larger than 16384 bytes")

	var wg sync.WaitGroup
	for i := range clients.DefaultMaxFetches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = f.Resolve(context.Background(), fmt.Sprintf("%s/hang/%d", srv.URL, i), false)
		}()
	}
	for range clients.DefaultMaxFetches {
		<-arrived
	}
	before := total.Load()
	_, err = f.Resolve(context.Background(), srv.URL+"/jwks.json", false)
	refused(err, "this server has too many fetches in flight (at most 16 at once); retry later")
	if n := total.Load(); n != before {
		t.Errorf("the refused fetch reached the server (%d requests, want %d)", n, before)
	}
	once.Do(func() { close(release) })
	wg.Wait()
	if _, err := f.Resolve(context.Background(), srv.URL+"/jwks.json", false); err != nil {
		t.Errorf("the next assertion once slots are free: %v, want the set fetched (a refusal of the bound is not remembered)", err)
	}
}

package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
	"github.com/tollgate/tollgate/services/auth-server/internal/fetchtest"
)

// TestJWKSFetchBounds: a jwks_uri fetch is held to the guarded client's
// bounds: headers over 16 KiB are refused as an unreachable jwks_uri is
// (401 invalid_client, fixed words); with 16 fetches hanging, a 17th waits
// briefly, then is refused without reaching the server (ErrFetchBusy), and
// its request's client authentication is answered 503
// temporarily_unavailable, Retry-After 5 (brk47 #5: it was 401
// invalid_client, though the client's credentials were not judged; the
// server was busy) — and that refusal, the auth-server's load and no fault of the
// client's, is not remembered as the jwks_uri's failure: the next
// assertion, once a slot is free, fetches the set. The refusals are
// logged by the guarded client, at most a line a minute: 20 of them write
// one line, and no "client jwks_uri fetch failed" warning each (brk47 #6).
func TestJWKSFetchBounds(t *testing.T) {
	srv := fetchtest.New(t, fetchtest.PathPrefix("/hang/"), func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			fetchtest.LargeHeaders(w, 20<<10)
		}
		fetchtest.EmptyJWKS(w, r)
	})
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	mf := clients.NewMetadataFetcher(clients.FetchOptions{AllowPrivate: true, Timeout: time.Minute, QueueWait: 10 * time.Millisecond, Log: log})
	f := signingUseFetcher{fetcher: newJWKSFetcher(mf.RetryableClient()), log: log}

	_, err := f.Resolve(context.Background(), srv.URL+"/big", false)
	if status, code, desc := classify(err); status != http.StatusUnauthorized || code != "invalid_client" ||
		!strings.Contains(desc, "jwks_uri could not be used to verify the client assertion: response headers are larger than 16384 bytes.") {
		t.Errorf("jwks_uri answering 20 KiB of headers: %d %s %q, want 401 invalid_client saying its headers are too large", status, code, desc)
	}

	var wg sync.WaitGroup
	for i := range clients.DefaultMaxFetches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = f.Resolve(context.Background(), fmt.Sprintf("%s/hang/%d", srv.URL, i), false)
		}()
	}
	srv.AwaitHeld(t, clients.DefaultMaxFetches)
	before := srv.Requests()
	for i := range 20 {
		ca := &clientAuth{endpoint: "token"}
		_, err = f.Resolve(context.WithValue(context.Background(), clientAuthKey{}, ca), fmt.Sprintf("%s/jwks%d.json", srv.URL, i), false)
		if !errors.Is(err, clients.ErrFetchBusy) {
			t.Fatalf("fetch %d while 16 hang: %v, want clients.ErrFetchBusy", i, err)
		}
		status, retry, _ := ca.refusal()
		if _, code, desc := ca.answered(); status != http.StatusServiceUnavailable || code != "temporarily_unavailable" || retry != clients.DefaultFetchTimeout ||
			desc != "this server has too many fetches in flight (at most 16 at once); retry later" {
			t.Errorf("client authentication of fetch %d while 16 hang: answered %d %s %q, Retry-After %v; want 503 temporarily_unavailable, 5s (the fetch timeout)", i, status, code, desc, retry)
		}
	}
	if n := srv.Requests(); n != before {
		t.Errorf("the refused fetches reached the server (%d requests, want %d)", n, before)
	}
	if n, warned := logs.count("client fetches refused"), logs.count("client jwks_uri fetch failed"); n != 1 || warned != 1 {
		t.Errorf("20 refused jwks_uri fetches logged %d refusal lines and %d fetch warnings (one: the 20 KiB headers'), want 1 and 1:\n%s", n, warned, logs.b.String())
	}
	srv.Release()
	wg.Wait()
	if _, err := f.Resolve(context.Background(), srv.URL+"/jwks0.json", false); err != nil {
		t.Errorf("the next assertion once slots are free: %v, want the set fetched (a refusal of the bound is not remembered)", err)
	}
}

package clients

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/tollgate/tollgate/services/auth-server/internal/fetchtest"
)

// TestFetchRefusesLargeHeaders: a metadata document's or a jwks_uri's
// server answering more than MaxResponseHeaderBytes of headers is refused
// with a reason in fixed words, not read on (Go's default is 10 MiB a
// response: 8 such fetches took the auth-server from 37 to 343 MiB), and
// the jwks_uri fetch is not retried; headers well within the bound are
// read as before. A real loopback server (AllowPrivate).
func TestFetchRefusesLargeHeaders(t *testing.T) {
	srv := fetchtest.New(t, func(*http.Request) bool { return false }, func(w http.ResponseWriter, r *http.Request) {
		size := 20 << 10
		if r.URL.Path == "/small.json" {
			size = 8 << 10
		}
		fetchtest.LargeHeaders(w, size)
		fetchtest.Document(w, r)
	})
	f := NewMetadataFetcher(FetchOptions{AllowPrivate: true})

	_, _, _, err := f.FetchDocument(context.Background(), srv.URL+"/big.json")
	want := "client metadata document: fetch failed: the response headers are larger than 16384 bytes"
	if err == nil || err.Error() != want {
		t.Errorf("document with 20 KiB of headers: %v, want %q", err, want)
	}
	if md, _, _, err := f.FetchDocument(context.Background(), srv.URL+"/small.json"); err != nil || md.ClientID != srv.URL+"/small.json" {
		t.Errorf("document with 8 KiB of headers: %v, want it fetched", err)
	}

	before := srv.Requests()
	req, _ := retryablehttp.NewRequest(http.MethodGet, srv.URL+"/jwks.json", nil)
	resp, err := f.RetryableClient().Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("jwks_uri with 20 KiB of headers: fetched")
	}
	if got, want := FetchFailure(err), "the response headers are larger than 16384 bytes"; got != want {
		t.Errorf("jwks_uri with 20 KiB of headers: %q (%v), want %q", got, err, want)
	}
	if n := srv.Requests() - before; n != 1 {
		t.Errorf("jwks_uri with 20 KiB of headers requested %d times, want once (not retried)", n)
	}
}

// TestFetchConcurrencyIsBounded: at most DefaultMaxFetches fetches are in
// flight in one fetcher, documents and jwks_uri sets together. While 16
// hang at a server that counts them, a 17th document fetch and a 17th
// jwks_uri fetch wait their QueueWait and fail (ErrFetchBusy, said in
// fixed words) without reaching the server, counted in FetchStats; once
// the 16 end, their slots are free again.
func TestFetchConcurrencyIsBounded(t *testing.T) {
	srv := fetchtest.New(t, nil, nil)
	// A long fetch timeout: the 16 hang until released, not until they time out.
	f := NewMetadataFetcher(FetchOptions{AllowPrivate: true, Timeout: time.Minute, QueueWait: 50 * time.Millisecond})

	var wg sync.WaitGroup
	errs := make(chan error, DefaultMaxFetches)
	for i := range DefaultMaxFetches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, _, err := f.FetchDocument(context.Background(), fmt.Sprintf("%s/c%d.json", srv.URL, i))
			errs <- err
		}()
	}
	srv.AwaitHeld(t, DefaultMaxFetches)
	if s := f.FetchStats(); s.Limit != DefaultMaxFetches || s.InFlight != DefaultMaxFetches {
		t.Errorf("with %d fetches hanging: %+v", DefaultMaxFetches, s)
	}

	_, _, _, err := f.FetchDocument(context.Background(), srv.URL+"/c17.json")
	want := "client metadata document: fetch failed: this server has too many fetches in flight (at most 16 at once); retry later"
	if err == nil || err.Error() != want {
		t.Errorf("17th document fetch: %v, want %q", err, want)
	}
	req, _ := retryablehttp.NewRequest(http.MethodGet, srv.URL+"/jwks.json", nil)
	resp, err := f.RetryableClient().Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("17th fetch, a jwks_uri's: fetched")
	}
	if !errors.Is(err, ErrFetchBusy) || !strings.Contains(FetchFailure(err), "too many fetches in flight") {
		t.Errorf("17th fetch, a jwks_uri's: %v (%q), want ErrFetchBusy", err, FetchFailure(err))
	}
	// A fetch whose context ends while it waits is refused too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, _, err := f.FetchDocument(ctx, srv.URL+"/c18.json"); err == nil || !strings.Contains(err.Error(), "too many fetches in flight") {
		t.Errorf("18th document fetch, its context ended: %v", err)
	}
	if n := srv.Requests(); n != DefaultMaxFetches {
		t.Errorf("the server got %d requests, want %d: the refused fetches reached it", n, DefaultMaxFetches)
	}
	if s := f.FetchStats(); s.Refused != 3 || s.InFlight != DefaultMaxFetches {
		t.Errorf("after three refusals: %+v, want 3 refused and %d in flight", s, DefaultMaxFetches)
	}

	srv.Release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("one of the %d fetches: %v", DefaultMaxFetches, err)
		}
	}
	if m := srv.Most(); m != DefaultMaxFetches {
		t.Errorf("the server saw at most %d at once, want %d", m, DefaultMaxFetches)
	}
	if s := f.FetchStats(); s.InFlight != 0 {
		t.Errorf("after the fetches ended: %+v, want none in flight", s)
	}
	if _, _, _, err := f.FetchDocument(context.Background(), srv.URL+"/after.json"); err != nil {
		t.Errorf("a fetch after the others ended: %v", err)
	}
}

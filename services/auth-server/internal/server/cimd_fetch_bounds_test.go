package server_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestMetadataFetchBoundsOverHTTP: what anonymous authorization requests
// naming Client ID Metadata Documents make the auth-server fetch is
// bounded, and the bound's refusal is answered as an unreachable
// document is (400 invalid_client, the error page, fixed words):
//   - a document whose server answers more than 16 KiB of headers is
//     refused ("the response headers are larger than 16384 bytes"), not
//     read on (Go's default was 10 MiB a response: 8 such requests took
//     the auth-server from 37 to 343 MiB);
//   - while 16 fetches hang at a document server (16 client addresses'),
//     a 17th request's fetch
//     (a 17th address's) waits its turn briefly, then is refused ("too many fetches in
//     flight") and never reaches the server, counted in
//     tollgate_auth_client_fetches_refused_total.
func TestMetadataFetchBoundsOverHTTP(t *testing.T) {
	var (
		hung     atomic.Int64
		arrived  = make(chan struct{}, 64)
		release  = make(chan struct{})
		released sync.Once
	)
	t.Cleanup(func() { released.Do(func() { close(release) }) })
	var docs *httptest.Server
	docs = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big.json" {
			w.Header().Set("X-Big", strings.Repeat("a", 20<<10))
		} else {
			hung.Add(1)
			arrived <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"client_id":%q,"redirect_uris":[%q]}`, docs.URL+r.URL.Path, docs.URL+"/cb")
	}))
	t.Cleanup(docs.Close)
	// 17 client addresses: one holds at most 4 slots
	// (TestMetadataFetchesPerAddress).
	f := startFleetWith(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32"}, "")
	authorize := func(path string, from int) (int, string) {
		return authorizeFrom(t, f, docs.URL, path, fmt.Sprintf("203.0.113.%d", from))
	}

	if status, body := authorize("/big.json", 0); status != http.StatusBadRequest ||
		!strings.Contains(body, "fetch failed: the response headers are larger than 16384 bytes") {
		t.Errorf("document answered with 20 KiB of headers: %d %s, want 400 saying its headers are too large", status, body)
	}

	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			authorize(fmt.Sprintf("/hang/%d.json", i), i)
		}()
	}
	for range 16 {
		<-arrived
	}
	status, body := authorize("/hang/17.json", 17)
	if status != http.StatusBadRequest || !strings.Contains(body, "fetch failed: this server has too many fetches in flight (at most 16 at once); retry later") {
		t.Errorf("17th request while 16 fetches hang: %d %s, want 400 saying too many fetches are in flight", status, body)
	}
	if n := hung.Load(); n != 16 {
		t.Errorf("the document server got %d requests, want 16: the refused fetch reached it", n)
	}
	m := metricsAt(t, f.Admin()+"/metrics")
	if m["tollgate_auth_client_fetches_limit"] != 16 || m["tollgate_auth_client_fetches_in_flight"] != 16 || m["tollgate_auth_client_fetches_refused_total"] != 1 {
		t.Errorf("fetch metrics with 16 hanging and one refused: limit %v, in flight %v, refused %v", m["tollgate_auth_client_fetches_limit"],
			m["tollgate_auth_client_fetches_in_flight"], m["tollgate_auth_client_fetches_refused_total"])
	}
	released.Do(func() { close(release) })
	wg.Wait()
	if logs := f.AS.Logs.String(); !strings.Contains(logs, "too many fetches in flight") {
		t.Errorf("the refusal is not in the service log")
	}
}

package server_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/services/auth-server/internal/fetchtest"
)

// TestMetadataFetchBoundsOverHTTP: what anonymous authorization requests
// naming Client ID Metadata Documents make the auth-server fetch is
// bounded:
//   - a document whose server answers more than 16 KiB of headers is
//     refused as an unreachable document is (400 invalid_client, fixed
//     words: "the response headers are larger than 16384 bytes"), not
//     read on (Go's default was 10 MiB a response: 8 such requests took
//     the auth-server from 37 to 343 MiB);
//   - while 16 fetches hang at a document server (16 client addresses'),
//     a 17th request's fetch (a 17th address's) waits its turn briefly,
//     then is refused and never reaches the server, counted in
//     tollgate_auth_client_fetches_refused_total. The request is answered
//     503 temporarily_unavailable with Retry-After (brk47 #5: it was 400
//     invalid_client, though nothing of the client was judged): JSON, or
//     for a browser the error page — never a redirect, the client being
//     unverified. A token request naming such a client (its document not
//     cached) is answered 503 temporarily_unavailable, Retry-After, not
//     401 invalid_client.
func TestMetadataFetchBoundsOverHTTP(t *testing.T) {
	docs := fetchtest.New(t, func(r *http.Request) bool { return r.URL.Path != "/big.json" }, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big.json" {
			fetchtest.LargeHeaders(w, 20<<10)
		}
		fetchtest.Document(w, r)
	})
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
	docs.AwaitHeld(t, 16)
	const busy = "this server has too many fetches in flight (at most 16 at once); retry later"
	resp, body := authorizeAnswer(t, f, docs.URL, "/hang/17.json", "203.0.113.17", "")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "5" ||
		!strings.Contains(body, `"error":"temporarily_unavailable"`) || !strings.Contains(body, busy) {
		t.Errorf("17th request while 16 fetches hang: %d Retry-After %q %s, want 503 temporarily_unavailable, Retry-After 5 (the fetch timeout), saying %q",
			resp.StatusCode, resp.Header.Get("Retry-After"), body, busy)
	}
	resp, body = authorizeAnswer(t, f, docs.URL, "/hang/18.json", "203.0.113.18", "text/html")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Location") != "" || resp.Header.Get("Retry-After") != "5" ||
		!strings.Contains(body, "<code>temporarily_unavailable</code>") {
		t.Errorf("18th request, from a browser: %d Location %q Retry-After %q\n%s\nwant the 503 error page, no redirect",
			resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Retry-After"), body)
	}
	tr := f.token(devClient{ClientID: docs.URL + "/hang/token.json", AuthMethod: "none"},
		url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"ory_rt_unknown.unknown"}})
	if tr.Status != http.StatusServiceUnavailable || tr.Error != "temporarily_unavailable" || tr.Header.Get("Retry-After") != "5" ||
		tr.Description != busy || tr.Header.Get("WWW-Authenticate") != "" {
		t.Errorf("token request of an uncached document's client while 16 fetches hang: %d %s %q Retry-After %q, want 503 temporarily_unavailable, Retry-After 5 (the fetch timeout)",
			tr.Status, tr.Error, tr.Description, tr.Header.Get("Retry-After"))
	}
	if n := docs.Held(); n != 16 {
		t.Errorf("the document server got %d requests, want 16: a refused fetch reached it", n)
	}
	m := metricsAt(t, f.Admin()+"/metrics")
	if m["tollgate_auth_client_fetches_limit"] != 16 || m["tollgate_auth_client_fetches_in_flight"] != 16 || m["tollgate_auth_client_fetches_refused_total"] != 3 {
		t.Errorf("fetch metrics with 16 hanging and three refused: limit %v, in flight %v, refused %v", m["tollgate_auth_client_fetches_limit"],
			m["tollgate_auth_client_fetches_in_flight"], m["tollgate_auth_client_fetches_refused_total"])
	}
	docs.Release()
	wg.Wait()
	if logs := f.AS.Logs.String(); strings.Count(logs, "client fetches refused") != 1 || !strings.Contains(logs, "too many fetches in flight") {
		t.Errorf("the three refusals wrote %d log lines, want one (the first: at most one a minute)", strings.Count(logs, "client fetches refused"))
	}
}

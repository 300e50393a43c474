package clients

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/tollgate/tollgate/services/auth-server/internal/fetchtest"
)

// TestFetchSlotComesBackWhateverTheCaller (cimd47): a fetch gives its slot
// back when its round trip returns, having read the body (at most the
// bound and one byte) itself — not when its caller closes the body. With
// one slot, an answer whose body is never closed, one whose body is read
// only in part, a body larger than the bound and a body whose read fails
// each leave the slot free for the next fetch; the caller still reads
// what the server sent (the whole body, the bound and one byte of a larger
// one, then the read's error). Before, the first unclosed body held the
// slot for good and every later fetch was refused "too many fetches in
// flight". A document larger than its bound is still refused as such.
func TestFetchSlotComesBackWhateverTheCaller(t *testing.T) {
	const doc = `{"keys":[]}`
	srv := fetchtest.New(t, func(*http.Request) bool { return false }, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/large":
			_, _ = w.Write([]byte(strings.Repeat("a", 3*MaxJWKSBytes)))
		case "/cut":
			w.Header().Set("Content-Length", "1000")
			_, _ = w.Write([]byte("0123456789")) // the server closes the connection short of 1000 bytes
		default:
			_, _ = w.Write([]byte(doc))
		}
	})
	f := NewMetadataFetcher(FetchOptions{AllowPrivate: true, MaxInFlight: 1, OperatorMaxInFlight: 1, QueueWait: 10 * time.Millisecond})
	get := func(c *http.Client, path string) *http.Response {
		t.Helper()
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			t.Fatalf("GET %s: %v (the slot of an earlier fetch was not given back)", path, err)
		}
		if st := f.FetchStats(); st.InFlight != 0 || st.Operator.InFlight != 0 {
			t.Errorf("GET %s returned, body unclosed: %+v, want no slot held", path, st)
		}
		return resp
	}
	for _, c := range []*http.Client{f.client, f.operator} {
		resp := get(c, "/never-closed") // nor read
		resp = get(c, "/read-in-part")
		if b := make([]byte, 4); mustRead(t, resp.Body, b) != doc[:4] {
			t.Errorf("the first bytes of a body: %q", b)
		}
		resp = get(c, "/read-whole")
		if b, err := io.ReadAll(resp.Body); err != nil || string(b) != doc || resp.ContentLength != int64(len(doc)) {
			t.Errorf("a whole body: %q, %v, length %d; want %q", b, err, resp.ContentLength, doc)
		}
		resp = get(c, "/large")
		if b, err := io.ReadAll(resp.Body); err != nil || len(b) != MaxJWKSBytes+1 || resp.ContentLength != -1 {
			t.Errorf("a body of %d bytes: %d bytes read (%v), length %d; want the bound and one byte, length -1", 3*MaxJWKSBytes, len(b), err, resp.ContentLength)
		}
		resp = get(c, "/cut")
		if b, err := io.ReadAll(resp.Body); !errors.Is(err, io.ErrUnexpectedEOF) || string(b) != "0123456789" {
			t.Errorf("a body cut short: %q, %v; want the 10 bytes sent, then io.ErrUnexpectedEOF", b, err)
		}
	}
	req, _ := retryablehttp.NewRequest(http.MethodGet, srv.URL+"/retryable", nil)
	if _, err := f.RetryableClient().Do(req); err != nil { // body never closed
		t.Fatal(err)
	}
	if _, _, _, err := f.FetchDocument(context.Background(), srv.URL+"/after.json"); err == nil || strings.Contains(err.Error(), "too many fetches") {
		t.Errorf("a document fetch after them: %v, want it sent (and refused as no document)", err)
	}
	// A document's own bound (16 KiB) holds as before: the fetcher reads
	// it and one byte, the document is refused as too large.
	want := "client metadata document: document is larger than 16384 bytes"
	if _, _, _, err := f.FetchDocument(context.Background(), srv.URL+"/large"); err == nil || err.Error() != want {
		t.Errorf("a document of %d bytes: %v, want %q", 3*MaxJWKSBytes, err, want)
	}
}

func mustRead(t *testing.T, r io.Reader, b []byte) string {
	t.Helper()
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestFetchRefusalsLogBounded (brk47 #6): anyone may make the auth-server
// fetch, and each fetch the bound refused wrote a line (a document's
// "client metadata document fetch failed"; a jwks_uri's warning, package
// oauth). Now a gate logs its first refusal at once, then at most one line
// a minute with the number refused since the line before: 30 refusals in
// a minute write one line; the first refusal a minute later writes the
// second, counting the 29 held back and itself. Per-address refusals are
// counted alike. The metrics count each one (FetchStats).
func TestFetchRefusalsLogBounded(t *testing.T) {
	srv := fetchtest.New(t, fetchtest.PathPrefix("/hang/"), nil)
	var logs lockedBuffer
	f := NewMetadataFetcher(FetchOptions{AllowPrivate: true, MaxInFlight: 1, MaxInFlightPerAddress: 1, QueueWait: time.Millisecond,
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	var clock atomic.Int64 // seconds past an epoch
	f.gate.log.now = func() time.Time { return time.Unix(1e9+clock.Load(), 0) }

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _, _ = f.Fetch(WithFetchAddress(context.Background(), "203.0.113.7"), srv.URL+"/hang/a.json")
	}()
	srv.Arrived(t)
	for i := range 30 {
		ctx := context.Background()
		if i%2 == 0 {
			ctx = WithFetchAddress(ctx, "203.0.113.7") // refused by its address's bound
		}
		if _, _, err := f.Fetch(ctx, fmt.Sprintf("%s/c%d.json", srv.URL, i)); !errors.Is(err, ErrFetchBusy) {
			t.Fatalf("fetch %d while the one slot is held: %v, want ErrFetchBusy", i, err)
		}
	}
	lines := func() []string {
		var out []string
		for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			if l != "" {
				out = append(out, l)
			}
		}
		return out
	}
	if got := lines(); len(got) != 1 || !strings.Contains(got[0], "level=WARN") || !strings.Contains(got[0], "refused=1 ") {
		t.Fatalf("30 refusals within a minute logged %d lines, want one WARN saying refused=1:\n%s", len(got), strings.Join(got, "\n"))
	}
	clock.Add(59)
	_, _, _ = f.Fetch(context.Background(), srv.URL+"/c59s.json")
	if n := len(lines()); n != 1 {
		t.Errorf("a refusal 59 s after the first line: %d lines, want still one", n)
	}
	clock.Add(1)
	_, _, _ = f.Fetch(context.Background(), srv.URL+"/c60s.json")
	if got := lines(); len(got) != 2 || !strings.Contains(got[1], "refused=31 ") {
		t.Errorf("a refusal a minute after the first line: %d lines, want two, the second saying refused=31 (29+1+1):\n%s", len(got), strings.Join(got, "\n"))
	}
	if st := f.FetchStats(); st.Refused+st.RefusedPerAddress != 32 {
		t.Errorf("stats %+v, want 32 refusals counted", st)
	}
	srv.Release()
	wg.Wait()
}

// TestHeadersTooLargeTexts: net/http has no error value for response
// headers over MaxResponseHeaderBytes that a caller can name, so
// headersRefused matches its words. This pins them on the real paths, a
// loopback server answering one header of 20 KiB or 40 of 512 bytes:
// HTTP/1 (net/http's transport) and HTTP/2 (its bundled http2 transport
// over TLS, which ForceAttemptHTTP2 gives every https server offering h2).
// Each is refused in fixed words and not retried (a jwks_uri's fetch is
// sent once). A Go release that changes a text fails here, not silently in
// production, where the refusal would read "the request failed" and be
// retried. Before, HTTP/2's one long header (COMPRESSION_ERROR, the HPACK
// decoder's string limit) was not recognised at all.
func TestHeadersTooLargeTexts(t *testing.T) {
	var hits atomic.Int64
	big := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/one":
			fetchtest.LargeHeaders(w, 20<<10)
		case "/many":
			for i := range 40 {
				w.Header().Set(fmt.Sprintf("X-Big-%d", i), strings.Repeat("a", 512))
			}
		}
		_, _ = w.Write([]byte(`{}`))
	})
	h1 := httptest.NewServer(big)
	t.Cleanup(h1.Close)
	h2 := httptest.NewUnstartedServer(big)
	h2.EnableHTTP2 = true
	h2.StartTLS()
	t.Cleanup(h2.Close)
	pool := x509.NewCertPool()
	pool.AddCert(h2.Certificate())

	const tooLarge = "the response headers are larger than 16384 bytes"
	for _, tc := range []struct{ name, url, want string }{
		{"HTTP/1, one header", h1.URL + "/one", tooLarge},
		{"HTTP/1, 40 headers", h1.URL + "/many", tooLarge},
		{"HTTP/2, one header", h2.URL + "/one", tooLarge + " or could not be decoded"},
		{"HTTP/2, 40 headers", h2.URL + "/many", tooLarge},
	} {
		f := NewMetadataFetcher(FetchOptions{AllowPrivate: true})
		f.gate.next.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool}
		hits.Store(0)
		req, _ := retryablehttp.NewRequest(http.MethodGet, tc.url, nil)
		resp, err := f.RetryableClient().Do(req)
		if err == nil {
			t.Errorf("%s: fetched (%s)", tc.name, resp.Proto)
			continue
		}
		if got := FetchFailure(err); got != tc.want {
			t.Errorf("%s: %q (%v), want %q: headersRefused no longer recognises net/http's text", tc.name, got, err, tc.want)
		}
		if n := hits.Load(); n != 1 {
			t.Errorf("%s: sent %d times, want once (not retried)", tc.name, n)
		}
	}
	// The servers answer headers within the bound in the protocol named,
	// so the refusals above are that protocol's.
	f := NewMetadataFetcher(FetchOptions{AllowPrivate: true})
	f.gate.next.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool}
	for url, proto := range map[string]string{h1.URL: "HTTP/1.1", h2.URL: "HTTP/2.0"} {
		resp, err := f.client.Get(url + "/small")
		if err != nil || resp.Proto != proto {
			t.Errorf("%s: %v, want an answer over %s", url, err, proto)
		}
	}
}

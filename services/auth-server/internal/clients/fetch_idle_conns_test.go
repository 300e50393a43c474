package clients

import (
	"context"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestFetchConnectionsDoNotOutliveTheBound (brk47): the fetch bound (16 in
// flight, "16 of them stay within a few MiB") holds a slot only until the
// response body is closed; the connection then stays in the transport's
// pool. Over HTTP/1 the pool keeps at most MaxIdleConns (10). Over HTTP/2
// — which every https document or jwks_uri server offering h2 gets
// (ForceAttemptHTTP2) — Go keeps one connection per host:port for
// IdleConnTimeout (30 s) with no count bound: MaxIdleConns does not
// apply to HTTP/2 connections. Anonymous callers choose the hosts (a
// wildcard DNS name gives any number), so one address at its token
// budget (10 requests/s, fetches of a few ms, never more than one in
// flight) leaves ~300 TLS+HTTP/2 client connections, each with its
// read-loop goroutine, buffers and HPACK tables, and a dozen addresses
// several thousand: memory the bound was meant to cap, outside it.
// Measured: 200 sequential fetches from 200 h2 servers leave 200
// connections open (HTTP/1: 10). Expected: the connections a fetch
// opened are bounded like the fetches (e.g. DisableKeepAlives on the
// fetcher's transport, which HTTP/2 honours too: a document or a set is
// fetched rarely per host).
//
// The guarded client trusts only the system roots, so the test runs
// itself again with SSL_CERT_FILE naming httptest's certificate (read
// once per process, hence the child).
func TestFetchConnectionsDoNotOutliveTheBound(t *testing.T) {
	const n = 40
	if os.Getenv("BRK47_FETCH_IDLE_CHILD") == "" {
		srv := httptest.NewTLSServer(http.NotFoundHandler())
		ca := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		srv.Close()
		cmd := exec.Command(os.Args[0], "-test.run=^TestFetchConnectionsDoNotOutliveTheBound$", "-test.v")
		cmd.Env = append(os.Environ(), "BRK47_FETCH_IDLE_CHILD=1", "SSL_CERT_FILE="+ca)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%v:\n%s", err, out)
		}
		return
	}
	var (
		open atomic.Int64
		srvs []*httptest.Server
	)
	for range n {
		var s *httptest.Server
		s = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"client_id":%q,"redirect_uris":["https://app.example.com/cb"]}`, "https://"+r.Host+r.URL.Path)
		}))
		s.EnableHTTP2 = true
		s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				open.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
		}
		s.StartTLS()
		t.Cleanup(s.Close)
		srvs = append(srvs, s)
	}
	f := NewMetadataFetcher(FetchOptions{AllowPrivate: true})
	for _, s := range srvs {
		if _, _, _, err := f.FetchDocument(context.Background(), s.URL+"/doc.json"); err != nil {
			t.Fatalf("fetch %s: %v", s.URL, err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if got := open.Load(); f.FetchStats().InFlight != 0 || got > int64(DefaultMaxFetches) {
		t.Errorf("after %d sequential fetches from %d HTTP/2 servers (none in flight): %d connections still open, want at most %d (the fetch bound)",
			n, n, got, DefaultMaxFetches)
	}
}

package routes_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/routes"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// TestDroppedBodyRequestIs502 proxies POSTs with bodies to a backend that
// accepts the TCP connection and closes it (a component of `make dev` that
// crashed mid-request). Every request is answered 502 with the JSON body and
// without Retry-After (the request may have reached the backend), on
// connections the client keeps alive, and the ingress's server never runs
// two reads of one connection at once ("http: panic serving …: invalid
// concurrent Body.Read call", golang/go#68560, which closes the client's
// connection). Bodies: small, larger than the socket buffers (the
// Transport is still writing it when the backend is gone), and slow (the
// client is still sending it when the 502 is decided).
//
// Real TCP and HTTP throughout.
func TestDroppedBodyRequestIs502(t *testing.T) {
	ln := testharness.Listener(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Read(make([]byte, 512))
			_ = c.Close()
		}
	}()
	dropper, _ := url.Parse("http://" + ln.Addr().String())
	h, err := routes.Proxy([]routes.Rule{{Path: "/mcp", PathType: "Prefix", Service: "mcp-gateway"}},
		map[string]*url.URL{"mcp-gateway": dropper})
	if err != nil {
		t.Fatal(err)
	}
	var logged lockedBuffer
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(&logged, "", 0)
	srv.Start()
	defer srv.Close()

	client := &http.Client{Transport: &http.Transport{}, Timeout: 20 * time.Second}
	defer client.CloseIdleConnections()
	small := `{"jsonrpc":"2.0","id":1,"method":"tools/call"}`
	large := bytes.Repeat([]byte("x"), 8<<20)
	for i := 0; i < 5; i++ {
		for _, c := range []struct {
			name string
			body func() (io.Reader, int64)
		}{
			{"small", func() (io.Reader, int64) { return strings.NewReader(small), int64(len(small)) }},
			{"large", func() (io.Reader, int64) { return bytes.NewReader(large), int64(len(large)) }},
			{"slow", func() (io.Reader, int64) {
				return &slowReader{n: 16, chunk: 1024, pause: 5 * time.Millisecond}, 16 * 1024
			}},
			{"slow chunked", func() (io.Reader, int64) { return &slowReader{n: 16, chunk: 1024, pause: 5 * time.Millisecond}, -1 }},
		} {
			body, n := c.body()
			req, _ := http.NewRequest("POST", srv.URL+"/mcp", body)
			req.ContentLength = n
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("%s #%d: %v", c.name, i, err)
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var e struct{ Error string }
			if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Content-Type") != "application/json" ||
				json.Unmarshal(b, &e) != nil || e.Error != "bad_gateway" {
				t.Errorf("%s #%d: %d %s %q, want 502 with a JSON bad_gateway", c.name, i, resp.StatusCode, resp.Header.Get("Content-Type"), b)
			}
			if resp.ContentLength != int64(len(b)) {
				t.Errorf("%s #%d: Content-Length %d for %d bytes, want the length", c.name, i, resp.ContentLength, len(b))
			}
			if got := resp.Header.Get("Retry-After"); got != "" {
				t.Errorf("%s #%d: Retry-After %q for a dropped connection", c.name, i, got)
			}
		}
	}
	srv.Close() // waits for the connections' handlers
	if s := logged.String(); strings.Contains(s, "panic") {
		t.Errorf("the ingress's server panicked:\n%.2000s", s)
	}
}

// slowReader yields n chunks of chunk bytes, pausing before each.
type slowReader struct {
	n, chunk int
	pause    time.Duration
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	time.Sleep(r.pause)
	r.n--
	return copy(p, bytes.Repeat([]byte("y"), min(len(p), r.chunk))), nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

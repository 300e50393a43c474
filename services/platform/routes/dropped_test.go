package routes_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
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
	dropper := dropperBackend(t)
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

// TestAnswerBeforeTheBodySaysWhetherTheConnectionStays sends, on one raw
// keep-alive connection, a POST whose body the backend does not take (it
// drops the connection, or answers at once without reading) and then,
// unless the answer said Connection: close, a second request, which must
// be answered. A rest of the body longer than 256 KiB makes the ingress
// close the connection after its answer, so that answer must say
// Connection: close; a client's Transport that saw its whole body go into
// the socket buffers otherwise reuses the connection and its next request
// meets the close (CI saw "slow #2 … use of closed network connection" in
// TestDroppedBodyRequestIs502 after its 8 MiB case). A short rest is read
// and the connection carries the next request. Whether a long body reached
// a backend that dropped it or answered early depends on the socket
// buffers, so those cases check the rule only; a backend that answers and
// then stops reading leaves a known rest.
//
// Real TCP and HTTP throughout.
func TestAnswerBeforeTheBodySaysWhetherTheConnectionStays(t *testing.T) {
	dropper := dropperBackend(t)
	early := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"error":"too_large"}`, http.StatusRequestEntityTooLarge)
	}))
	defer early.Close()
	earlyURL, _ := url.Parse(early.URL)
	// holder answers 413 as soon as it has the request header and then
	// holds the connection without reading it.
	hold := testharness.Listener(t)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			c, err := hold.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				_, _ = io.WriteString(c, "HTTP/1.1 413 Content Too Large\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n{\"error\":\"too_large\"}\n")
				<-done
			}()
		}
	}()
	holder, _ := url.Parse("http://" + hold.Addr().String())
	h, err := routes.Proxy([]routes.Rule{
		{Path: "/mcp", PathType: "Prefix", Service: "mcp-gateway"},
		{Path: "/actions", PathType: "Prefix", Service: "actions-api"},
		{Path: "/oauth", PathType: "Prefix", Service: "auth-server"},
	}, map[string]*url.URL{"mcp-gateway": dropper, "actions-api": earlyURL, "auth-server": holder})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	const either, stays, closes = "either", "stays", "closes"
	for _, c := range []struct {
		name, path string
		size       int
		want       string
	}{
		{"answered, then not read, 8 MiB", "/oauth/token", 8 << 20, closes},
		{"dropped, 8 MiB", "/mcp", 8 << 20, either},
		{"answered early, 8 MiB", "/actions/x", 8 << 20, either},
		{"dropped, 64 KiB", "/mcp", 64 << 10, stays},
		{"answered early, 64 KiB", "/actions/x", 64 << 10, stays},
		{"answered, then not read, 64 KiB", "/oauth/token", 64 << 10, stays},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			go func() {
				_, _ = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: localhost:4000\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", c.path, c.size)
				_, _ = conn.Write(bytes.Repeat([]byte("x"), c.size))
			}()
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("first answer: %v", err)
			}
			_, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadGateway && resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("first answer %d, want 502 or the backend's 413", resp.StatusCode)
			}
			if (c.want == closes && !resp.Close) || (c.want == stays && resp.Close) {
				t.Errorf("first answer's Connection: close is %v, want the connection to be %s", resp.Close, c.want)
			}
			if resp.Close {
				if _, err := br.ReadByte(); err == nil {
					t.Error("the ingress sent more after an answer with Connection: close")
				}
				return
			}
			_, _ = fmt.Fprintf(conn, "GET /nowhere HTTP/1.1\r\nHost: localhost:4000\r\n\r\n")
			next, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("the connection kept alive did not carry the next request: %v", err)
			}
			next.Body.Close()
			if next.StatusCode != http.StatusNotFound {
				t.Errorf("next request: %d, want the ingress's 404", next.StatusCode)
			}
		})
	}
}

// TestFullDuplexBodyStaysTheBackends: a backend may answer before it has
// read the request body and go on reading it (an SSE answer to a streamed
// body). The ingress passes the answer's header on at once and leaves the
// whole body to the backend: it does not wait for the body to end before
// the header (the client here waits for the header before it sends the
// rest: that would deadlock), and it reads none of the body itself (the
// backend would get a body with holes). A review found both in the first
// form of the Connection: close rule, which drained the rest before the
// header.
//
// Real TCP and HTTP throughout.
func TestFullDuplexBodyStaysTheBackends(t *testing.T) {
	ingress := func(t *testing.T, h http.HandlerFunc) string {
		be := httptest.NewServer(h)
		t.Cleanup(be.Close)
		u, _ := url.Parse(be.URL)
		p, err := routes.Proxy([]routes.Rule{{Path: "/mcp", PathType: "Prefix", Service: "mcp-gateway"}}, map[string]*url.URL{"mcp-gateway": u})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(p)
		t.Cleanup(srv.Close)
		return srv.Listener.Addr().String()
	}
	dial := func(t *testing.T, addr string) net.Conn {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		return conn
	}

	t.Run("header before the body ends", func(t *testing.T) {
		addr := ingress(t, func(w http.ResponseWriter, r *http.Request) {
			_ = http.NewResponseController(w).EnableFullDuplex()
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			_ = http.NewResponseController(w).Flush()
			lines := bufio.NewScanner(r.Body)
			for lines.Scan() {
				fmt.Fprintf(w, "data: %s\n\n", lines.Text())
				_ = http.NewResponseController(w).Flush()
			}
		})
		conn := dial(t, addr)
		fmt.Fprintf(conn, "POST /mcp HTTP/1.1\r\nHost: localhost:4000\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nfirst\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer header while the body is open: %v", err)
		}
		fmt.Fprintf(conn, "7\r\nsecond\n\r\n0\r\n\r\n")
		b, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(b), "data: first") || !strings.Contains(string(b), "data: second") {
			t.Errorf("answer %q, want both lines echoed", b)
		}
	})

	t.Run("the whole body to the backend", func(t *testing.T) {
		const size = 100 << 10
		addr := ingress(t, func(w http.ResponseWriter, r *http.Request) {
			_ = http.NewResponseController(w).EnableFullDuplex()
			w.WriteHeader(http.StatusOK)
			_ = http.NewResponseController(w).Flush()
			n, err := io.Copy(io.Discard, r.Body)
			fmt.Fprintf(w, "%d %v", n, err)
		})
		conn := dial(t, addr)
		go func() {
			fmt.Fprintf(conn, "POST /mcp HTTP/1.1\r\nHost: localhost:4000\r\nContent-Length: %d\r\n\r\n", size)
			for i := 0; i < size/1024; i++ {
				_, _ = conn.Write(bytes.Repeat([]byte("x"), 1024))
				time.Sleep(time.Millisecond)
			}
		}()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if want := fmt.Sprintf("%d <nil>", size); string(b) != want {
			t.Errorf("the backend read %q, want %q", b, want)
		}
	})

	t.Run("Expect: 100-continue refused at once", func(t *testing.T) {
		// The backend refuses without reading: the ingress must not send
		// 100 Continue, inviting a body nobody reads.
		addr := ingress(t, func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, `{"error":"invalid_token"}`, http.StatusUnauthorized)
		})
		conn := dial(t, addr)
		fmt.Fprintf(conn, "POST /mcp HTTP/1.1\r\nHost: localhost:4000\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", 8<<20)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !resp.Close {
			t.Errorf("first answer %d (Connection: close %v), want the backend's 401 and close, not 100 Continue", resp.StatusCode, resp.Close)
		}
	})
}

// dropperBackend is a backend that takes each connection, reads the start
// of the request and closes it without an answer (a component of `make
// dev` that crashed mid-request).
func dropperBackend(t *testing.T) *url.URL {
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
	u, _ := url.Parse("http://" + ln.Addr().String())
	return u
}

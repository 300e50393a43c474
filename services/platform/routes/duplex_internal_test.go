package routes

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestProxyResponseOutlivesTheLateBodyCheck replays, in a fixed order, the
// interleaving behind the Node clients' "TypeError: terminated" in the e2e
// conformance runs (issue 12): the ingress's Transport puts a POST body on
// the wire and, before it reads the incoming body once more to check that
// it is not longer than its Content-Length, the backend has answered and
// the ingress has written the response header to the client. On a loaded
// machine the Transport's write goroutine is simply not scheduled in
// between; here its connection holds it in Write until the client has the
// header. The ingress must still deliver the whole response. Without full
// duplex, Go's HTTP/1 server closes the request body when the header is
// written, the late check fails with "http: invalid Read on closed Body",
// the Transport closes the backend connection, and the client gets the
// first part of the answer and then a cut connection.
//
// Real HTTP and TCP throughout; only the scheduling is fixed.
func TestProxyResponseOutlivesTheLateBodyCheck(t *testing.T) {
	const body = `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	first := `{"jsonrpc":"2.0","id":2,"result":{"tools":[`
	rest := strings.Repeat(`{"name":"health.check"},`, 200) + `{"name":"identity.profile"}]}}` + "\n"

	more := make(chan struct{}) // the backend sends the rest of its answer
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// As the mcp-gateway does: the whole body first, then the answer.
		b, err := io.ReadAll(r.Body)
		if err != nil || string(b) != body {
			t.Errorf("backend read %q, %v", b, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, first)
		w.(http.Flusher).Flush()
		select {
		case <-more:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, rest)
	}))
	defer backend.Close()

	hold := make(chan struct{})   // releases the Transport's write goroutine
	closed := make(chan struct{}) // the backend connection was closed by the ingress
	transport := http.DefaultTransport.(*http.Transport).Clone()
	defer transport.CloseIdleConnections()
	dial := transport.DialContext
	transport.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &heldConn{Conn: c, last: []byte(body), hold: hold, closed: closed}, nil
	}
	u, _ := url.Parse(backend.URL)
	h, err := proxy([]Rule{{Path: "/mcp", PathType: "Prefix", Service: "gw"}}, map[string]*url.URL{"gw": u}, transport)
	if err != nil {
		t.Fatal(err)
	}
	// The outcome of the ingress's request write, after its late check.
	wrote := make(chan error, 1)
	trace := &httptrace.ClientTrace{WroteRequest: func(i httptrace.WroteRequestInfo) { wrote <- i.Err }}
	ingress := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(httptrace.WithClientTrace(r.Context(), trace)))
	}))
	defer ingress.Close()

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Post(ingress.URL+"/mcp", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The client has the response header: let the ingress's write
	// goroutine go on to its late check of the request body.
	close(hold)
	if err := <-wrote; err != nil {
		t.Errorf("the ingress's request write failed after the backend answered: %v", err)
		<-closed // the Transport closes the backend connection next
	}
	close(more)
	got, err := io.ReadAll(resp.Body)
	if err != nil || string(got) != first+rest {
		t.Errorf("the client read %d of %d bytes of the answer: %v", len(got), len(first+rest), err)
	}
}

// heldConn is a backend connection whose Write of the request's last
// bytes returns only when hold is closed (the bytes are on the wire).
type heldConn struct {
	net.Conn
	last   []byte
	hold   <-chan struct{}
	closed chan struct{}
	once   sync.Once
}

func (c *heldConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if bytes.HasSuffix(p, c.last) {
		<-c.hold
	}
	return n, err
}

func (c *heldConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// TestDroppedRequestLeavesTheConnectionToTheNextOne fixes the interleaving
// of TestDroppedBodyRequestIs502 where the server panicked: the backend
// takes the connection and drops it before the ingress's Transport has read
// any of the request body (the Transport's write of the request header is
// held until it closes the connection, and then fails). The round trip
// fails with the body unread; the client, keeping its connection alive,
// sends a second request on it and must get that one answered too. When
// the handler left the unread body to the server, the server read it to
// its end after the handler, started its background read of the
// connection too late, and its wait for the next request panicked
// (golang/go#68560): the second request met a closed connection.
func TestDroppedRequestLeavesTheConnectionToTheNextOne(t *testing.T) {
	const body = `{"jsonrpc":"2.0","id":1,"method":"tools/call"}`
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	transport := http.DefaultTransport.(*http.Transport).Clone()
	defer transport.CloseIdleConnections()
	dial := transport.DialContext
	transport.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &stalledConn{Conn: c, closed: make(chan struct{})}, nil
	}
	u, _ := url.Parse("http://" + ln.Addr().String())
	h, err := proxy([]Rule{{Path: "/mcp", PathType: "Prefix", Service: "gw"}}, map[string]*url.URL{"gw": u}, transport)
	if err != nil {
		t.Fatal(err)
	}
	var logged syncLog
	ingress := httptest.NewUnstartedServer(h)
	ingress.Config.ErrorLog = log.New(&logged, "", 0)
	ingress.Start()
	defer ingress.Close()

	conn, err := net.Dial("tcp", ingress.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	for i := 1; i <= 2; i++ {
		_, _ = fmt.Fprintf(conn, "POST /mcp HTTP/1.1\r\nHost: localhost:4000\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d on the connection: %v\n%.1000s", i, err, logged.String())
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(b), `"bad_gateway"`) || resp.Header.Get("Retry-After") != "" {
			t.Errorf("request %d: %d Retry-After %q %q %v, want 502 bad_gateway without Retry-After", i, resp.StatusCode, resp.Header.Get("Retry-After"), b, err)
		}
	}
	ingress.Close()
	if s := logged.String(); strings.Contains(s, "panic") {
		t.Errorf("the ingress's server panicked:\n%.1000s", s)
	}
}

// stalledConn is a backend connection whose writes wait until the
// Transport closes it, and then fail: nothing of the request is sent.
type stalledConn struct {
	net.Conn
	closed chan struct{}
	once   sync.Once
}

func (c *stalledConn) Write([]byte) (int, error) {
	<-c.closed
	return 0, net.ErrClosed
}

func (c *stalledConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// syncLog collects a server's ErrorLog.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

package routes

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"testing"
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

package routes_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The ingress in full duplex still serves every client shape an ingress
// controller meets, over real TCP: an HTTP/1.0 client, Expect:
// 100-continue (the 100 comes once the backend reads the body), a chunked
// body, a body of 8 MiB both ways, a backend that answers before reading a
// large body, and a client that goes away mid-body (the backend sees the
// body end short, the ingress keeps serving).
func TestProxyClientShapes(t *testing.T) {
	short := make(chan error, 1)
	ingressURL := ingressTo(t, "/mcp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/mcp/early":
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_token"}`)
			return
		case "/mcp/abort":
			_, err := io.ReadAll(r.Body)
			short <- err
			return
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		sum := sha256.Sum256(b)
		w.Header().Set("X-Body", fmt.Sprintf("%d %s %s", len(b), hex.EncodeToString(sum[:8]), r.Proto))
		_, _ = w.Write(b)
	}))
	addr := strings.TrimPrefix(ingressURL, "http://")
	// A client of its own for the last request: after "answer before the
	// body" the ingress closes the connection whose 8 MiB body it never
	// read, and the default client could send a later POST on it from its
	// pool before seeing the close (EOF; a POST is not retried).
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

	raw := func(t *testing.T) (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(60 * time.Second)) // a hang fails instead of stalling the suite
		return c, bufio.NewReader(c)
	}
	bodyOf := func(t *testing.T, res *http.Response) string {
		t.Helper()
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		return string(b)
	}
	digest := func(b string) string {
		sum := sha256.Sum256([]byte(b))
		return hex.EncodeToString(sum[:8])
	}

	t.Run("HTTP/1.0", func(t *testing.T) {
		c, br := raw(t)
		fmt.Fprintf(c, "POST /mcp HTTP/1.0\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello")
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := bodyOf(t, res); res.StatusCode != 200 || got != "hello" || res.Header.Get("X-Body") != "5 "+digest("hello")+" HTTP/1.1" {
			t.Errorf("HTTP/1.0 POST: %d %q %q", res.StatusCode, got, res.Header.Get("X-Body"))
		}
	})

	t.Run("Expect 100-continue", func(t *testing.T) {
		c, br := raw(t)
		fmt.Fprintf(c, "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
		line, err := br.ReadString('\n')
		if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
			t.Fatalf("before the body: %q %v, want 100 Continue", line, err)
		}
		if blank, _ := br.ReadString('\n'); blank != "\r\n" {
			t.Fatalf("after 100 Continue: %q", blank)
		}
		fmt.Fprintf(c, "hello")
		// The backend's own 100 Continue may follow the ingress's
		// (ReverseProxy forwards 1xx answers): RFC 9110 §15.2 has clients
		// read any number of 1xx before the final answer, as Go's and
		// curl do.
		res, err := http.ReadResponse(br, nil)
		for i := 0; err == nil && res.StatusCode == http.StatusContinue && i < 5; i++ {
			res, err = http.ReadResponse(br, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := bodyOf(t, res); res.StatusCode != 200 || got != "hello" {
			t.Errorf("after 100 Continue: %d %q", res.StatusCode, got)
		}
	})

	t.Run("chunked", func(t *testing.T) {
		c, br := raw(t)
		fmt.Fprintf(c, "POST /mcp HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n")
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := bodyOf(t, res); res.StatusCode != 200 || got != "hello" || res.Header.Get("X-Body") != "5 "+digest("hello")+" HTTP/1.1" {
			t.Errorf("chunked POST: %d %q %q", res.StatusCode, got, res.Header.Get("X-Body"))
		}
	})

	big := strings.Repeat("0123456789abcdef", 8<<20/16)
	t.Run("8 MiB both ways", func(t *testing.T) {
		for _, chunked := range []bool{false, true} {
			var body io.Reader = strings.NewReader(big)
			if chunked {
				body = io.MultiReader(body) // no length known: sent chunked
			}
			res, err := http.Post(ingressURL+"/mcp", "application/octet-stream", body)
			if err != nil {
				t.Fatal(err)
			}
			if got := bodyOf(t, res); res.StatusCode != 200 || got != big || res.Header.Get("X-Body") != fmt.Sprint(len(big))+" "+digest(big)+" HTTP/1.1" {
				t.Errorf("8 MiB (chunked %v): %d, %d bytes back, %q", chunked, res.StatusCode, len(got), res.Header.Get("X-Body"))
			}
		}
	})

	t.Run("answer before the body", func(t *testing.T) {
		res, err := http.Post(ingressURL+"/mcp/early", "application/octet-stream", strings.NewReader(big))
		if err != nil {
			t.Fatal(err)
		}
		if got := bodyOf(t, res); res.StatusCode != 401 || got != `{"error":"invalid_token"}` {
			t.Errorf("early answer: %d %q", res.StatusCode, got)
		}
	})

	t.Run("client gone mid-body", func(t *testing.T) {
		c, _ := raw(t)
		fmt.Fprintf(c, "POST /mcp/abort HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n0123456789")
		c.Close()
		select {
		case err := <-short:
			if err == nil {
				t.Error("the backend read a whole body of a client that sent 10 of 1000 bytes")
			}
		case <-time.After(60 * time.Second):
			t.Fatal("the backend's request did not end after the client went away")
		}
		// The ingress still serves.
		res, err := fresh.Post(ingressURL+"/mcp", "text/plain", bytes.NewReader([]byte("again")))
		if err != nil {
			t.Fatal(err)
		}
		if got := bodyOf(t, res); res.StatusCode != 200 || got != "again" {
			t.Errorf("after an aborted client: %d %q", res.StatusCode, got)
		}
	})
}

package app_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/tollgate/tollgate/services/platform/app"
)

// TestShutdownDrainsInFlightRequests: on cancel, a request already being
// served completes, and the listener stops accepting new connections.
func TestShutdownDrainsInFlightRequests(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	h, err := app.NewHTTP(context.Background(), "http", "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(started)
		<-release
		_, _ = io.WriteString(w, "finished")
	}))
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + h.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	drained := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, slog.New(slog.DiscardHandler), 10*time.Second, func() { close(drained) }, h)
	}()

	body := make(chan string, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			body <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body <- string(b)
	}()
	<-started
	cancel()
	<-drained // readiness hook runs before servers stop
	// The listener closes while the in-flight request is still running.
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := client.Get(url); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("new requests are still accepted after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	if got := <-body; got != "finished" {
		t.Errorf("in-flight request got %q", got)
	}
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestShutdownDeadlineIsEnforced(t *testing.T) {
	h, err := app.NewHTTP(context.Background(), "http", "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // a stream that never ends by itself
	}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, slog.New(slog.DiscardHandler), 300*time.Millisecond, nil, h) }()
	go func() { _, _ = http.Get("http://" + h.Addr().String()) }()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "deadline") {
			t.Errorf("Run = %v, want a shutdown deadline error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown did not respect its deadline")
	}
}

// TestStopBeforeServeIsClean: a service stopped as soon as it started may
// shut its listeners down before their Serve goroutines ran; both kinds then
// stop without an error (before, gRPC's answered "the server has been
// stopped" and the service reported a failed stop).
func TestStopBeforeServeIsClean(t *testing.T) {
	g, err := app.NewGRPC(context.Background(), "127.0.0.1:0", grpc.NewServer())
	if err != nil {
		t.Fatal(err)
	}
	h, err := app.NewHTTP(context.Background(), "http", "127.0.0.1:0", http.NotFoundHandler())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []app.Server{g, h} {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatalf("%s shutdown: %v", s.Name(), err)
		}
		if err := s.Serve(); err != nil {
			t.Errorf("%s serve after shutdown = %v, want nil", s.Name(), err)
		}
		if c, err := net.Dial("tcp", s.Addr().String()); err == nil {
			c.Close()
			t.Errorf("%s listener still accepts after the stop", s.Name())
		}
	}
}

func TestListenFailureIsReported(t *testing.T) {
	h, err := app.NewHTTP(context.Background(), "http", "127.0.0.1:0", http.NotFoundHandler())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(context.Background())
	if _, err := app.NewHTTP(context.Background(), "http", h.Addr().String(), http.NotFoundHandler()); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("second listener on a used port: %v", err)
	}
}

// serve runs h under app.NewHTTP with a short body timeout until the test ends.
func serve(t *testing.T, bodyTimeout time.Duration, h http.Handler) string {
	t.Helper()
	s, err := app.NewHTTP(context.Background(), "http", "127.0.0.1:0", h)
	if err != nil {
		t.Fatal(err)
	}
	s.BodyTimeout = bodyTimeout
	go func() { _ = s.Serve() }()
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s.Addr().String()
}

// TestSlowBodyIsCutAtTheBodyTimeout: a client sending its body one byte at
// a time (a slow-body attack, without a token) is disconnected once the
// body timeout passes, instead of holding a connection and a goroutine
// forever; the handler sees a read error.
func TestSlowBodyIsCutAtTheBodyTimeout(t *testing.T) {
	readErr := make(chan error, 1)
	addr := serve(t, 300*time.Millisecond, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
	}))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	closed := false
	for i := 0; i < 100 && !closed; i++ { // at most 100 bytes, 20ms apart
		if _, err := conn.Write([]byte("x")); err != nil {
			closed = true
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-readErr:
		if err == nil {
			t.Fatal("the handler read a slow body to its end")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the slow body was never cut")
	}
	// The server closed the connection: a read ends (EOF, a 400 or a reset).
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(conn); err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		t.Error("the connection is still open after the body timeout")
	}
}

// TestLongResponseOutlivesTheBodyTimeout: once the body is read, the
// request has no read deadline: a response streamed for longer than the
// body timeout (SSE, a long tool call) is neither cut nor cancelled.
func TestLongResponseOutlivesTheBodyTimeout(t *testing.T) {
	addr := serve(t, 100*time.Millisecond, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			t.Error(err)
		}
		for i := range 5 {
			select {
			case <-r.Context().Done():
				t.Errorf("request context cancelled after %d ticks: %v", i, r.Context().Err())
				return
			case <-time.After(100 * time.Millisecond):
			}
			_, _ = io.WriteString(w, "tick\n")
			http.NewResponseController(w).Flush()
		}
	}))
	resp, err := http.Post("http://"+addr+"/sse", "application/json", strings.NewReader(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || strings.Count(string(b), "tick") != 5 {
		t.Fatalf("streamed %q, %v; want 5 ticks", b, err)
	}
}

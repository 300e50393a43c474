package app_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/app"
)

// TestShutdownDrainsInFlightRequests: on cancel, a request already being
// served completes, and the listener stops accepting new connections.
func TestShutdownDrainsInFlightRequests(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	h, err := app.NewHTTP("http", "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
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
	h, err := app.NewHTTP("http", "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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

func TestListenFailureIsReported(t *testing.T) {
	h, err := app.NewHTTP("http", "127.0.0.1:0", http.NotFoundHandler())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(context.Background())
	if _, err := app.NewHTTP("http", h.Addr().String(), http.NotFoundHandler()); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("second listener on a used port: %v", err)
	}
}

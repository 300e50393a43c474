package grpcx_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	testingv1 "github.com/tollgate/tollgate/proto/gen/tollgate/testing/v1"
	"github.com/tollgate/tollgate/services/platform/grpcx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// slowHealth answers grpc.health.v1 Check SERVING, after delay (a backend's
// health check that looks at its own dependencies).
type slowHealth struct {
	healthpb.UnimplementedHealthServer
	delay time.Duration
}

func (h slowHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	select {
	case <-time.After(h.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// A backend (CAPABILITY_BACKENDS: any gRPC server) whose health Check takes
// longer than BreakerProbeTimeout (here 800 ms) but whose methods answer at
// once again: once its breaker has opened (three calls timed out while it
// hung), it must close again when the backend recovers. With every probe
// bounded at BreakerProbeTimeout the breaker stayed open for good and every
// call was refused while the backend was healthy; each unanswered probe now
// doubles the next one's bound (up to BreakerProbeTimeoutMax).
func TestBreakerClosesForABackendWithASlowHealthCheck(t *testing.T) {
	h := &hanging{release: make(chan struct{})}
	srv := grpc.NewServer()
	testingv1.RegisterEchoServiceServer(srv, h)
	healthpb.RegisterHealthServer(srv, slowHealth{delay: 800 * time.Millisecond})
	conn, err := grpcx.Dial(serveGRPC(t, srv), grpcx.ClientOptions{Name: "slow-health"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := testingv1.NewEchoServiceClient(conn)
	call := func(d time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		_, err := client.Echo(ctx, &testingv1.EchoRequest{Text: "x"})
		return err
	}
	for range grpcx.BreakerTripAfter {
		_ = call(100 * time.Millisecond) // the backend hangs: DeadlineExceeded
	}
	close(h.release) // the backend answers at once again
	testharness.Eventually(t, 15*time.Second, "calls go through once the backend answers again", func() (bool, string) {
		err := call(5 * time.Second)
		return err == nil, func() string {
			if err != nil {
				return err.Error()
			}
			return ""
		}()
	})
}

// neverHealthy counts grpc.health.v1 Checks and answers none of them (a
// health service stuck on its own dependency while the methods work).
type neverHealthy struct {
	healthpb.UnimplementedHealthServer
	checks atomic.Int64
}

func (h *neverHealthy) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	h.checks.Add(1)
	<-ctx.Done()
	return nil, ctx.Err()
}

// countingHanging hangs its Echo calls until release; the calls whose text
// is "after" (made after the trip) are counted and told to arrived.
type countingHanging struct {
	testingv1.UnimplementedEchoServiceServer
	release chan struct{}
	calls   atomic.Int64
	arrived chan struct{}
}

func (h *countingHanging) Echo(ctx context.Context, in *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
	if in.GetText() == "after" {
		h.calls.Add(1)
		select {
		case h.arrived <- struct{}{}:
		default:
		}
	}
	select {
	case <-h.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &testingv1.EchoResponse{Text: in.GetText()}, nil
}

// A backend whose health Check never answers (not even within
// BreakerProbeTimeoutMax) while its connection is up: after
// BreakerCallProbeAfter unanswered probes in a row, one caller's call is
// the probe, and when it is answered the breaker closes. Until then every
// call is refused at once by the breaker (none reaches the backend, so at
// light traffic no call waits its deadline), and the failed probes are
// logged at WARN naming the backend and the error.
func TestBreakerClosesForABackendWhoseHealthCheckNeverAnswers(t *testing.T) {
	h := &countingHanging{release: make(chan struct{}), arrived: make(chan struct{}, 1)}
	health := &neverHealthy{}
	// The fleet's keepalive enforcement: the connection must stay up (a
	// too_many_pings GOAWAY would fail the calls in flight on it).
	srv := grpc.NewServer(grpcx.KeepalivePolicy())
	testingv1.RegisterEchoServiceServer(srv, h)
	healthpb.RegisterHealthServer(srv, health)
	addr := serveGRPC(t, srv)
	logs := &testharness.SyncBuffer{}
	conn, err := grpcx.Dial(addr, grpcx.ClientOptions{Name: "never-healthy", Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := testingv1.NewEchoServiceClient(conn)
	call := func(text string, d time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		_, err := client.Echo(ctx, &testingv1.EchoRequest{Text: text})
		return err
	}
	for range grpcx.BreakerTripAfter {
		_ = call("trip", 100*time.Millisecond) // the backend hangs: DeadlineExceeded
	}

	// The backend answers again as soon as a call reaches it: the first
	// call let through after the trip is the caller's probe.
	var checksAtHandOver atomic.Int64
	go func() {
		<-h.arrived
		checksAtHandOver.Store(health.checks.Load())
		close(h.release)
	}()
	refusedByBreaker := 0
	testharness.Eventually(t, 90*time.Second, "a call goes through though the health Check never answers", func() (bool, string) {
		err := call("after", 30*time.Second)
		if err == nil {
			return true, ""
		}
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "circuit breaker open") {
			t.Fatalf("call after the trip: %v; want it refused at once by the breaker, or answered", err)
		}
		refusedByBreaker++
		time.Sleep(grpcx.BreakerOpen / 4)
		return false, err.Error()
	})
	if n := h.calls.Load(); n != 1 {
		t.Errorf("%d calls reached the backend after the trip until one was answered, want 1 (the caller's probe)", n)
	}
	if c := checksAtHandOver.Load(); c < grpcx.BreakerCallProbeAfter {
		t.Errorf("a call was the probe after %d health probes, want at least %d (BreakerCallProbeAfter)", c, grpcx.BreakerCallProbeAfter)
	}
	t.Logf("%d calls refused by the breaker, %d health probes before a call was the probe", refusedByBreaker, checksAtHandOver.Load())
	if err := call("after", 5*time.Second); err != nil {
		t.Fatalf("call after the breaker closed: %v", err)
	}

	var warned, closed bool
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["grpc.peer"] != "never-healthy" {
			t.Errorf("breaker log %v does not name the backend", rec)
		}
		switch rec["level"] {
		case "WARN":
			errText, _ := rec["error"].(string)
			warned = warned || strings.Contains(errText, "DeadlineExceeded")
		case "INFO":
			closed = true
		}
	}
	if !warned || !closed {
		t.Errorf("breaker logs:\n%s\nwant a WARN naming the unanswered probe's error (DeadlineExceeded) and an INFO when the breaker closed", logs.String())
	}
}

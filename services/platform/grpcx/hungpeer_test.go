package grpcx_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	testingv1 "github.com/tollgate/tollgate/proto/gen/tollgate/testing/v1"
	"github.com/tollgate/tollgate/services/platform/grpcx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// TestHungPeerIsRefusedAtOnceAtLightTraffic: with the whole peer hung
// (it keeps its connections and never answers, health service included),
// once BreakerTripAfter calls have timed out every later call is refused
// at once by the breaker (Unavailable, "circuit breaker open") — also
// calls spaced more than BreakerOpen apart, which arrive when the breaker
// is half-open: the half-open probe is a grpc.health.v1 Check bounded by
// BreakerProbeTimeout, made in the background, never a caller's call on
// the caller's deadline. Each call here allows 30 s: had it been the
// probe it would have ended DeadlineExceeded. Once the peer answers
// again, a probe closes the breaker and calls go through.
func TestHungPeerIsRefusedAtOnceAtLightTraffic(t *testing.T) {
	released := make(chan struct{})
	close(released)
	addr := serveEcho(t, grpcx.ServerOptions{Logger: slog.New(slog.DiscardHandler)}, &hanging{release: released})
	proxy := testharness.StartHungProxy(t, addr)
	conn, err := grpcx.Dial(proxy.Addr(), grpcx.ClientOptions{Name: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testingv1.NewEchoServiceClient(conn)
	call := func(timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_, err := client.Echo(ctx, &testingv1.EchoRequest{Text: "x"})
		return err
	}
	if err := call(30 * time.Second); err != nil {
		t.Fatalf("call before the hang: %v", err)
	}

	proxy.Hang()
	for i := range grpcx.BreakerTripAfter {
		if err := call(200 * time.Millisecond); status.Code(err) != codes.DeadlineExceeded && status.Code(err) != codes.Unavailable {
			t.Fatalf("call %d to a hung peer: %v, want DeadlineExceeded or Unavailable", i, err)
		}
	}
	for i := range 4 {
		// Past the open period: the breaker is half-open when the call comes.
		time.Sleep(grpcx.BreakerOpen + 300*time.Millisecond)
		err := call(30 * time.Second)
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "circuit breaker open") {
			t.Errorf("call %d, %s after the previous one, to a peer known to hang: %v; want Unavailable from the breaker at once, not the call made as the probe", i, grpcx.BreakerOpen+300*time.Millisecond, err)
		}
	}

	proxy.Release()
	testharness.Eventually(t, 30*time.Second, "calls go through once the peer answers again", func() (bool, string) {
		err := call(5 * time.Second)
		return err == nil, status.Convert(err).Message()
	})
}

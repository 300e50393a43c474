package grpcx

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// Circuit breaker of every client connection (docs/operations/failures.md).
const (
	// BreakerTripAfter consecutive calls that found the peer unavailable or
	// timed out open the breaker.
	BreakerTripAfter = 3
	// BreakerOpen is how long an open breaker fails calls at once before
	// one call probes the peer again.
	BreakerOpen = time.Second
)

// BreakerProbeTimeout bounds the grpc.health.v1 Check that probes a peer
// whose breaker has been open BreakerOpen — as readiness checks of a peer
// are bounded (500 ms).
const BreakerProbeTimeout = 500 * time.Millisecond

// breakerInterceptor fails calls at once (Unavailable) while the peer is
// known to be down: after BreakerTripAfter consecutive calls answered
// Unavailable or DeadlineExceeded — a peer that is gone fails fast by
// itself, but a hung one would otherwise cost every call its whole
// deadline. A call the caller cancelled says nothing about the peer and is
// not counted; any answer from the peer, error or not, is a success.
//
// Once the breaker has been open BreakerOpen (half-open), a call is never
// the probe: it is refused at once and starts, unless one is under way, a
// grpc.health.v1 Check of the whole server in the background, bounded by
// BreakerProbeTimeout, which closes the breaker when the peer answers it
// (any answer: a server without the health service answers UNIMPLEMENTED)
// and keeps it open another BreakerOpen when it does not. Made on a
// caller's deadline (CORE_CALL_TIMEOUT), the probe cost a call every
// BreakerOpen its whole deadline: at light traffic, every call.
func breakerInterceptor(name string) grpc.UnaryClientInterceptor {
	cb := gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        name,
		MaxRequests: 1,
		Timeout:     BreakerOpen,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= BreakerTripAfter },
		IsExcluded:  func(err error) bool { return errors.Is(err, context.Canceled) },
		IsSuccessful: func(err error) bool {
			switch status.Code(err) {
			case codes.Unavailable, codes.DeadlineExceeded:
				return false
			}
			return true
		},
	})
	var probing atomic.Bool
	probe := func(cc *grpc.ClientConn) {
		if !probing.CompareAndSwap(false, true) {
			return
		}
		go func() {
			defer probing.Store(false)
			ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), probeKey{}, true), BreakerProbeTimeout)
			defer cancel()
			_, _ = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
		}()
	}
	refused := func() error {
		return status.Errorf(codes.Unavailable, "%s unavailable: circuit breaker open after repeated failures", name)
	}
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if ctx.Value(probeKey{}) == nil && cb.State() == gobreaker.StateHalfOpen {
			probe(cc)
			return refused()
		}
		var callErr error
		_, err := cb.Execute(func() (struct{}, error) {
			callErr = invoker(ctx, method, req, reply, cc, opts...)
			if callErr != nil && errors.Is(ctx.Err(), context.Canceled) {
				return struct{}{}, context.Canceled
			}
			return struct{}{}, callErr
		})
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			return refused()
		}
		return callErr
	}
}

// probeKey marks the context of the breaker's own health probe.
type probeKey struct{}

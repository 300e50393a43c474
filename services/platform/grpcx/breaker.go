package grpcx

import (
	"context"
	"errors"
	"time"

	"github.com/sony/gobreaker/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
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

// breakerInterceptor fails calls at once (Unavailable) while the peer is
// known to be down: after BreakerTripAfter consecutive calls answered
// Unavailable or DeadlineExceeded — a peer that is gone fails fast by
// itself, but a hung one would otherwise cost every call its whole
// deadline. A call the caller cancelled says nothing about the peer and is
// not counted; any answer from the peer, error or not, is a success.
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
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		var callErr error
		_, err := cb.Execute(func() (struct{}, error) {
			callErr = invoker(ctx, method, req, reply, cc, opts...)
			if callErr != nil && errors.Is(ctx.Err(), context.Canceled) {
				return struct{}{}, context.Canceled
			}
			return struct{}{}, callErr
		})
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			return status.Errorf(codes.Unavailable, "%s unavailable: circuit breaker open after repeated failures", name)
		}
		return callErr
	}
}

package grpcx

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
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

// Half-open probes (breakerInterceptor, docs/operations/failures.md).
const (
	// BreakerProbeTimeout bounds the first grpc.health.v1 Check that
	// probes a peer whose breaker has been open BreakerOpen — as
	// readiness checks of a peer are bounded (500 ms).
	BreakerProbeTimeout = 500 * time.Millisecond
	// BreakerProbeTimeoutMax: each probe that goes unanswered doubles the
	// next one's bound, up to this (CORE_CALL_TIMEOUT's default), so a
	// peer whose health Check is slower than BreakerProbeTimeout (a
	// backend checking its own database) is still found back.
	BreakerProbeTimeoutMax = 5 * time.Second
	// BreakerCallProbeAfter probes in a row that went unanswered on a
	// connection that is up (READY: the peer's transport answers, its
	// health Check does not) hand the next probe to a caller's call, on
	// the caller's deadline, as before health probes: a peer whose health
	// Check never answers within BreakerProbeTimeoutMax but whose methods
	// do is not locked out. A peer hung whole loses its connection to the
	// keepalive (KeepaliveTime + KeepaliveTimeout) before that.
	BreakerCallProbeAfter = 5
	// BreakerLogEvery: a connection logs its failed probes (WARN) at most
	// once per BreakerLogEvery.
	BreakerLogEvery = 30 * time.Second
)

// breakerInterceptor fails calls at once (Unavailable) while the peer is
// known to be down: after BreakerTripAfter consecutive calls answered
// Unavailable or DeadlineExceeded — a peer that is gone fails fast by
// itself, but a hung one would otherwise cost every call its whole
// deadline. A call the caller cancelled says nothing about the peer and is
// not counted; any answer from the peer, error or not, is a success.
//
// Once the breaker has been open BreakerOpen (half-open), a call is
// normally not the probe: it is refused at once and starts, unless one is
// under way, a grpc.health.v1 Check of the whole server in the background,
// which closes the breaker when the peer answers it (any answer: a server
// without the health service answers UNIMPLEMENTED) and keeps it open
// another BreakerOpen when it does not. Made on a caller's deadline
// (CORE_CALL_TIMEOUT), the probe cost a call every BreakerOpen its whole
// deadline: at light traffic, every call. The first Check is bounded by
// BreakerProbeTimeout, and each unanswered one doubles the bound up to
// BreakerProbeTimeoutMax: a fixed bound locked out for good a backend
// whose health Check is slower than it. After BreakerCallProbeAfter
// unanswered Checks in a row on a connection that is up, the next call
// (one) is the probe, on its own deadline. Back to closed, the bound and
// the count start again. Failed probes are logged at WARN, naming the
// peer (name) and the error, at most once per BreakerLogEvery.
func breakerInterceptor(name string, log *slog.Logger) grpc.UnaryClientInterceptor {
	var (
		mu         sync.Mutex
		bound      = BreakerProbeTimeout // the next health probe's
		unanswered int                   // health probes in a row, since the breaker last closed
		lastLog    time.Time
		logged     bool // a failed probe was logged since the breaker last closed
		callProbe  atomic.Bool
		probing    atomic.Bool
	)
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
		OnStateChange: func(_ string, _, to gobreaker.State) {
			if to != gobreaker.StateClosed {
				return
			}
			mu.Lock()
			wasLogged := logged
			bound, unanswered, logged = BreakerProbeTimeout, 0, false
			mu.Unlock()
			callProbe.Store(false)
			if wasLogged {
				log.Info("grpc peer answers again: circuit breaker closed", slog.String("grpc.peer", name))
			}
		},
	})
	// failed records a health probe that went unanswered and says when the
	// next is a caller's call.
	failed := func(cc *grpc.ClientConn, timeout time.Duration, err error) {
		mu.Lock()
		unanswered++
		n := unanswered
		bound = min(2*bound, BreakerProbeTimeoutMax)
		next := bound
		ready := cc.GetState() == connectivity.Ready
		handOver := ready && n%BreakerCallProbeAfter == 0
		now := time.Now()
		logNow := lastLog.IsZero() || now.Sub(lastLog) >= BreakerLogEvery
		if logNow {
			lastLog, logged = now, true
		}
		mu.Unlock()
		if handOver {
			callProbe.Store(true)
		}
		if logNow {
			log.Warn("grpc peer did not answer the circuit breaker's health probe: calls refused until it does",
				slog.String("grpc.peer", name), slog.String("error", err.Error()),
				slog.Duration("probe_timeout", timeout), slog.Int("probes_unanswered", n),
				slog.Bool("connection_ready", ready), slog.Duration("next_probe_timeout", next),
				slog.Bool("next_probe_is_a_call", handOver))
		}
	}
	probe := func(cc *grpc.ClientConn) {
		if !probing.CompareAndSwap(false, true) {
			return
		}
		mu.Lock()
		timeout := bound
		mu.Unlock()
		go func() {
			defer probing.Store(false)
			ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), probeKey{}, true), timeout)
			defer cancel()
			_, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
			switch status.Code(err) {
			case codes.Unavailable, codes.DeadlineExceeded:
				failed(cc, timeout, err)
			}
		}()
	}
	refused := func() error {
		return status.Errorf(codes.Unavailable, "%s unavailable: circuit breaker open after repeated failures", name)
	}
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if ctx.Value(probeKey{}) == nil && cb.State() == gobreaker.StateHalfOpen {
			// A caller's call probes only when handed the probe, and only
			// on a connection that is up: on one being made it would wait
			// its deadline for the connection.
			if !callProbe.Load() || probing.Load() || cc.GetState() != connectivity.Ready || !callProbe.CompareAndSwap(true, false) {
				probe(cc)
				return refused()
			}
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

// Package grpcx builds the fleet's gRPC servers and clients the same way
// everywhere: health protocol, reflection, Prometheus metrics, panic
// recovery, request logging, a deadline cap and the fault error mapping.
package grpcx

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	prom "github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/services/platform/fault"
	"github.com/tollgate/tollgate/services/platform/telemetry"
)

// ServerOptions configure NewServer.
type ServerOptions struct {
	Logger   *slog.Logger
	Registry prom.Registerer
	// MaxDeadline caps how long any call may run; calls without a deadline get it.
	MaxDeadline time.Duration
	// Unary interceptors run after the standard chain (authentication, for example).
	Unary []grpc.UnaryServerInterceptor
	// Stream interceptors run after the standard stream chain (the
	// streaming rule of capauth, for example).
	Stream []grpc.StreamServerInterceptor
	// Telemetry traces every call (nil: not traced).
	Telemetry *telemetry.Telemetry
	// Creds are the transport credentials (nil: plaintext, the fleet's
	// own servers on the cluster network). A backend of one's own may serve
	// TLS or mutual TLS (credentials.NewTLS).
	Creds credentials.TransportCredentials
	// StreamWorkers is how many goroutines serve incoming calls, each one
	// after the other (GRPC_STREAM_WORKERS). 0 is DefaultStreamWorkers;
	// a negative number serves every call on a goroutine of its own.
	StreamWorkers int
}

// DefaultStreamWorkers is how many reused goroutines serve calls unless
// ServerOptions.StreamWorkers says otherwise. A call beyond them (all
// busy: more calls in flight, or long streams such as health Watch and
// reflection holding some) gets a goroutine of its own, as without
// workers. Without workers every call ran on a new goroutine whose stack
// grew from its starting size while the call was decoded and passed
// through the interceptors (runtime.morestack and its stack copies: 10–12 %
// of capability-core's CPU under the mcp-gateway benchmark); a worker keeps
// the stack it grew. gRPC starts each worker afresh after 65 536 calls, so a
// stack grown by one deep call is not kept for ever. 64 covers the calls
// one gateway replica keeps in flight to one backend under load
// (docs/benchmarks/mcp-gateway.md) and costs 64 parked goroutines.
const DefaultStreamWorkers = 64

// Server is a gRPC server with its health service.
type Server struct {
	*grpc.Server
	Health *health.Server
}

// NewServer returns a server with the standard interceptor chain, grpc.health.v1
// and reflection registered. Every call gets a request id (the caller's
// x-request-id metadata when well-formed). Register services, then serve it with app.NewGRPC.
func NewServer(o ServerOptions) *Server {
	if o.MaxDeadline == 0 {
		o.MaxDeadline = 30 * time.Second
	}
	metrics := prometheus.NewServerMetrics(prometheus.WithServerHandlingTimeHistogram())
	if o.Registry != nil {
		o.Registry.MustRegister(metrics)
	}
	chain := []grpc.UnaryServerInterceptor{
		unaryRequestID,
		metrics.UnaryServerInterceptor(),
		logCalls(o.Logger),
		recovery.UnaryServerInterceptor(recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
			o.Logger.ErrorContext(ctx, "panic in rpc handler", "panic", p)
			return status.Error(codes.Internal, "internal error")
		})),
		deadlineCap(o.MaxDeadline),
		fault.UnaryServerInterceptor(o.Logger),
	}
	chain = append(chain, o.Unary...)
	sopts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(chain...),
		grpc.ChainStreamInterceptor(append([]grpc.StreamServerInterceptor{streamRequestID, metrics.StreamServerInterceptor()}, o.Stream...)...),
		KeepalivePolicy(),
		// Connections are closed after MaxConnectionAge (calls in flight
		// get the grace period), so clients re-resolve DNS and spread over
		// pods added since; idle or dead clients are pinged and dropped.
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionAge: 5 * time.Minute, MaxConnectionAgeGrace: 30 * time.Second,
			Time: 30 * time.Second, Timeout: 10 * time.Second,
		}),
	}
	switch {
	case o.StreamWorkers == 0:
		sopts = append(sopts, grpc.NumStreamWorkers(DefaultStreamWorkers))
	case o.StreamWorkers > 0:
		sopts = append(sopts, grpc.NumStreamWorkers(uint32(o.StreamWorkers)))
	}
	if o.Telemetry != nil {
		sopts = append(sopts, o.Telemetry.GRPCServerOptions()...)
	}
	if o.Creds != nil {
		sopts = append(sopts, grpc.Creds(o.Creds))
	}
	s := grpc.NewServer(sopts...)
	hs := health.NewServer()
	healthRegister(s, hs)
	reflection.Register(s)
	metrics.InitializeMetrics(s)
	return &Server{Server: s, Health: hs}
}

// KeepalivePolicy is the keepalive enforcement of every server built by
// NewServer: pings at least KeepaliveMinTime apart, with or without calls
// in flight, which is what Dial's clients send. A gRPC server built
// otherwise that the fleet's clients dial (a test's stand-in, a backend
// written in Go) needs it too: gRPC's default policy (MinTime 5 minutes, no
// pings without calls, the same in grpc-go, grpc-java and gRPC core) sends
// Dial's clients GOAWAY "too_many_pings" after about 30 s of an idle
// connection (docs/operations/failures.md).
func KeepalivePolicy() grpc.ServerOption {
	return grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: KeepaliveMinTime, PermitWithoutStream: true})
}

func deadlineCap(max time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > max {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, max)
			defer cancel()
		}
		return h(ctx, req)
	}
}

// callLevel logs successful calls at debug (health probes and key fetches
// would drown everything else), caller mistakes at info, failures at warn+.
func callLevel(c codes.Code) slog.Level {
	switch c {
	case codes.OK:
		return slog.LevelDebug
	case codes.Internal, codes.Unknown, codes.DataLoss:
		return slog.LevelError
	case codes.Unavailable, codes.DeadlineExceeded:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

// logCalls writes one "finished call" line per call at callLevel of its
// code. Nothing about the call is formatted unless the logger takes that
// level: at the usual info level a successful call costs a level check.
// (go-grpc-middleware's logging interceptor, used before, built its fields
// — start time, deadline, peer — for every call before the level was
// consulted: 9–10 % of capability-core's CPU under load, issue 12.)
func logCalls(l *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := h(ctx, req)
		code := status.Code(err)
		lvl := callLevel(code)
		if !l.Enabled(ctx, lvl) {
			return resp, err
		}
		service, method := splitMethod(info.FullMethod)
		attrs := []slog.Attr{
			slog.String("grpc.service", service), slog.String("grpc.method", method),
			slog.String("grpc.code", code.String()),
			slog.Float64("grpc.time_ms", float64(time.Since(start).Microseconds())/1000),
		}
		if err != nil {
			attrs = append(attrs, slog.String("grpc.error", err.Error()))
		}
		l.LogAttrs(ctx, lvl, "finished call", attrs...)
		return resp, err
	}
}

// splitMethod splits "/pkg.Service/Method".
func splitMethod(full string) (string, string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", full
}

// ClientOptions configure Dial.
type ClientOptions struct {
	Registry prom.Registerer
	// Name distinguishes this client's metrics ("capability-core", "auth-server").
	Name string
	// Telemetry traces every call and propagates the trace (nil: not traced).
	Telemetry *telemetry.Telemetry
	// Lookup resolves the target's host (nil: net.DefaultResolver.LookupHost).
	Lookup LookupFunc
	// TLS, when set, secures the connection (with a client certificate for
	// mTLS when it holds one); nil is plaintext. Capability backends may
	// ask for it (CAPABILITY_BACKEND_<NAME>_TLS*, config.Backends).
	TLS *tls.Config
	// Keepalive, when set, replaces the fleet's keepalive (KeepaliveTime,
	// KeepaliveTimeout, pings without calls) for a peer whose server does
	// not permit it: a capability backend with gRPC's default enforcement
	// policy (CAPABILITY_BACKEND_<NAME>_KEEPALIVE, config.Backend).
	Keepalive *keepalive.ClientParameters
	// Logger receives the circuit breaker's reports: its failed probes of
	// the peer (WARN, rate-limited) and its closing again (nil:
	// slog.Default()).
	Logger *slog.Logger
}

// Client connection tuning (docs/operations/failures.md).
const (
	// ReconnectMaxDelay caps the reconnect back-off (gRPC's default grows
	// to 120s, which kept clients away from a peer long after it returned).
	ReconnectMaxDelay = time.Second
	// ConnectTimeout bounds one connection attempt, HTTP/2 handshake
	// included, so a hung peer is given up quickly.
	ConnectTimeout = 2 * time.Second
	// KeepaliveTime and KeepaliveTimeout: an idle connection is pinged
	// every KeepaliveTime; no answer within KeepaliveTimeout closes it, so
	// a peer that vanished without a TCP reset is noticed within 12s.
	// Connections without calls are pinged too (PermitWithoutStream), so
	// the servers must permit that (KeepalivePolicy).
	KeepaliveTime    = 10 * time.Second
	KeepaliveTimeout = 2 * time.Second
	// KeepaliveMinTime is the shortest interval between a client's pings
	// that the fleet's servers accept (KeepalivePolicy). A server counts a
	// ping that comes sooner as a strike and, at the third strike without
	// a response written in between, sends GOAWAY "too_many_pings" and
	// closes the connection, failing the calls in flight on it. A client
	// pings KeepaliveTime after the last frame it read, but the server
	// measures from when it handled the previous ping, after queueing its
	// answer: a server stalled there for a moment saw a ping "early" when
	// MinTime was KeepaliveTime itself. Half of it leaves seconds of slack.
	KeepaliveMinTime = KeepaliveTime / 2
	// DNSReresolveInterval is the shortest time between two DNS
	// lookups of a target (gRPC's own resolver waits 30s): after a rollout
	// replaces every pod, clients find the new ones within about a second.
	// resolver.go says when a target is looked up.
	DNSReresolveInterval = time.Second
)

// serviceConfig spreads calls over every address the resolver returns
// (every pod behind a headless Service) instead of pinning one.
const serviceConfig = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// Dial returns a client connection to target. Connections are lazy: a peer
// that is down fails calls with Unavailable, not Dial.
//
// target is host:port, resolved through DNS with calls balanced
// round-robin over every address: point it at a headless Service so that
// each pod is one address. While the host resolves to no address (the
// Service has no Ready pod yet) it is looked up every ResolveRetryInterval
// and calls fail with Unavailable naming ErrNoAddress; resolver.go has the
// whole schedule. A comma-separated list of host:port addresses is used as
// given, without DNS (tests, static setups). A target with a scheme
// ("dns:///host:port", "unix:///path") goes to gRPC's own resolver of that
// scheme. Any other target is refused: host:port needs its port.
// A peer that is down is retried with back-off capped at ReconnectMaxDelay;
// calls fail fast (Unavailable) while no address is connected, and move to
// the remaining addresses as soon as one fails; a circuit breaker fails
// them at once while the peer is known to be hung (breaker.go).
//
// Traffic between fleet services is plaintext inside the cluster network,
// which NetworkPolicies restrict; identity travels as the caller's access
// token and is verified again by the callee (see docs/architecture.md).
// A capability backend may be reached over TLS or mTLS (o.TLS).
func Dial(target string, o ClientOptions) (*grpc.ClientConn, error) {
	bc := backoff.DefaultConfig
	bc.BaseDelay, bc.MaxDelay = 100*time.Millisecond, ReconnectMaxDelay
	creds := insecure.NewCredentials()
	if o.TLS != nil {
		creds = credentials.NewTLS(o.TLS)
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	ka := keepalive.ClientParameters{Time: KeepaliveTime, Timeout: KeepaliveTimeout, PermitWithoutStream: true}
	if o.Keepalive != nil {
		ka = *o.Keepalive
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bc, MinConnectTimeout: ConnectTimeout}),
		grpc.WithKeepaliveParams(ka),
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithDisableServiceConfig(), // no DNS TXT lookups; serviceConfig applies
		// Fail at once while the peer is known to be down (breaker.go).
		grpc.WithChainUnaryInterceptor(breakerInterceptor(o.Name, log)),
		// The caller's request id travels in x-request-id metadata.
		grpc.WithChainUnaryInterceptor(unaryClientRequestID),
		grpc.WithChainStreamInterceptor(streamClientRequestID),
	}
	if o.Telemetry != nil {
		opts = append(opts, o.Telemetry.GRPCDialOptions()...)
	}
	switch {
	case strings.Contains(target, ","):
		r, err := staticResolver(target)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.WithResolvers(r))
		target = r.Scheme() + ":///static"
	case strings.Contains(target, "://"):
		// gRPC's resolver of that scheme.
	default:
		if _, _, err := net.SplitHostPort(target); err != nil {
			return nil, fmt.Errorf("grpc target %q: want host:port: %w", target, err)
		}
		b := newDNSBuilder(o.Lookup)
		opts = append(opts, grpc.WithResolvers(b))
		target = b.Scheme() + ":///" + target
	}
	if o.Registry != nil {
		m := prometheus.NewClientMetrics(
			prometheus.WithClientHandlingTimeHistogram(prometheus.WithHistogramConstLabels(prom.Labels{"peer": o.Name})),
			prometheus.WithClientCounterOptions(prometheus.WithConstLabels(prom.Labels{"peer": o.Name})),
		)
		if err := o.Registry.Register(m); err != nil {
			return nil, err
		}
		opts = append(opts, grpc.WithChainUnaryInterceptor(m.UnaryClientInterceptor()), grpc.WithChainStreamInterceptor(m.StreamClientInterceptor()))
	}
	return grpc.NewClient(target, opts...)
}

// staticResolver serves a fixed list of host:port addresses.
func staticResolver(list string) (*manual.Resolver, error) {
	var addrs []resolver.Address
	for _, a := range strings.Split(list, ",") {
		a = strings.TrimSpace(a)
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("grpc target %q: %w", a, err)
		}
		addrs = append(addrs, resolver.Address{Addr: a})
	}
	r := manual.NewBuilderWithScheme("tollgate-static")
	r.InitialState(resolver.State{Addresses: addrs})
	return r, nil
}

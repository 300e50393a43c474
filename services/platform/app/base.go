package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"google.golang.org/grpc"

	"github.com/tollgate/tollgate/services/platform/admin"
	"github.com/tollgate/tollgate/services/platform/buildinfo"
	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/grpcx"
	"github.com/tollgate/tollgate/services/platform/logging"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/telemetry"
)

// Listening is told the bound address of each server once all are bound
// (tests start services on port 0 and learn their ports here).
type Listening func(addrs map[string]net.Addr)

// Base is what every service has: a logger, a metrics registry, tracing,
// readiness checks and the admin listener.
type Base struct {
	Config config.Common
	// Output is where Log writes (and any logger that should join a
	// request's single write, such as the auth-server's audit log).
	Output  *logging.Output
	Log     *slog.Logger
	Metrics *prometheus.Registry
	// Telemetry is the service's tracing (OTEL_* settings; off when unset).
	Telemetry *telemetry.Telemetry
	Ready     *admin.Readiness
	admin     *HTTP
}

// NewBase sets up logging to w, metrics and the admin listener of c (bound
// as NewHTTP binds: ctx may hand it over).
func NewBase(ctx context.Context, c config.Common, w io.Writer) (*Base, error) {
	out := logging.NewOutput(w)
	log := logging.New(out, c.LogFormat, c.LogLevel, c.Service)
	// The libraries' own messages join the service's log, as its lines and
	// through its redaction, instead of printf lines on stderr: go-redis's
	// (a failed dial, a connection dropped by a hook) and OpenTelemetry's
	// (a span export that failed). Both are process-wide; a process runs
	// one service.
	redis.SetLogger(redisLog{log})
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("tracing failed", "err", err)
	}))
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_build_info", Help: "Build version of the running binary (always 1).",
			ConstLabels: prometheus.Labels{"service": c.Service, "version": buildinfo.Version},
		}, func() float64 { return 1 }),
	)
	tel, err := telemetry.New(context.Background(), c.Tracing)
	if err != nil {
		return nil, err
	}
	ready := admin.NewReadiness(2*time.Second, log)
	reg.MustRegister(ready.Collector())
	adm, err := NewHTTP(ctx, "admin", c.AdminAddr, admin.Handler(admin.Options{Gatherer: reg, Readiness: ready, Pprof: c.Pprof}))
	if err != nil {
		return nil, err
	}
	log.Info("starting", "version", buildinfo.Version, "env", string(c.Env), "tracing", tel.Enabled())
	return &Base{Config: c, Output: out, Log: log, Metrics: reg, Telemetry: tel, Ready: ready, admin: adm}, nil
}

// Serve runs servers plus the admin listener until ctx ends, then drains:
// readiness goes down first, then every server shuts down gracefully.
func (b *Base) Serve(ctx context.Context, onListen Listening, servers ...Server) error {
	all := append([]Server{b.admin}, servers...)
	if onListen != nil {
		addrs := map[string]net.Addr{}
		for _, s := range all {
			addrs[s.Name()] = s.Addr()
		}
		onListen(addrs)
	}
	err := Run(ctx, b.Log, b.Config.ShutdownTimeout, b.Ready.Drain, all...)
	b.flush()
	return err
}

// Close releases the admin listener when start-up fails before Serve.
func (b *Base) Close() { _ = b.admin.srv.Close(); _ = b.admin.ln.Close(); b.flush() }

// flush exports the spans still buffered, within a bounded time.
func (b *Base) flush() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Telemetry.Shutdown(ctx); err != nil {
		b.Log.Warn("could not flush traces", "err", err)
	}
}

// Instrument adds the base's tracing and the Redis client metrics
// (telemetry.InstrumentRedisMetrics) to rdb.
func (b *Base) Instrument(rdb *redisx.Client) error {
	if err := b.Telemetry.InstrumentRedis(rdb.UniversalClient); err != nil {
		return err
	}
	return telemetry.InstrumentRedisMetrics(rdb.UniversalClient, b.Metrics)
}

// Dial connects to a peer of the fleet, named name in metrics and logs
// (grpcx.Dial), with the base's metrics, tracing and log: the circuit
// breaker's reports of the peer (a failed probe at WARN) are lines of the
// service's log, not of slog.Default.
func (b *Base) Dial(target, name string) (*grpc.ClientConn, error) {
	return grpcx.Dial(target, grpcx.ClientOptions{Registry: b.Metrics, Name: name, Telemetry: b.Telemetry, Logger: b.Log})
}

// PublicHTTP wraps a service's public handler with the request id,
// tracing, the request-duration histogram (in the base's registry) and,
// when o.AccessLog is set, the access log (telemetry.Middleware); outside
// them all, the hold that writes a request's log lines on the base's
// Output — its access-log line and what the handler logged before — in one
// write (logging.Output.Hold).
func (b *Base) PublicHTTP(h http.Handler, o telemetry.HTTPOptions) (http.Handler, error) {
	if o.Registry == nil {
		o.Registry = b.Metrics
	}
	h, err := b.Telemetry.Middleware(h, o)
	if err != nil {
		return nil, err
	}
	return b.Output.Hold(h), nil
}

// redisLog is go-redis's logger (redis.SetLogger) writing to a service's
// log: each message a warning "redis client" with the message as detail.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	if ctx == nil {
		ctx = context.Background()
	}
	l.log.WarnContext(ctx, "redis client", "detail", fmt.Sprintf(format, v...))
}

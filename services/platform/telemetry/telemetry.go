// Package telemetry sets up the fleet's OpenTelemetry tracing once: an
// OTLP exporter configured by the standard OTEL_* variables (see
// config.Tracing), W3C Trace Context and Baggage propagation, and the
// instrumentation of HTTP servers (otelhttp), gRPC servers and clients
// (otelgrpc stats handlers) and Redis clients (redisotel). Nothing is
// global: every instrumented part gets this package's provider and
// propagator explicitly. With tracing off the instrumentation is not
// installed at all, so it costs nothing.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"

	"github.com/tollgate/tollgate/services/platform/buildinfo"
	"github.com/tollgate/tollgate/services/platform/config"
)

// Telemetry is a service's tracing: a provider, a propagator and the
// instrumentation built from them. The zero value is unusable; use New or Off.
type Telemetry struct {
	tp   trace.TracerProvider
	sdk  *sdktrace.TracerProvider // nil when tracing is off
	prop propagation.TextMapPropagator
}

// Off returns a Telemetry that traces nothing and instruments nothing.
func Off() *Telemetry {
	return &Telemetry{tp: tracenoop.NewTracerProvider(), prop: propagation.NewCompositeTextMapPropagator()}
}

// New builds the tracing of cfg for a service: off (see Off) unless
// cfg.Enabled. Spans are batched and exported in the background; Shutdown
// flushes them.
func New(ctx context.Context, cfg config.Tracing) (*Telemetry, error) {
	if !cfg.Enabled {
		return Off(), nil
	}
	exp, err := exporter(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	attrs := []attribute.KeyValue{}
	for k, v := range cfg.ResourceAttributes {
		attrs = append(attrs, attribute.String(k, v))
	}
	// The service name and version win over OTEL_RESOURCE_ATTRIBUTES,
	// as the specification says of OTEL_SERVICE_NAME.
	attrs = append(attrs, semconv.ServiceName(cfg.ServiceName), semconv.ServiceVersion(buildinfo.Version))
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL, attrs...))
	if err != nil {
		// Only a schema URL conflict fails a merge; the attributes are still usable.
		res = resource.NewSchemaless(attrs...)
	}
	sdk := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(cfg.BatchDelay)),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sampler(cfg)),
	)
	return &Telemetry{
		tp:   sdk,
		sdk:  sdk,
		prop: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}, nil
}

func exporter(ctx context.Context, cfg config.Tracing) (*otlptrace.Exporter, error) {
	if cfg.Protocol == config.OTLPGRPC {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithTimeout(cfg.Timeout), otlptracegrpc.WithHeaders(cfg.Headers)}
		if cfg.Endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(cfg.Endpoint))
		}
		return otlptracegrpc.New(ctx, opts...)
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithTimeout(cfg.Timeout), otlptracehttp.WithHeaders(cfg.Headers)}
	if cfg.Endpoint != "" {
		opts = append(opts, otlptracehttp.WithEndpointURL(cfg.Endpoint))
	}
	return otlptracehttp.New(ctx, opts...)
}

func sampler(cfg config.Tracing) sdktrace.Sampler {
	switch cfg.Sampler {
	case "always_on":
		return sdktrace.AlwaysSample()
	case "always_off":
		return sdktrace.NeverSample()
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(cfg.SamplerArg)
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample())
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SamplerArg))
	}
	return sdktrace.ParentBased(sdktrace.AlwaysSample())
}

// Enabled reports whether spans are recorded and exported.
func (t *Telemetry) Enabled() bool { return t.sdk != nil }

// TracerProvider is the provider every instrumented part uses.
func (t *Telemetry) TracerProvider() trace.TracerProvider { return t.tp }

// Propagator carries trace context across process boundaries (W3C
// traceparent/tracestate and baggage headers and gRPC metadata).
func (t *Telemetry) Propagator() propagation.TextMapPropagator { return t.prop }

// Shutdown flushes buffered spans and stops the exporter.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t.sdk == nil {
		return nil
	}
	return t.sdk.Shutdown(ctx)
}

// HTTPHandler traces every request h serves, continuing the caller's trace
// when the request carries a W3C traceparent. Span names are the method
// and the route (see HTTPOptions.Route).
func (t *Telemetry) HTTPHandler(h http.Handler, route func(*http.Request) string) http.Handler {
	if !t.Enabled() {
		return h
	}
	return otelhttp.NewHandler(h, "http",
		otelhttp.WithTracerProvider(t.tp),
		otelhttp.WithPropagators(t.prop),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if route != nil {
				return MethodLabel(r.Method) + " " + route(r)
			}
			return MethodLabel(r.Method)
		}),
	)
}

// GRPCServerOptions trace every call a gRPC server serves.
func (t *Telemetry) GRPCServerOptions() []grpc.ServerOption {
	if !t.Enabled() {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(t.otelgrpcOptions()...))}
}

// GRPCDialOptions trace every call a gRPC client makes and propagate the
// trace context in the call's metadata.
func (t *Telemetry) GRPCDialOptions() []grpc.DialOption {
	if !t.Enabled() {
		return nil
	}
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(t.otelgrpcOptions()...))}
}

func (t *Telemetry) otelgrpcOptions() []otelgrpc.Option {
	return []otelgrpc.Option{
		otelgrpc.WithTracerProvider(t.tp),
		otelgrpc.WithPropagators(t.prop),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
	}
}

// InstrumentRedis traces every command of rdb. Command arguments are not
// recorded (db.statement off): values and even hashed keys stay out of traces.
func (t *Telemetry) InstrumentRedis(rdb redis.UniversalClient) error {
	if !t.Enabled() {
		return nil
	}
	if err := redisotel.InstrumentTracing(rdb,
		redisotel.WithTracerProvider(t.tp),
		redisotel.WithDBStatement(false),
		redisotel.WithCallerEnabled(false),
	); err != nil {
		return errors.Join(errors.New("redis tracing"), err)
	}
	return nil
}

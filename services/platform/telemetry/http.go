package telemetry

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/felixge/httpsnoop"
	"github.com/prometheus/client_golang/prometheus"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tollgate/tollgate/services/platform/logging"
)

// HTTPOptions configure Middleware.
type HTTPOptions struct {
	// Registry receives tollgate_http_request_duration_seconds.
	Registry prometheus.Registerer
	// Route names the route pattern of a request ("/oauth/token",
	// "/actions/profile"): a bounded label and the span name. Requests
	// it does not know should get RouteOther. A handler may set the route
	// itself with SetRoute (routers that match inside, such as echo).
	Route func(*http.Request) string
	// Streaming reports requests that hold a long-lived stream (SSE):
	// they are traced and logged but kept out of the latency histogram.
	Streaming func(*http.Request) bool
	// AccessLog, when set, logs one line per request: method, route,
	// status, duration, the request id and whatever the handler added
	// with LogAttrs. Never the query string or headers.
	AccessLog *slog.Logger
}

// RouteOther is the route label of requests that match no route.
const RouteOther = "other"

// knownMethods bound the method label; anything else is "other".
var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// MethodLabel bounds an HTTP method for use as a metric label.
func MethodLabel(m string) string {
	if knownMethods[m] {
		return m
	}
	return "other"
}

// StatusClass is the bounded status label: "1xx" … "5xx".
func StatusClass(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return string(rune('0'+status/100)) + "xx"
}

// DurationBuckets are the request-duration histogram buckets, in seconds.
var DurationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Middleware wraps a service's public HTTP handler: request id, tracing,
// the request-duration histogram and the access log, outermost first.
func (t *Telemetry) Middleware(h http.Handler, o HTTPOptions) (http.Handler, error) {
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tollgate_http_request_duration_seconds",
		Help:    "Public HTTP request latency by route pattern, method and status class (long-lived streams excluded).",
		Buckets: DurationBuckets,
	}, []string{"route", "method", "code"})
	if o.Registry != nil {
		if err := o.Registry.Register(duration); err != nil {
			return nil, err
		}
	}
	route := func(r *http.Request) string {
		if o.Route == nil {
			return RouteOther
		}
		return o.Route(r)
	}
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := &requestInfo{method: MethodLabel(r.Method)}
		ctx := context.WithValue(r.Context(), requestInfoKey{}, info)
		m := httpsnoop.CaptureMetrics(h, w, r.WithContext(ctx))
		rt := info.route()
		if rt == "" {
			rt = route(r)
		}
		if o.Streaming == nil || !o.Streaming(r) {
			duration.WithLabelValues(rt, MethodLabel(r.Method), StatusClass(m.Code)).Observe(m.Duration.Seconds())
		}
		if o.AccessLog != nil {
			logAccess(ctx, o.AccessLog.Handler(), accessLevel(m.Code), r.Method, rt, m, info)
		}
	})
	return logging.RequestIDMiddleware(t.HTTPHandler(inner, route)), nil
}

// logAccess writes the access-log line of a request, as
// Logger.LogAttrs(ctx, level, "request", …) would but without the caller's
// program counter, which slog takes (runtime.Callers, ~7 µs of a token
// request's CPU on the benchmark machine) for a source the fleet's
// handlers never log; the attributes are built only when level is enabled.
func logAccess(ctx context.Context, h slog.Handler, level slog.Level, method, route string, m httpsnoop.Metrics, info *requestInfo) {
	if !h.Enabled(ctx, level) {
		return
	}
	rec := slog.NewRecord(time.Now(), level, "request", 0)
	rec.AddAttrs(
		slog.String("http_method", MethodLabel(method)),
		slog.String("route", route),
		slog.Int("status", m.Code),
		slog.Float64("duration_ms", float64(m.Duration)/float64(time.Millisecond)),
	)
	rec.AddAttrs(info.attrs()...)
	_ = h.Handle(ctx, rec)
}

// accessLevel logs server errors at warn so that they stand out.
func accessLevel(status int) slog.Level {
	if status >= 500 {
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

type requestInfoKey struct{}

// requestInfo is what a handler tells the middleware about its request.
type requestInfo struct {
	mu     sync.Mutex
	method string
	rt     string
	more   []slog.Attr
}

func (i *requestInfo) route() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.rt
}

func (i *requestInfo) attrs() []slog.Attr {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]slog.Attr(nil), i.more...)
}

// SetRoute names the route pattern of the request of ctx (for routers
// that match inside the handler): the metric label, and the name and
// http.route of the request's span. route must come from a fixed set.
func SetRoute(ctx context.Context, route string) {
	i, ok := ctx.Value(requestInfoKey{}).(*requestInfo)
	if !ok {
		return
	}
	i.mu.Lock()
	i.rt = route
	i.mu.Unlock()
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetName(i.method + " " + route)
		span.SetAttributes(semconv.HTTPRoute(route))
	}
}

// LogAttrs adds attributes to the access-log line of the request of ctx
// (the MCP method, the tool, the client id). A later value for the same
// key replaces the earlier one. Never pass secrets.
func LogAttrs(ctx context.Context, attrs ...slog.Attr) {
	i, ok := ctx.Value(requestInfoKey{}).(*requestInfo)
	if !ok {
		return
	}
	i.mu.Lock()
	defer i.mu.Unlock()
next:
	for _, a := range attrs {
		for j := range i.more {
			if i.more[j].Key == a.Key {
				i.more[j] = a
				continue next
			}
		}
		i.more = append(i.more, a)
	}
}

// MuxRoute returns a Route function for a ServeMux: the pattern the mux
// matches, without its method prefix ("GET /oauth/jwks" → "/oauth/jwks"),
// or RouteOther.
func MuxRoute(mux *http.ServeMux) func(*http.Request) string {
	return func(r *http.Request) string {
		_, p := mux.Handler(r)
		if p == "" {
			return RouteOther
		}
		if _, path, ok := strings.Cut(p, " "); ok {
			return path
		}
		return p
	}
}

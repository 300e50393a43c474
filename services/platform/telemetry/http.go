package telemetry

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

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

// statusClasses are StatusClass's labels, made once (not per request).
var statusClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// StatusClass is the bounded status label: "1xx" … "5xx".
func StatusClass(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return statusClasses[status/100-1]
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
	observers := &SeriesCache[observerKey, prometheus.Observer]{Make: func(k observerKey) prometheus.Observer {
		return duration.WithLabelValues(k.route, k.method, k.class)
	}}
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &requestInfo{Context: r.Context(), method: MethodLabel(r.Method)}
		info.more = info.buf[:0]
		info.w = statusWriter{ResponseWriter: w, code: http.StatusOK}
		ctx := context.Context(info)
		served := r.WithContext(ctx)
		h.ServeHTTP(&info.w, served)
		m := metrics{Code: info.w.code, Duration: time.Since(start)}
		rt := info.route()
		if rt == "" {
			// served: a ServeMux that served it has set its Pattern
			// (MuxRoute reads it instead of matching again).
			rt = route(served)
		}
		if o.Streaming == nil || !o.Streaming(r) {
			observers.Get(observerKey{rt, MethodLabel(r.Method), StatusClass(m.Code)}).Observe(m.Duration.Seconds())
		}
		if o.AccessLog != nil {
			logAccess(ctx, o.AccessLog.Handler(), accessLevel(m.Code), r.Method, rt, m, info)
		}
	})
	return logging.RequestIDMiddleware(t.HTTPHandler(inner, route)), nil
}

// metrics are what Middleware measured of a request: the status and how
// long the handler ran.
type metrics struct {
	Code     int
	Duration time.Duration
}

// statusWriter notes the status of a response, as httpsnoop's
// CaptureMetrics did before it (issue 12: httpsnoop's wrapper cost 14
// allocations per request): the first status that is not informational
// (1xx), or 200 once a body byte or a flush went out first. It passes
// every write through, and keeps streaming, hijacking and
// http.ResponseController working (Flush, Hijack, Unwrap).
type statusWriter struct {
	http.ResponseWriter
	code int
	sent bool // the status has gone out
}

func (w *statusWriter) WriteHeader(code int) {
	w.ResponseWriter.WriteHeader(code)
	if !w.sent && (code < 100 || code > 199) {
		w.code, w.sent = code, true
	}
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.sent = true
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) WriteString(s string) (int, error) {
	w.sent = true
	return io.WriteString(w.ResponseWriter, s)
}

// ReadFrom keeps the underlying writer's ReadFrom (sendfile) for io.Copy.
func (w *statusWriter) ReadFrom(src io.Reader) (int64, error) {
	w.sent = true
	return io.Copy(w.ResponseWriter, src)
}

func (w *statusWriter) Flush() {
	w.sent = true
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
		return
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type observerKey struct{ route, method, class string }

// logAccess writes the access-log line of a request, as
// Logger.LogAttrs(ctx, level, "request", …) would but without the caller's
// program counter, which slog takes (runtime.Callers, ~7 µs of a token
// request's CPU on the benchmark machine) for a source the fleet's
// handlers never log; the attributes are built only when level is enabled.
func logAccess(ctx context.Context, h slog.Handler, level slog.Level, method, route string, m metrics, info *requestInfo) {
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
	info.addAttrs(&rec)
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

// requestInfo is what a handler tells the middleware about its request,
// the response writer that notes its status, and the request's context
// with them (Value of requestInfoKey{} answers the requestInfo): one
// allocation.
type requestInfo struct {
	context.Context
	mu     sync.Mutex
	method string
	rt     string
	more   []slog.Attr
	buf    [4]slog.Attr // more's first attributes, without growing it
	w      statusWriter
}

// Value answers requestInfoKey{} with i, every other key from the
// request's context.
func (i *requestInfo) Value(key any) any {
	if key == (requestInfoKey{}) {
		return i
	}
	return i.Context.Value(key)
}

func (i *requestInfo) route() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.rt
}

// addAttrs adds the handler's attributes to rec (which copies them).
func (i *requestInfo) addAttrs(rec *slog.Record) {
	i.mu.Lock()
	defer i.mu.Unlock()
	rec.AddAttrs(i.more...)
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
// or RouteOther. A request the mux has served carries the pattern it
// matched (http.Request.Pattern, Go 1.22+): that one is read, and the mux
// matches only a request it has not served (or matched no pattern of) —
// Middleware asks after the handler returns, with the request it passed
// on, so a mux that is the handler, or that it reaches with the request
// unchanged, is not asked to match twice. r.Pattern must then be mux's:
// the Route of one ServeMux for a handler that may reach another mux with
// the same request would name the other's pattern.
func MuxRoute(mux *http.ServeMux) func(*http.Request) string {
	return func(r *http.Request) string {
		p := r.Pattern
		if p == "" {
			_, p = mux.Handler(r)
		}
		if p == "" {
			return RouteOther
		}
		if _, path, ok := strings.Cut(p, " "); ok {
			return path
		}
		return p
	}
}

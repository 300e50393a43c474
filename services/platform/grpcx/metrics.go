package grpcx

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	prom "github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// callMetrics are the grpc_server_* or grpc_client_* series of
// go-grpc-middleware's Prometheus provider — same names, help, labels
// (grpc_type, grpc_service, grpc_method, and grpc_code on handled_total),
// buckets (prometheus.DefBuckets) and counting rules: started on start,
// msg_received and msg_sent per message without error (a unary call counts
// one each way), handled_total and handling_seconds at the end — but each
// method's series are looked up once and kept (methodMetrics), where the
// provider formats the label values and hashes them into every vector five
// times per call (5–8 % of capability-core's CPU under load, issue 12).
// The counting itself is left to go-grpc-middleware's generic interceptors,
// which call the Reporter below.
type callMetrics struct {
	started, handled, received, sent *prom.CounterVec
	handling                         *prom.HistogramVec

	mu      sync.RWMutex
	methods map[methodKey]*methodMetrics
}

type methodKey struct {
	typ             interceptors.GRPCType
	service, method string
}

// methodMetrics are one method's series; it is the Reporter of every call
// of that method (it keeps no per-call state: durations come as arguments).
type methodMetrics struct {
	m                       *callMetrics
	key                     methodKey
	started, received, sent prom.Counter
	handling                prom.Observer
	// handled holds the handled_total series of each code once used (or
	// initialized: as with go-grpc-middleware, a method's series of a code
	// appear when a call ends with it, or at start for a served method).
	handled [codes.Unauthenticated + 1]atomic.Pointer[prom.Counter]
}

// newCallMetrics builds the series of side "server" or "client"; constLabels
// are added to every series (the client's peer).
func newCallMetrics(side string, constLabels prom.Labels) *callMetrics {
	labels := []string{"grpc_type", "grpc_service", "grpc_method"}
	counter := func(name, help string, labels []string) *prom.CounterVec {
		return prom.NewCounterVec(prom.CounterOpts{Name: name, Help: help, ConstLabels: constLabels}, labels)
	}
	m := &callMetrics{methods: map[methodKey]*methodMetrics{}}
	if side == "server" {
		m.started = counter("grpc_server_started_total", "Total number of RPCs started on the server.", labels)
		m.handled = counter("grpc_server_handled_total", "Total number of RPCs completed on the server, regardless of success or failure.", append(labels[:3:3], "grpc_code"))
		m.received = counter("grpc_server_msg_received_total", "Total number of RPC stream messages received on the server.", labels)
		m.sent = counter("grpc_server_msg_sent_total", "Total number of gRPC stream messages sent by the server.", labels)
		m.handling = prom.NewHistogramVec(prom.HistogramOpts{
			Name: "grpc_server_handling_seconds", Buckets: prom.DefBuckets, ConstLabels: constLabels,
			Help: "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
		}, labels)
	} else {
		m.started = counter("grpc_client_started_total", "Total number of RPCs started on the client.", labels)
		m.handled = counter("grpc_client_handled_total", "Total number of RPCs completed by the client, regardless of success or failure.", append(labels[:3:3], "grpc_code"))
		m.received = counter("grpc_client_msg_received_total", "Total number of RPC stream messages received by the client.", labels)
		m.sent = counter("grpc_client_msg_sent_total", "Total number of gRPC stream messages sent by the client.", labels)
		m.handling = prom.NewHistogramVec(prom.HistogramOpts{
			Name: "grpc_client_handling_seconds", Buckets: prom.DefBuckets, ConstLabels: constLabels,
			Help: "Histogram of response latency (seconds) of the gRPC until it is finished by the application.",
		}, labels)
	}
	return m
}

// Describe and Collect make callMetrics one prometheus.Collector.
func (m *callMetrics) Describe(ch chan<- *prom.Desc) {
	for _, c := range []prom.Collector{m.started, m.handled, m.received, m.sent, m.handling} {
		c.Describe(ch)
	}
}

func (m *callMetrics) Collect(ch chan<- prom.Metric) {
	for _, c := range []prom.Collector{m.started, m.handled, m.received, m.sent, m.handling} {
		c.Collect(ch)
	}
}

// of returns the series of one method, creating them (every code of
// handled_total at zero) the first time.
func (m *callMetrics) of(k methodKey) *methodMetrics {
	m.mu.RLock()
	mm := m.methods[k]
	m.mu.RUnlock()
	if mm != nil {
		return mm
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if mm = m.methods[k]; mm != nil {
		return mm
	}
	lv := []string{string(k.typ), k.service, k.method}
	mm = &methodMetrics{
		m: m, key: k,
		started: m.started.WithLabelValues(lv...), received: m.received.WithLabelValues(lv...),
		sent: m.sent.WithLabelValues(lv...), handling: m.handling.WithLabelValues(lv...),
	}
	m.methods[k] = mm
	return mm
}

// initialize creates the series of every method s serves, as
// go-grpc-middleware's InitializeMetrics does.
func (m *callMetrics) initialize(s *grpc.Server) {
	for service, info := range s.GetServiceInfo() {
		for _, mi := range info.Methods {
			typ := interceptors.Unary
			switch {
			case mi.IsClientStream && mi.IsServerStream:
				typ = interceptors.BidiStream
			case mi.IsClientStream:
				typ = interceptors.ClientStream
			case mi.IsServerStream:
				typ = interceptors.ServerStream
			}
			mm := m.of(methodKey{typ, service, mi.Name})
			for c := range mm.handled {
				mm.handledOf(codes.Code(c))
			}
		}
	}
}

func (m *callMetrics) reporter(ctx context.Context, c interceptors.CallMeta) (interceptors.Reporter, context.Context) {
	mm := m.of(methodKey{c.Typ, c.Service, c.Method})
	mm.started.Inc()
	return mm, ctx
}

// ServerReporter and ClientReporter make callMetrics the reportable of
// go-grpc-middleware's generic interceptors.
func (m *callMetrics) ServerReporter(ctx context.Context, c interceptors.CallMeta) (interceptors.Reporter, context.Context) {
	return m.reporter(ctx, c)
}

func (m *callMetrics) ClientReporter(ctx context.Context, c interceptors.CallMeta) (interceptors.Reporter, context.Context) {
	return m.reporter(ctx, c)
}

func (mm *methodMetrics) PostCall(err error, d time.Duration) {
	mm.handledOf(codeOf(err)).Inc()
	mm.handling.Observe(d.Seconds())
}

// handledOf returns the method's handled_total series of code.
func (mm *methodMetrics) handledOf(code codes.Code) prom.Counter {
	if int(code) < len(mm.handled) {
		if c := mm.handled[code].Load(); c != nil {
			return *c
		}
	}
	c := mm.m.handled.WithLabelValues(string(mm.key.typ), mm.key.service, mm.key.method, code.String())
	if int(code) < len(mm.handled) {
		mm.handled[code].Store(&c)
	}
	return c
}

func (mm *methodMetrics) PostMsgSend(_ any, err error, _ time.Duration) {
	if err == nil {
		mm.sent.Inc()
	}
}

func (mm *methodMetrics) PostMsgReceive(_ any, err error, _ time.Duration) {
	if err == nil {
		mm.received.Inc()
	}
}

// codeOf is the code a call ended with; a context error that is not a
// status counts as Canceled or DeadlineExceeded, as the gRPC server
// itself maps it (and as go-grpc-middleware counted it).
func codeOf(err error) codes.Code {
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	return status.FromContextError(err).Code()
}

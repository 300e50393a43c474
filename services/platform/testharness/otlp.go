package testharness

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one span an OTLPReceiver got, flattened.
type Span struct {
	Service      string // resource attribute service.name
	Name         string
	Kind         tracev1.Span_SpanKind
	TraceID      string // hex
	SpanID       string
	ParentSpanID string
	Attributes   map[string]string // string values only
}

// OTLPReceiver is an OTLP/HTTP trace endpoint on loopback: it decodes the
// protobuf ExportTraceServiceRequest bodies services send to
// OTEL_EXPORTER_OTLP_ENDPOINT and keeps their spans.
type OTLPReceiver struct {
	URL string // the base endpoint (OTEL_EXPORTER_OTLP_ENDPOINT)
	mu  sync.Mutex
	got []Span
}

// StartOTLPReceiver serves until the test ends.
func StartOTLPReceiver(t testing.TB) *OTLPReceiver {
	t.Helper()
	o := &OTLPReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "want POST /v1/traces application/x-protobuf", http.StatusBadRequest)
			return
		}
		body, err := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &req)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		o.add(&req)
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(srv.Close)
	o.URL = srv.URL
	return o
}

func (o *OTLPReceiver) add(req *collectortrace.ExportTraceServiceRequest) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := attrs(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				o.got = append(o.got, Span{
					Service: service, Name: s.GetName(), Kind: s.GetKind(),
					TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					ParentSpanID: hex.EncodeToString(s.GetParentSpanId()), Attributes: attrs(s.GetAttributes()),
				})
			}
		}
	}
}

func attrs(kvs []*commonv1.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		if v, ok := kv.GetValue().GetValue().(*commonv1.AnyValue_StringValue); ok {
			m[kv.GetKey()] = v.StringValue
		}
	}
	return m
}

// Spans returns every span received so far.
func (o *OTLPReceiver) Spans() []Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Span(nil), o.got...)
}

// WaitFor polls, up to timeout, until done(spans) is true, and returns the
// spans it saw last (exporters batch: spans arrive some time after the call).
func (o *OTLPReceiver) WaitFor(timeout time.Duration, done func([]Span) bool) ([]Span, bool) {
	deadline := time.Now().Add(timeout)
	for {
		spans := o.Spans()
		if done(spans) {
			return spans, true
		}
		if time.Now().After(deadline) {
			return spans, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Env returns the OTEL_* settings that send a service's traces here,
// in batches every 100 ms.
func (o *OTLPReceiver) Env(service string) map[string]string {
	return map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": o.URL,
		"OTEL_SERVICE_NAME":           service,
		"OTEL_BSP_SCHEDULE_DELAY":     "100",
	}
}

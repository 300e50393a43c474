package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	testingv1 "github.com/tollgate/tollgate/proto/gen/tollgate/testing/v1"
	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/grpcx"
	"github.com/tollgate/tollgate/services/platform/logging"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/telemetry"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// backend answers Echo after a Redis GET, logging with the call's context.
type backend struct {
	testingv1.UnimplementedEchoServiceServer
	rdb *redisx.Client
	log *slog.Logger
}

func (b *backend) Echo(ctx context.Context, in *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
	_ = b.rdb.Get(ctx, b.rdb.Key("echo")).Err()
	b.log.InfoContext(ctx, "echo handled")
	return &testingv1.EchoResponse{Text: in.GetText()}, nil
}

func newTelemetry(t *testing.T, env map[string]string, service string) *telemetry.Telemetry {
	t.Helper()
	s := config.NewSource(config.MapEnv(env))
	cfg := config.LoadTracing(s, service)
	if p := s.Problems(); len(p) > 0 {
		t.Fatal(p.Err())
	}
	tel, err := telemetry.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !tel.Enabled() {
		t.Fatalf("tracing is off with %v", env)
	}
	return tel
}

// TestOneTraceAcrossHTTPGRPCAndRedis: an HTTP request to one service that
// calls another over gRPC, which reads Redis, is one trace whose spans
// nest edge server → gRPC client → gRPC server → Redis command, exported
// over OTLP/HTTP; the caller's X-Request-Id reaches the backend's logs.
func TestOneTraceAcrossHTTPGRPCAndRedis(t *testing.T) {
	recv := testharness.StartOTLPReceiver(t)
	edgeTel := newTelemetry(t, recv.Env("edge"), "edge")
	backTel := newTelemetry(t, recv.Env("backend"), "backend")

	rdb := testharness.StartRedis(t).Client()
	if err := backTel.InstrumentRedis(rdb.UniversalClient); err != nil {
		t.Fatal(err)
	}
	backLogs := &testharness.SyncBuffer{}
	backLog := logging.New(backLogs, "json", slog.LevelDebug, "backend")
	srv := grpcx.NewServer(grpcx.ServerOptions{Logger: backLog, Telemetry: backTel})
	testingv1.RegisterEchoServiceServer(srv, &backend{rdb: rdb, log: backLog})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	conn, err := grpcx.Dial(ln.Addr().String(), grpcx.ClientOptions{Name: "backend", Telemetry: edgeTel})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	echo := testingv1.NewEchoServiceClient(conn)

	edgeLogs := &testharness.SyncBuffer{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /echo/{word}", func(w http.ResponseWriter, r *http.Request) {
		out, err := echo.Echo(r.Context(), &testingv1.EchoRequest{Text: r.PathValue("word")})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		_, _ = io.WriteString(w, out.GetText())
	})
	// A handler that names its route itself, as echo-routed services do.
	mux.HandleFunc("GET /inner/", func(w http.ResponseWriter, r *http.Request) {
		telemetry.SetRoute(r.Context(), "/inner/{name}")
	})
	h, err := edgeTel.Middleware(mux, telemetry.HTTPOptions{Route: telemetry.MuxRoute(mux), AccessLog: logging.New(edgeLogs, "json", slog.LevelDebug, "edge")})
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(h)
	defer web.Close()

	req, _ := http.NewRequest(http.MethodGet, web.URL+"/echo/hello", nil)
	req.Header.Set(logging.RequestIDHeader, "req-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "hello" || resp.Header.Get(logging.RequestIDHeader) != "req-0123456789" {
		t.Fatalf("GET /echo/hello = %d %q, X-Request-Id %q", resp.StatusCode, body, resp.Header.Get(logging.RequestIDHeader))
	}
	if resp, err := http.Get(web.URL + "/inner/x"); err == nil {
		resp.Body.Close()
	}
	// Shutdown flushes what the batchers still hold.
	for _, tel := range []*telemetry.Telemetry{edgeTel, backTel} {
		if err := tel.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}

	spans := recv.Spans()
	find := func(service string, kind tracev1.Span_SpanKind, name string) testharness.Span {
		t.Helper()
		for _, s := range spans {
			if s.Service == service && s.Kind == kind && strings.HasPrefix(s.Name, name) {
				return s
			}
		}
		t.Fatalf("no %s span %q of %s among %+v", kind, name, service, spans)
		return testharness.Span{}
	}
	edge := find("edge", tracev1.Span_SPAN_KIND_SERVER, "GET /echo/{word}")
	if inner := find("edge", tracev1.Span_SPAN_KIND_SERVER, "GET /inner/{name}"); inner.Attributes["http.route"] != "/inner/{name}" {
		t.Errorf("SetRoute did not name the span's route: %+v", inner)
	}
	client := find("edge", tracev1.Span_SPAN_KIND_CLIENT, "tollgate.testing.v1.EchoService/Echo")
	server := find("backend", tracev1.Span_SPAN_KIND_SERVER, "tollgate.testing.v1.EchoService/Echo")
	redisSpan := find("backend", tracev1.Span_SPAN_KIND_CLIENT, "get")
	for _, s := range []testharness.Span{client, server, redisSpan} {
		if s.TraceID != edge.TraceID {
			t.Errorf("span %q is in trace %s, not the request's %s", s.Name, s.TraceID, edge.TraceID)
		}
	}
	if client.ParentSpanID != edge.SpanID || server.ParentSpanID != client.SpanID || redisSpan.ParentSpanID != server.SpanID {
		t.Errorf("spans do not nest edge → client → server → redis: %+v", []testharness.Span{edge, client, server, redisSpan})
	}
	if st, ok := redisSpan.Attributes["db.statement"]; ok {
		t.Errorf("the Redis span records the command %q", st)
	}

	// The backend's log line carries the caller's request id and the trace.
	line := findLine(t, backLogs.String(), "echo handled")
	if line["request_id"] != "req-0123456789" || line["trace_id"] != edge.TraceID {
		t.Errorf("backend log line %v lacks the request id or trace id %s", line, edge.TraceID)
	}
	access := findLine(t, edgeLogs.String(), "request")
	for k, want := range map[string]any{"request_id": "req-0123456789", "route": "/echo/{word}", "http_method": "GET", "status": float64(200)} {
		if access[k] != want {
			t.Errorf("access log %s = %v, want %v (%v)", k, access[k], want, access)
		}
	}
}

func findLine(t *testing.T, logs, msg string) map[string]any {
	t.Helper()
	for _, l := range bytes.Split([]byte(logs), []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(l, &m) == nil && m["msg"] == msg {
			return m
		}
	}
	t.Fatalf("no log line %q in:\n%s", msg, logs)
	return nil
}

// TestTracingIsOffWithoutSettings: no OTEL_* settings, no instrumentation.
func TestTracingIsOffWithoutSettings(t *testing.T) {
	s := config.NewSource(config.MapEnv(nil))
	tel, err := telemetry.New(context.Background(), config.LoadTracing(s, "svc"))
	if err != nil {
		t.Fatal(err)
	}
	h := http.NotFoundHandler()
	if tel.Enabled() || tel.HTTPHandler(h, nil) == nil || len(tel.GRPCServerOptions()) != 0 || len(tel.GRPCDialOptions()) != 0 {
		t.Fatal("tracing is on without settings")
	}
}

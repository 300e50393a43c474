package grpcx_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	testingv1 "github.com/tollgate/tollgate/proto/gen/tollgate/testing/v1"
	"github.com/tollgate/tollgate/services/platform/grpcx"
	"github.com/tollgate/tollgate/services/platform/logging"
)

// BenchmarkUnaryChain is one unary call through the standard server and
// client chains (request id, Prometheus on both sides, breaker, call log at
// info) over real gRPC on loopback TCP, the caller's request id set as the
// gateway sets it. Use -benchmem: allocations per call are the steady figure
// on a loaded machine (docs/benchmarks/mcp-gateway.md).
func BenchmarkUnaryChain(b *testing.B) {
	reg := prometheus.NewRegistry()
	addr := serveEcho(b, grpcx.ServerOptions{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), Registry: reg}, &echo{})
	conn, err := grpcx.Dial(addr, grpcx.ClientOptions{Registry: reg, Name: "echo"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	c := testingv1.NewEchoServiceClient(conn)
	ctx := logging.WithRequestID(context.Background(), logging.NewRequestID())
	req := &testingv1.EchoRequest{Text: "ok"}
	if _, err := c.Echo(ctx, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Echo(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

package grpcx_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	testingv1 "github.com/tollgate/tollgate/proto/gen/tollgate/testing/v1"
	"github.com/tollgate/tollgate/services/platform/fault"
	"github.com/tollgate/tollgate/services/platform/grpcx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

type echo struct {
	testingv1.UnimplementedEchoServiceServer
	deadline chan time.Duration
}

func (e *echo) Echo(ctx context.Context, in *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
	switch in.GetText() {
	case "panic":
		panic("boom")
	case "bad":
		return nil, fault.InvalidArgument("text is bad")
	case "secret-failure":
		return nil, errors.New("dial tcp 10.0.0.7:5432: password=hunter2 rejected")
	case "deadline":
		dl, _ := ctx.Deadline()
		e.deadline <- time.Until(dl)
	}
	return &testingv1.EchoResponse{Text: in.GetText()}, nil
}

func start(t *testing.T) (testingv1.EchoServiceClient, *prometheus.Registry, *testharness.SyncBuffer, *echo) {
	t.Helper()
	logs := &testharness.SyncBuffer{}
	reg := prometheus.NewRegistry()
	srv := grpcx.NewServer(grpcx.ServerOptions{Logger: slog.New(slog.NewJSONHandler(logs, nil)), Registry: reg, MaxDeadline: 2 * time.Second})
	e := &echo{deadline: make(chan time.Duration, 1)}
	testingv1.RegisterEchoServiceServer(srv, e)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	conn, err := grpcx.Dial(ln.Addr().String(), grpcx.ClientOptions{Registry: reg, Name: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return testingv1.NewEchoServiceClient(conn), reg, logs, e
}

func TestErrorsMapToCodesWithoutLeakingDetails(t *testing.T) {
	c, _, logs, _ := start(t)
	ctx := context.Background()
	cases := map[string]struct {
		code codes.Code
		msg  string
	}{
		"bad":            {codes.InvalidArgument, "text is bad"},
		"panic":          {codes.Internal, "internal error"},
		"secret-failure": {codes.Internal, "internal error"},
	}
	for text, want := range cases {
		_, err := c.Echo(ctx, &testingv1.EchoRequest{Text: text})
		st := status.Convert(err)
		if st.Code() != want.code || st.Message() != want.msg {
			t.Errorf("%s: %v %q, want %v %q", text, st.Code(), st.Message(), want.code, want.msg)
		}
	}
	// The server survives the panic.
	if r, err := c.Echo(ctx, &testingv1.EchoRequest{Text: "ok"}); err != nil || r.GetText() != "ok" {
		t.Errorf("after panic: %v %v", r, err)
	}
	if !strings.Contains(logs.String(), "panic in rpc handler") {
		t.Errorf("panic not logged:\n%s", logs)
	}
}

func TestDeadlineIsCapped(t *testing.T) {
	c, _, _, e := start(t)
	for _, d := range []time.Duration{time.Hour, 0} {
		ctx := context.Background()
		if d > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		if _, err := c.Echo(ctx, &testingv1.EchoRequest{Text: "deadline"}); err != nil {
			t.Fatal(err)
		}
		if seen := <-e.deadline; seen <= 0 || seen > 2*time.Second {
			t.Errorf("client deadline %s: handler saw %s, want at most the 2s cap", d, seen)
		}
	}
}

func TestMetricsCountCalls(t *testing.T) {
	c, reg, _, _ := start(t)
	for range 3 {
		_, _ = c.Echo(context.Background(), &testingv1.EchoRequest{Text: "ok"})
	}
	n, err := testutil.GatherAndCount(reg, "grpc_server_handled_total", "grpc_client_handled_total")
	if err != nil || n == 0 {
		t.Errorf("metrics: %d series, %v", n, err)
	}
}

package grpcx_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	testingv1 "github.com/tollgate/tollgate/proto/gen/tollgate/testing/v1"
	"github.com/tollgate/tollgate/services/platform/fault"
	"github.com/tollgate/tollgate/services/platform/grpcx"
	"github.com/tollgate/tollgate/services/platform/logging"
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

// serveEcho serves h (nil: no service but health and reflection) on a
// grpcx server built with o, on a loopback port, until the test ends, and
// returns its address.
func serveEcho(tb testing.TB, o grpcx.ServerOptions, h testingv1.EchoServiceServer) string {
	tb.Helper()
	srv := grpcx.NewServer(o)
	if h != nil {
		testingv1.RegisterEchoServiceServer(srv, h)
	}
	return serveGRPC(tb, srv.Server)
}

// serveGRPC serves srv on a free loopback TCP port until the test ends, and
// is its address.
func serveGRPC(tb testing.TB, srv *grpc.Server) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(srv.Stop)
	return ln.Addr().String()
}

func start(t *testing.T) (testingv1.EchoServiceClient, *prometheus.Registry, *testharness.SyncBuffer, *echo) {
	t.Helper()
	logs := &testharness.SyncBuffer{}
	reg := prometheus.NewRegistry()
	e := &echo{deadline: make(chan time.Duration, 1)}
	addr := serveEcho(t, grpcx.ServerOptions{Logger: slog.New(slog.NewJSONHandler(logs, nil)), Registry: reg, MaxDeadline: 2 * time.Second}, e)
	conn, err := grpcx.Dial(addr, grpcx.ClientOptions{Registry: reg, Name: "echo"})
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

// One "finished call" line per call at the level of its code: successful
// calls only at debug, so that at info they cost nothing to log; failures
// with their code and error.
func TestCallLogLines(t *testing.T) {
	c, _, logs, _ := start(t) // JSON handler at info
	ctx := context.Background()
	if _, err := c.Echo(ctx, &testingv1.EchoRequest{Text: "ok"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "finished call") {
		t.Errorf("successful call logged at info:\n%s", logs)
	}
	_, _ = c.Echo(ctx, &testingv1.EchoRequest{Text: "bad"})
	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(l, "finished call") {
			_ = json.Unmarshal([]byte(l), &line)
		}
	}
	if line["level"] != "INFO" || line["grpc.service"] != "tollgate.testing.v1.EchoService" || line["grpc.method"] != "Echo" ||
		line["grpc.code"] != "InvalidArgument" || line["grpc.error"] == nil || line["grpc.time_ms"] == nil {
		t.Errorf("failed call's line: %v\n%s", line, logs)
	}

	debug := &testharness.SyncBuffer{}
	addr := serveEcho(t, grpcx.ServerOptions{Logger: slog.New(slog.NewJSONHandler(debug, &slog.HandlerOptions{Level: slog.LevelDebug}))}, &echo{})
	conn, err := grpcx.Dial(addr, grpcx.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := testingv1.NewEchoServiceClient(conn).Echo(ctx, &testingv1.EchoRequest{Text: "ok"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(debug.String(), `"grpc.code":"OK"`) {
		t.Errorf("successful call not logged at debug:\n%s", debug)
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
	for _, text := range []string{"ok", "ok", "ok", "bad"} {
		_, _ = c.Echo(context.Background(), &testingv1.EchoRequest{Text: text})
	}
	echo := map[string]string{"grpc_type": "unary", "grpc_service": "tollgate.testing.v1.EchoService", "grpc_method": "Echo"}
	with := func(l map[string]string, k, v string) map[string]string {
		m := map[string]string{k: v}
		for a, b := range l {
			m[a] = b
		}
		return m
	}
	client := with(echo, "peer", "echo")
	health := map[string]string{"grpc_type": "unary", "grpc_service": "grpc.health.v1.Health", "grpc_method": "Check"}
	// The series and counting rules of go-grpc-middleware's provider,
	// which grpcx used before: dashboards and alerts keep working.
	for _, w := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"grpc_server_started_total", echo, 4},
		{"grpc_server_msg_received_total", echo, 4},
		{"grpc_server_msg_sent_total", echo, 3},
		{"grpc_server_handled_total", with(echo, "grpc_code", "OK"), 3},
		{"grpc_server_handled_total", with(echo, "grpc_code", "InvalidArgument"), 1},
		{"grpc_server_handling_seconds", echo, 4},
		{"grpc_server_started_total", health, 0}, // every served method's series exist from the start
		{"grpc_server_handled_total", with(health, "grpc_code", "Internal"), 0},
		{"grpc_client_started_total", client, 4},
		{"grpc_client_msg_sent_total", client, 4},
		{"grpc_client_msg_received_total", client, 3},
		{"grpc_client_handled_total", with(client, "grpc_code", "OK"), 3},
		{"grpc_client_handled_total", with(client, "grpc_code", "InvalidArgument"), 1},
		{"grpc_client_handling_seconds", client, 4},
	} {
		if got, ok := metricValue(t, reg, w.name, w.labels); !ok || got != w.want {
			t.Errorf("%s%v = %v (found %v), want %v", w.name, w.labels, got, ok, w.want)
		}
	}
}

// metricValue is the value (a histogram's sample count) of the series of
// name whose labels are exactly labels.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount()), true
			}
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

// counting is an echo server that counts the calls it answered.
type counting struct {
	testingv1.UnimplementedEchoServiceServer
	calls atomic.Int64
}

func (c *counting) Echo(_ context.Context, in *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
	c.calls.Add(1)
	return &testingv1.EchoResponse{Text: in.GetText()}, nil
}

// serveCounting serves a counting echo server on ln.
func serveCounting(t *testing.T, ln net.Listener) (*grpcx.Server, *counting) {
	t.Helper()
	srv := grpcx.NewServer(grpcx.ServerOptions{Logger: slog.New(slog.DiscardHandler)})
	c := &counting{}
	testingv1.RegisterEchoServiceServer(srv, c)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return srv, c
}

// TestRoundRobinOverEveryPeerAndFailover: calls spread over every address
// of the target; when one peer dies, a call that failed succeeds when
// retried and every later call goes to the survivor; the peer coming back
// on the same address gets calls again (reconnect back-off capped at 1s).
func TestRoundRobinOverEveryPeerAndFailover(t *testing.T) {
	lnA, lnB := testharness.Listener(t), testharness.Listener(t)
	addrA, addrB := lnA.Addr().String(), lnB.Addr().String()
	srvA, a := serveCounting(t, lnA)
	_, b := serveCounting(t, lnB)
	conn, err := grpcx.Dial(addrA+", "+addrB, grpcx.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testingv1.NewEchoServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	call := func() error {
		_, err := client.Echo(ctx, &testingv1.EchoRequest{Text: "x"}, grpc.WaitForReady(false))
		return err
	}
	// Wait until both peers are connected, then spread 40 calls.
	for a.calls.Load() == 0 || b.calls.Load() == 0 {
		if err := call(); err != nil && status.Code(err) != codes.Unavailable {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatalf("calls never reached both peers: a=%d b=%d", a.calls.Load(), b.calls.Load())
		}
	}
	a0, b0 := a.calls.Load(), b.calls.Load()
	for range 40 {
		if err := call(); err != nil {
			t.Fatal(err)
		}
	}
	if da, db := a.calls.Load()-a0, b.calls.Load()-b0; da != 20 || db != 20 {
		t.Errorf("40 calls went %d to a and %d to b, want 20 each (round robin)", da, db)
	}

	// A peer dies; its port stays its own, refusing connections.
	srvA.Stop()
	release := testharness.HoldPort(t, addrA)
	failed := 0
	for range 40 {
		if err := call(); err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("call while a peer dies: %v, want Unavailable", err)
			}
			failed++
			if err := call(); err != nil { // the caller's one retry
				t.Fatalf("retry after %v failed too: %v", status.Code(err), err)
			}
		}
	}
	if failed > 1 {
		t.Errorf("%d calls failed after one peer died; at most the one in flight may", failed)
	}

	// The peer returns on the same address and gets calls again.
	release()
	lnA2, err := net.Listen("tcp", addrA)
	if err != nil {
		t.Fatalf("bind %s again: %v", addrA, err)
	}
	_, a2 := serveCounting(t, lnA2)
	for a2.calls.Load() == 0 {
		if err := call(); err != nil {
			t.Fatalf("call while the peer returns: %v", err)
		}
		if ctx.Err() != nil {
			t.Fatal("the returning peer never got a call")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDialRefusesABadAddressList(t *testing.T) {
	if _, err := grpcx.Dial("127.0.0.1:1,no-port", grpcx.ClientOptions{}); err == nil {
		t.Error("an address without a port was accepted")
	}
}

func TestDialRefusesATargetWithoutPort(t *testing.T) {
	_, err := grpcx.Dial("tollgate-capability-core-grpc", grpcx.ClientOptions{})
	if err == nil || !strings.Contains(err.Error(), "want host:port") || !strings.Contains(err.Error(), "tollgate-capability-core-grpc") {
		t.Errorf("Dial without a port = %v, want an error naming the target and host:port", err)
	}
	// A target with a scheme goes to gRPC's resolver of that scheme.
	conn, err := grpcx.Dial("dns:///localhost:1", grpcx.ClientOptions{})
	if err != nil {
		t.Fatalf("dns:///localhost:1: %v", err)
	}
	conn.Close()
}

// TestDialReachesAPeerAsSoonAsItsNameResolves: a name without addresses (a
// headless Service before its first pod is Ready) fails calls with
// Unavailable naming the host; it is looked up again every second for as
// long as it takes, and the first call after it resolves reaches the peer.
func TestDialReachesAPeerAsSoonAsItsNameResolves(t *testing.T) {
	ln := testharness.Listener(t)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	_, peer := serveCounting(t, ln)
	const host = "tollgate-capability-core-grpc.tollgate.svc.cluster.local"
	var ready atomic.Bool
	var lookups atomic.Int64
	lookup := func(_ context.Context, name string) ([]string, error) {
		lookups.Add(1)
		if name != host {
			return nil, fmt.Errorf("unexpected lookup of %q", name)
		}
		if !ready.Load() {
			return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
		}
		return []string{"127.0.0.1"}, nil
	}
	conn, err := grpcx.Dial(host+":"+port, grpcx.ClientOptions{Name: "capability-core", Lookup: lookup})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testingv1.NewEchoServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = client.Echo(ctx, &testingv1.EchoRequest{Text: "x"})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), host) || !strings.Contains(err.Error(), grpcx.ErrNoAddress.Error()) {
		t.Fatalf("call before the name resolves = %v, want Unavailable naming %s and %q", err, host, grpcx.ErrNoAddress)
	}
	// gRPC's own resolver backs off after each empty answer (1.6 s, 2.6 s,
	// 4.1 s, 6.6 s ...); this one keeps asking every second.
	for lookups.Load() < 5 {
		if ctx.Err() != nil {
			t.Fatalf("only %d lookups of a name without addresses", lookups.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	ready.Store(true)
	if _, err := client.Echo(ctx, &testingv1.EchoRequest{Text: "x"}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("call once the name resolves: %v", err)
	}
	if peer.calls.Load() != 1 {
		t.Errorf("the peer got %d calls, want 1", peer.calls.Load())
	}
}

// hanging answers only once released, as a hung peer (SIGSTOP) would.
type hanging struct {
	testingv1.UnimplementedEchoServiceServer
	release chan struct{}
}

func (h *hanging) Echo(ctx context.Context, in *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
	select {
	case <-h.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &testingv1.EchoResponse{Text: in.GetText()}, nil
}

// TestBreakerFailsFastWhileThePeerHangs: calls to a peer that never answers
// time out; after BreakerTripAfter of them the breaker answers Unavailable
// at once, without waiting for the deadline; once the peer answers again a
// probe closes the breaker. A call the caller cancels is not counted.
func TestBreakerFailsFastWhileThePeerHangs(t *testing.T) {
	h := &hanging{release: make(chan struct{})}
	addr := serveEcho(t, grpcx.ServerOptions{Logger: slog.New(slog.DiscardHandler)}, h)
	conn, err := grpcx.Dial(addr, grpcx.ClientOptions{Name: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testingv1.NewEchoServiceClient(conn)
	call := func(timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_, err := client.Echo(ctx, &testingv1.EchoRequest{Text: "x"})
		return err
	}
	// Cancelled calls never trip it.
	for range 5 {
		ctx, cancel := context.WithCancel(context.Background())
		go func() { time.Sleep(20 * time.Millisecond); cancel() }()
		if _, err := client.Echo(ctx, &testingv1.EchoRequest{Text: "x"}); status.Code(err) != codes.Canceled {
			t.Fatalf("cancelled call: %v", err)
		}
	}
	for i := range grpcx.BreakerTripAfter {
		if err := call(200 * time.Millisecond); status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("call %d to a hung peer: %v, want DeadlineExceeded", i, err)
		}
	}
	start := time.Now()
	err = call(5 * time.Second)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "circuit breaker open") {
		t.Fatalf("call with the breaker open: %v, want Unavailable from the breaker", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the open breaker took %s to answer", d)
	}
	close(h.release) // the peer answers again
	deadline := time.Now().Add(10 * time.Second)
	for call(time.Second) != nil {
		if time.Now().After(deadline) {
			t.Fatal("no recovery after the peer answered again")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// idEcho answers with the request id its handler's context carries.
type idEcho struct {
	testingv1.UnimplementedEchoServiceServer
}

func (idEcho) Echo(ctx context.Context, _ *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
	return &testingv1.EchoResponse{Text: logging.RequestID(ctx)}, nil
}

func TestRequestIDTravelsOrIsMadeFresh(t *testing.T) {
	addr := serveEcho(t, grpcx.ServerOptions{Logger: slog.New(slog.DiscardHandler)}, idEcho{})
	conn, err := grpcx.Dial(addr, grpcx.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := testingv1.NewEchoServiceClient(conn)
	seen := func(ctx context.Context) string {
		t.Helper()
		r, err := c.Echo(ctx, &testingv1.EchoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetText()
	}
	if got := seen(logging.WithRequestID(context.Background(), "req-1.a:b_c")); got != "req-1.a:b_c" {
		t.Errorf("caller's id: handler saw %q", got)
	}
	for name, ctx := range map[string]context.Context{
		"none":      context.Background(),
		"malformed": metadata.AppendToOutgoingContext(context.Background(), logging.RequestIDMetadata, `x" level=ERROR`),
		"two":       metadata.AppendToOutgoingContext(context.Background(), logging.RequestIDMetadata, "a", logging.RequestIDMetadata, "b"),
	} {
		if got := seen(ctx); !logging.ValidRequestID(got) || len(got) != 26 {
			t.Errorf("%s: handler saw %q, want a fresh 26-character id", name, got)
		}
	}
}

// barrier answers once n calls are inside Echo at the same time.
type barrier struct {
	testingv1.UnimplementedEchoServiceServer
	arrived chan struct{}
	all     chan struct{}
	n       int
}

func (b *barrier) Echo(ctx context.Context, in *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
	b.arrived <- struct{}{}
	select {
	case <-b.all:
		return &testingv1.EchoResponse{Text: in.GetText()}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TestCallsBeyondTheStreamWorkers: with fewer stream workers than calls in
// flight, with none, and with the default, every call is served — the ones
// no worker takes on goroutines of their own — and all are inside their
// handler at once.
func TestCallsBeyondTheStreamWorkers(t *testing.T) {
	for _, workers := range []int{2, -1, 0} {
		t.Run(fmt.Sprint(workers), func(t *testing.T) {
			const calls = 6
			h := &barrier{arrived: make(chan struct{}, calls), all: make(chan struct{})}
			addr := serveEcho(t, grpcx.ServerOptions{Logger: slog.New(slog.DiscardHandler), StreamWorkers: workers}, h)
			conn, err := grpcx.Dial(addr, grpcx.ClientOptions{Name: "echo"})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			client := testingv1.NewEchoServiceClient(conn)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			errs := make(chan error, calls)
			for i := range calls {
				go func() {
					_, err := client.Echo(ctx, &testingv1.EchoRequest{Text: fmt.Sprint(i)})
					errs <- err
				}()
			}
			for range calls {
				select {
				case <-h.arrived:
				case <-ctx.Done():
					t.Fatal("not every call reached its handler")
				}
			}
			close(h.all)
			for range calls {
				if err := <-errs; err != nil {
					t.Errorf("call: %v", err)
				}
			}
		})
	}
}

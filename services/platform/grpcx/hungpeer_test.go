package grpcx_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	testingv1 "github.com/tollgate/tollgate/proto/gen/tollgate/testing/v1"
	"github.com/tollgate/tollgate/services/platform/grpcx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// hangableProxy forwards TCP connections to a gRPC server until hang;
// from then on it forwards nothing in either direction, on the
// connections it holds and on new ones, and closes none of them: the
// whole peer hung, as under SIGSTOP (health service included). release
// closes the hung connections and forwards again.
type hangableProxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	hung     chan struct{} // nil while forwarding
}

func startHangableProxy(t *testing.T, upstream string) *hangableProxy {
	t.Helper()
	p := &hangableProxy{ln: testharness.Listener(t), upstream: upstream}
	t.Cleanup(p.release)
	go func() {
		for {
			c, err := p.ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			go p.pipe(c, u)
			go p.pipe(u, c)
		}
	}()
	return p
}

func (p *hangableProxy) hungNow() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hung
}

func (p *hangableProxy) hang() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hung == nil {
		p.hung = make(chan struct{})
	}
}

func (p *hangableProxy) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hung != nil {
		close(p.hung)
		p.hung = nil
	}
}

// pipe copies src to dst; what it reads while the proxy is hung is never
// forwarded: it waits for release, then closes both.
func (p *hangableProxy) pipe(src, dst net.Conn) {
	defer src.Close()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if h := p.hungNow(); h != nil {
			<-h
			return
		}
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestHungPeerIsRefusedAtOnceAtLightTraffic: with the whole peer hung
// (it keeps its connections and never answers, health service included),
// once BreakerTripAfter calls have timed out every later call is refused
// at once by the breaker (Unavailable, "circuit breaker open") — also
// calls spaced more than BreakerOpen apart, which arrive when the breaker
// is half-open: the half-open probe is a grpc.health.v1 Check bounded by
// BreakerProbeTimeout, made in the background, never a caller's call on
// the caller's deadline. Each call here allows 30 s: had it been the
// probe it would have ended DeadlineExceeded. Once the peer answers
// again, a probe closes the breaker and calls go through.
func TestHungPeerIsRefusedAtOnceAtLightTraffic(t *testing.T) {
	released := make(chan struct{})
	close(released)
	addr := serveEcho(t, grpcx.ServerOptions{Logger: slog.New(slog.DiscardHandler)}, &hanging{release: released})
	proxy := startHangableProxy(t, addr)
	conn, err := grpcx.Dial(proxy.ln.Addr().String(), grpcx.ClientOptions{Name: "echo"})
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
	if err := call(30 * time.Second); err != nil {
		t.Fatalf("call before the hang: %v", err)
	}

	proxy.hang()
	for i := range grpcx.BreakerTripAfter {
		if err := call(200 * time.Millisecond); status.Code(err) != codes.DeadlineExceeded && status.Code(err) != codes.Unavailable {
			t.Fatalf("call %d to a hung peer: %v, want DeadlineExceeded or Unavailable", i, err)
		}
	}
	for i := range 4 {
		// Past the open period: the breaker is half-open when the call comes.
		time.Sleep(grpcx.BreakerOpen + 300*time.Millisecond)
		err := call(30 * time.Second)
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "circuit breaker open") {
			t.Errorf("call %d, %s after the previous one, to a peer known to hang: %v; want Unavailable from the breaker at once, not the call made as the probe", i, grpcx.BreakerOpen+300*time.Millisecond, err)
		}
	}

	proxy.release()
	testharness.Eventually(t, 30*time.Second, "calls go through once the peer answers again", func() (bool, string) {
		err := call(5 * time.Second)
		return err == nil, status.Convert(err).Message()
	})
}

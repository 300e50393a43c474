package grpcx_test

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	testingv1 "github.com/tollgate/tollgate/proto/gen/tollgate/testing/v1"
	"github.com/tollgate/tollgate/services/platform/grpcx"
)

// pingProxy is a TCP proxy in front of a gRPC server. On its first
// connection a test can freeze both directions (frames from the client are
// then dropped, frames from the server held back), inject PING frames of
// its own towards the server, and release what the server sent meanwhile.
// Later connections are passed through.
type pingProxy struct {
	ln       net.Listener
	target   string
	accepted atomic.Int64

	frozen    atomic.Bool
	headers   chan struct{} // a HEADERS frame from the client was dropped
	release   chan struct{}
	serverMu  sync.Mutex // serializes writes to the first connection's server side
	firstConn net.Conn   // server side of the first connection
	ready     chan struct{}
}

func startPingProxy(t *testing.T, target string) *pingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pingProxy{ln: ln, target: target, headers: make(chan struct{}, 1), release: make(chan struct{}), ready: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); s.Close() })
			if p.accepted.Add(1) == 1 {
				p.firstConn = s
				close(p.ready)
				go p.clientToServer(c, s)
				go p.serverToClient(s, c)
				continue
			}
			go func() { _, _ = io.Copy(s, c); s.Close() }()
			go func() { _, _ = io.Copy(c, s); c.Close() }()
		}
	}()
	return p
}

// clientToServer forwards the client's preface and then whole frames, so
// that injected frames land between two of the client's.
func (p *pingProxy) clientToServer(c, s net.Conn) {
	defer s.Close()
	preface := make([]byte, 24)
	if _, err := io.ReadFull(c, preface); err != nil {
		return
	}
	p.writeServer(preface)
	for {
		hdr := make([]byte, 9)
		if _, err := io.ReadFull(c, hdr); err != nil {
			return
		}
		n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
		frame := append(hdr, make([]byte, n)...)
		if _, err := io.ReadFull(c, frame[9:]); err != nil {
			return
		}
		if p.frozen.Load() {
			if hdr[3] == 0x1 { // HEADERS: a new call
				select {
				case p.headers <- struct{}{}:
				default:
				}
			}
			continue
		}
		p.writeServer(frame)
	}
}

func (p *pingProxy) writeServer(b []byte) {
	p.serverMu.Lock()
	defer p.serverMu.Unlock()
	_, _ = p.firstConn.Write(b)
}

func (p *pingProxy) serverToClient(s, c net.Conn) {
	defer c.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if p.frozen.Load() {
				<-p.release
			}
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// injectPings sends n PING frames to the server at once.
func (p *pingProxy) injectPings(n int) {
	for i := range n {
		f := make([]byte, 9+8)
		f[2] = 8   // length
		f[3] = 0x6 // PING
		binary.BigEndian.PutUint64(f[9:], uint64(0x70726f7879000000)|uint64(i))
		p.writeServer(f)
	}
}

type holdEcho struct {
	testingv1.UnimplementedEchoServiceServer
	entered chan struct{}
	served  atomic.Int64 // calls other than "hold" answered
}

func (h *holdEcho) Echo(ctx context.Context, in *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
	if in.GetText() == "hold" {
		h.entered <- struct{}{}
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	h.served.Add(1)
	return &testingv1.EchoResponse{Text: in.GetText()}, nil
}

// A grpcx server sends GOAWAY "too_many_pings" on a connection of
// grpcx.Dial's client while one call is being served and another has been
// sent but not yet seen by the server. The call the server had started
// fails with Unavailable (the server closes the connection: that is what a
// GOAWAY costs, and why KeepalivePolicy must never strike the fleet's own
// clients); the call it had not seen is retried by gRPC on a new
// connection and answered once; later calls are served.
func TestGoAwayRetriesCallsTheServerDidNotStart(t *testing.T) {
	h := &holdEcho{entered: make(chan struct{}, 1)}
	addr := serveEcho(t, grpcx.ServerOptions{Logger: slog.New(slog.DiscardHandler)}, h)
	p := startPingProxy(t, addr)
	conn, err := grpcx.Dial(p.ln.Addr().String(), grpcx.ClientOptions{Name: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := testingv1.NewEchoServiceClient(conn)
	ctx := context.Background()

	started := make(chan error, 1)
	go func() {
		_, err := c.Echo(ctx, &testingv1.EchoRequest{Text: "hold"})
		started <- err
	}()
	<-h.entered
	<-p.ready
	p.frozen.Store(true)
	unseen := make(chan error, 1)
	go func() {
		resp, err := c.Echo(ctx, &testingv1.EchoRequest{Text: "unseen"})
		if err == nil && resp.GetText() != "unseen" {
			err = status.Errorf(codes.Internal, "answer %q", resp.GetText())
		}
		unseen <- err
	}()
	<-p.headers // the client sent it on the first connection; the server never sees it
	p.injectPings(4)
	close(p.release)

	if err := <-started; status.Code(err) != codes.Unavailable {
		t.Errorf("call in flight when the GOAWAY came: %v, want Unavailable", err)
	} else {
		t.Logf("call in flight: %v", err)
	}
	if err := <-unseen; err != nil {
		t.Errorf("call the server had not seen: %v, want it retried and answered", err)
	}
	if _, err := c.Echo(ctx, &testingv1.EchoRequest{Text: "later"}); err != nil {
		t.Errorf("call after the GOAWAY: %v", err)
	}
	if n := h.served.Load(); n != 2 {
		t.Errorf("server answered %d calls, want 2 (the retried one once, the later one)", n)
	}
	if n := p.accepted.Load(); n < 2 {
		t.Errorf("%d connections, want a new one after the GOAWAY", n)
	}
}

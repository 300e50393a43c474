package grpcx_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/grpcx"
)

// h2Client is a bare HTTP/2 connection over TCP to a gRPC server, so a
// test decides exactly when PING frames are sent.
type h2Client struct {
	t    *testing.T
	conn net.Conn
	fr   *http2.Framer
}

func dialH2(t *testing.T, addr string) *h2Client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &h2Client{t: t, conn: conn, fr: http2.NewFramer(conn, conn)}
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return c
}

// ping sends a PING with data n and reads until its acknowledgement. It
// returns the GOAWAY frame the server sent first, if any.
func (c *h2Client) ping(n byte) *http2.GoAwayFrame {
	c.t.Helper()
	data := [8]byte{'t', 'e', 's', 't', 0, 0, 0, n}
	if err := c.fr.WritePing(false, data); err != nil {
		c.t.Fatalf("ping %d: %v", n, err)
	}
	return c.readUntil(func(f http2.Frame) bool {
		p, ok := f.(*http2.PingFrame)
		return ok && p.IsAck() && p.Data == data
	})
}

// settings sends an empty SETTINGS frame and reads until its
// acknowledgement: the server answers it after everything it queued for
// the frames before (a GOAWAY for a ping among them).
func (c *h2Client) settings() *http2.GoAwayFrame {
	c.t.Helper()
	if err := c.fr.WriteSettings(); err != nil {
		c.t.Fatalf("settings: %v", err)
	}
	return c.readUntil(func(f http2.Frame) bool {
		s, ok := f.(*http2.SettingsFrame)
		return ok && s.IsAck()
	})
}

func (c *h2Client) readUntil(done func(http2.Frame) bool) *http2.GoAwayFrame {
	c.t.Helper()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			return f
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if err := c.fr.WriteSettingsAck(); err != nil {
					c.t.Fatal(err)
				}
			}
		case *http2.PingFrame:
			if !f.IsAck() { // the server's own keepalive
				if err := c.fr.WritePing(true, f.Data); err != nil {
					c.t.Fatal(err)
				}
			}
		}
		if done(f) {
			return nil
		}
	}
}

func serveGRPCX(t *testing.T) string {
	t.Helper()
	return serveEcho(t, grpcx.ServerOptions{Logger: slog.New(slog.DiscardHandler)}, nil)
}

// The fleet's clients ping a connection, with or without calls, once
// KeepaliveTime has passed since the last frame they read; the server
// measures from when it handled their previous ping. A server whose policy
// demanded the full KeepaliveTime (MinTime 10 s before) struck a ping that
// looked even slightly early and, at the third strike on a connection
// without responses in between, sent GOAWAY "too_many_pings". Here a
// connection without calls gets four pings, each 2.5 s earlier than
// KeepaliveTime: all accepted, no GOAWAY.
func TestKeepalivePolicyAcceptsTheFleetsClientsWithSlack(t *testing.T) {
	t.Parallel()
	if grpcx.KeepaliveMinTime*2 > grpcx.KeepaliveTime {
		t.Fatalf("KeepaliveMinTime %v leaves less than half of KeepaliveTime %v as slack", grpcx.KeepaliveMinTime, grpcx.KeepaliveTime)
	}
	c := dialH2(t, serveGRPCX(t))
	early := (grpcx.KeepaliveTime + grpcx.KeepaliveMinTime) / 2
	// The first ping is free; each of the next three would be a strike
	// under a MinTime above early, and the third strike is the GOAWAY.
	for i := byte(0); i < 4; i++ {
		if i > 0 {
			time.Sleep(early)
		}
		if ga := c.ping(i); ga != nil {
			t.Fatalf("ping %d, %v after the previous one: GOAWAY %v %q", i, early, ga.ErrCode, ga.DebugData())
		}
	}
	if ga := c.settings(); ga != nil {
		t.Fatalf("after the fourth ping: GOAWAY %v %q", ga.ErrCode, ga.DebugData())
	}
}

// The policy still refuses a client that pings faster than
// KeepaliveMinTime: the fourth ping in a row is the third strike.
func TestKeepalivePolicyRefusesAPingFlood(t *testing.T) {
	t.Parallel()
	c := dialH2(t, serveGRPCX(t))
	var ga *http2.GoAwayFrame
	for i := byte(0); i < 4 && ga == nil; i++ {
		ga = c.ping(i)
	}
	if ga == nil {
		ga = c.settings()
	}
	if ga == nil || ga.ErrCode != http2.ErrCodeEnhanceYourCalm || string(ga.DebugData()) != "too_many_pings" {
		t.Fatalf("four pings at once: GOAWAY %v, want ENHANCE_YOUR_CALM too_many_pings", ga)
	}
	// The server closes the connection after it.
	for {
		if _, err := c.fr.ReadFrame(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Logf("read after GOAWAY: %v", err)
			}
			break
		}
	}
}

// goAwaySniffer counts the GOAWAY "too_many_pings" frames a server writes
// (plaintext HTTP/2: the debug data is on the wire as is).
type goAwaySniffer struct {
	net.Listener
	hits *atomic.Int64
}

func (l goAwaySniffer) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return sniffedConn{Conn: c, hits: l.hits}, nil
}

type sniffedConn struct {
	net.Conn
	hits *atomic.Int64
}

func (c sniffedConn) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte("too_many_pings")) {
		c.hits.Add(1)
	}
	return c.Conn.Write(b)
}

// Dial's real client keeps an idle connection to a server with
// KeepalivePolicy: its keepalive pings (every KeepaliveTime, no calls in
// flight) draw no GOAWAY, and the connection still serves calls. The same
// client to a server with gRPC's default policy (what tokentest's issuer
// and a backend not built with grpcx have) is sent GOAWAY "too_many_pings"
// within a few pings: that is the refusal this test waits for, bounded.
func TestDialsKeepaliveMeetsKeepalivePolicy(t *testing.T) {
	t.Parallel()
	serve := func(opts ...grpc.ServerOption) (string, *atomic.Int64) {
		srv := grpc.NewServer(opts...)
		healthpb.RegisterHealthServer(srv, health.NewServer())
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hits := new(atomic.Int64)
		go func() { _ = srv.Serve(goAwaySniffer{Listener: ln, hits: hits}) }()
		t.Cleanup(srv.Stop)
		return ln.Addr().String(), hits
	}
	fleetAddr, fleetHits := serve(grpcx.KeepalivePolicy())
	defaultAddr, defaultHits := serve()
	check := func(addr string) healthpb.HealthClient {
		conn, err := grpcx.Dial(addr, grpcx.ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		c := healthpb.NewHealthClient(conn)
		if _, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
		return c
	}
	fleet := check(fleetAddr)
	check(defaultAddr)
	// Both connections idle from here; the default policy strikes every
	// ping after the first, and the third strike is the GOAWAY.
	for i := 0; i < 6*int(grpcx.KeepaliveTime/time.Second) && defaultHits.Load() == 0; i++ {
		time.Sleep(time.Second)
	}
	if defaultHits.Load() == 0 {
		t.Fatal("the default policy never sent GOAWAY too_many_pings: the test did not see the pings")
	}
	if n := fleetHits.Load(); n != 0 {
		t.Fatalf("KeepalivePolicy sent Dial's client %d GOAWAY too_many_pings", n)
	}
	if _, err := fleet.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
}

// A backend whose server keeps gRPC's default enforcement policy
// (grpc.NewServer(): MinTime 5 minutes, no pings without calls), dialed
// with the keepalive a capability backend gets by default
// (CAPABILITY_BACKEND_<NAME>_KEEPALIVE unset: grpc-default), keeps its
// connection — idle, and with a stream open that carries no data — for as
// long as the fleet's setting takes to be sent GOAWAY "too_many_pings" by
// the same kind of server: at least three of its pings, 10 s apart. The
// control connection (the fleet's setting) must see that GOAWAY and lose
// its stream, so the test knows the wait was long enough.
func TestBackendKeepaliveFitsGRPCsDefaultPolicy(t *testing.T) {
	t.Parallel()
	s := config.NewSource(config.MapEnv(map[string]string{"CAPABILITY_BACKENDS": "mine=127.0.0.1:1"}))
	backends := config.LoadBackends(s, "", false)
	if err := s.Problems().Err(); err != nil {
		t.Fatal(err)
	}
	ka := backends.List[0].Keepalive
	if ka == nil || ka.PermitWithoutStream || ka.Time < 5*time.Minute {
		t.Fatalf("a backend's default keepalive = %+v, want pings only with calls, at least 5 min apart", ka)
	}

	type peer struct {
		hits, accepts *atomic.Int64
		health        *health.Server
		client        healthpb.HealthClient
		watch         healthpb.Health_WatchClient
	}
	open := func(o grpcx.ClientOptions) *peer {
		p := &peer{hits: new(atomic.Int64), accepts: new(atomic.Int64), health: health.NewServer()}
		srv := grpc.NewServer() // gRPC's default enforcement policy
		healthpb.RegisterHealthServer(srv, p.health)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = srv.Serve(countingListener{goAwaySniffer{Listener: ln, hits: p.hits}, p.accepts}) }()
		t.Cleanup(srv.Stop)
		conn, err := grpcx.Dial(ln.Addr().String(), o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		p.client = healthpb.NewHealthClient(conn)
		if _, err := p.client.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		if p.watch, err = p.client.Watch(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
		if r, err := p.watch.Recv(); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("watch: %v %v", r, err)
		}
		return p
	}
	fleet := open(grpcx.ClientOptions{})
	backend := open(grpcx.ClientOptions{Keepalive: ka})

	// gRPC's default policy sends the GOAWAY at the third strike: the
	// first ping is free, so the fleet's client has pinged at least four
	// times by then.
	for i := 0; i < 6*int(grpcx.KeepaliveTime/time.Second) && fleet.hits.Load() == 0; i++ {
		time.Sleep(time.Second)
	}
	if fleet.hits.Load() == 0 {
		t.Fatal("the fleet's setting was never sent GOAWAY too_many_pings by gRPC's default policy: the wait proves nothing")
	}
	if _, err := fleet.watch.Recv(); err == nil {
		t.Error("the fleet's stream survived the GOAWAY")
	}

	if n := backend.hits.Load(); n != 0 {
		t.Fatalf("the backend setting was sent %d GOAWAY too_many_pings", n)
	}
	// The stream open through the wait still carries news, and calls are
	// answered on the same connection.
	backend.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if r, err := backend.watch.Recv(); err != nil || r.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("the backend's stream after the wait: %v %v", r, err)
	}
	if _, err := backend.client.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if n := backend.accepts.Load(); n != 1 {
		t.Fatalf("the backend accepted %d connections, want the one", n)
	}
}

type countingListener struct {
	net.Listener
	accepts *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepts.Add(1)
	}
	return c, err
}

// config cannot import grpcx (grpcx needs config through telemetry): its
// floor for a backend's keepalive time is checked against the fleet's here.
func TestBackendKeepaliveFloorIsTheFleetsTime(t *testing.T) {
	if config.MinBackendKeepaliveTime != grpcx.KeepaliveTime || 2*grpcx.KeepaliveMinTime > config.MinBackendKeepaliveTime {
		t.Fatalf("config.MinBackendKeepaliveTime %v, grpcx.KeepaliveTime %v, KeepaliveMinTime %v", config.MinBackendKeepaliveTime, grpcx.KeepaliveTime, grpcx.KeepaliveMinTime)
	}
}

package registrytest_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
)

// call invokes notes.NotesService/Add on conn (its request and response
// read as empty messages: the text field is left unset).
func call(conn *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return conn.Invoke(ctx, "/notes.NotesService/Add", &emptypb.Empty{}, &emptypb.Empty{})
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// A stopped backend's port stays its own until Restart: a fleet started
// meanwhile binds its servers to port 0, and the kernel must not give one
// of them the port (seen in CI: Restart then failed with "address already
// in use"). To a client the backend is down as a stopped server is:
// connecting is refused, and gRPC calls fail at once with Unavailable.
func TestStoppedBackendKeepsItsPortAndLooksDown(t *testing.T) {
	b := registrytest.Start(t, "notes", []registrytest.Service{{Package: "notes", Name: "NotesService",
		Methods: []registrytest.Method{{Name: "Add"}}}})
	addr := b.Addr
	_, p, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(p)
	// Not called before the first Stop: a server that closed connections
	// keeps its port in TIME_WAIT for a while, which would hide a port
	// left free (the CI case stopped its backend before any call).
	running := dial(t, addr)

	for round := range 2 {
		b.Stop()

		// Down as a stopped server is, from the moment Stop returns:
		// refused, not accepted and closed.
		if c, err := net.DialTimeout("tcp", addr, 10*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
			if c != nil {
				c.Close()
			}
			t.Fatalf("round %d: dial the stopped backend: %v, want connection refused", round, err)
		}
		// The kernel gives a port to a socket bound to port 0 only if a
		// bind without SO_REUSEADDR would succeed there: it must not.
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port})
		syscall.Close(fd)
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("round %d: binding the stopped backend's port %d: %v, want EADDRINUSE (the port is free for anyone)", round, port, err)
		}
		// And so a bounded number of listeners on port 0 are never given it.
		for i := range 500 {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			got := ln.Addr().String()
			ln.Close()
			if got == addr {
				t.Fatalf("round %d: listener %d on :0 was given the stopped backend's address %s", round, i, addr)
			}
		}

		for name, conn := range map[string]*grpc.ClientConn{"new": dial(t, addr), "running": running} {
			err := call(conn)
			if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "connection refused") {
				t.Errorf("round %d: call on a %s connection to the stopped backend: %v, want Unavailable, connection refused", round, name, err)
			}
		}

		b.Restart(t)
		if b.Addr != addr {
			t.Fatalf("round %d: restarted on %s, was %s", round, b.Addr, addr)
		}
		if err := call(dial(t, addr)); err != nil {
			t.Fatalf("round %d: call after Restart: %v", round, err)
		}
	}
}

// Close lets the port go: the test's end leaves nothing bound.
func TestClosedBackendLetsItsPortGo(t *testing.T) {
	b := registrytest.Start(t, "notes", []registrytest.Service{{Package: "notes", Name: "NotesService"}})
	b.Stop()
	b.Close()
	ln, err := net.Listen("tcp", b.Addr)
	if err != nil {
		t.Fatalf("bind %s after Close: %v", b.Addr, err)
	}
	ln.Close()
}

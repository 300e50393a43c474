package app_test

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/tollgate/tollgate/services/platform/app"
)

// TestListenTakesAHandedListener: a listener in the context is taken for
// its exact address, once; other addresses are bound as usual.
func TestListenTakesAHandedListener(t *testing.T) {
	handed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer handed.Close()
	ctx := app.WithListeners(context.Background(), handed)
	ln, err := app.Listen(ctx, handed.Addr().String())
	if err != nil || ln != handed {
		t.Fatalf("Listen(%s) = %v, %v; want the handed listener", handed.Addr(), ln, err)
	}
	// Taken once: the same address again is a real bind, refused as the
	// port is in use.
	if _, err := app.Listen(ctx, handed.Addr().String()); err == nil || !strings.Contains(err.Error(), handed.Addr().String()) {
		t.Errorf("second Listen of a handed address: %v, want a bind error naming it", err)
	}
	other, err := app.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	other.Close()
}

// TestListenInheritedFD: "fd:N" takes the listening socket at file
// descriptor N; anything else there, or a malformed N, is refused.
func TestListenInheritedFD(t *testing.T) {
	orig, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	var fd int
	rc, _ := orig.(*net.TCPListener).SyscallConn()
	_ = rc.Control(func(f uintptr) { fd, err = syscall.Dup(int(f)) })
	if err != nil {
		t.Fatal(err)
	}
	ln, err := app.Listen(context.Background(), app.FDPrefix+strconv.Itoa(fd)) // takes fd over
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ln.Addr().String() != orig.Addr().String() {
		t.Errorf("fd listener on %s, want %s", ln.Addr(), orig.Addr())
	}

	f, err := os.CreateTemp(t.TempDir(), "not-a-socket")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fileFD, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]string{
		app.FDPrefix + strconv.Itoa(fileFD): "not an inherited listening socket",
		app.FDPrefix + "x":                  "want fd:N",
		app.FDPrefix + "1":                  "want fd:N",
	} {
		if _, err := app.Listen(context.Background(), addr); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Listen(%q) = %v, want an error saying %q", addr, err, want)
		}
	}
}

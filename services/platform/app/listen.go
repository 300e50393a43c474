package app

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// FDPrefix marks an address that names an inherited listening socket:
// "fd:3" is file descriptor 3 of the process. A parent that bound the port
// itself passes the socket that way (os/exec's ExtraFiles start at 3), so
// the port is never free between its choice and the child's first accept.
const FDPrefix = "fd:"

type handedKey struct{}

// handed is the set of listeners a caller put in a context; each is taken
// once.
type handed struct {
	mu  sync.Mutex
	lns map[string]net.Listener
}

// WithListeners returns ctx carrying already-bound listeners. NewBase,
// NewHTTP and NewGRPC given that ctx take the listener whose address is the
// configured one instead of binding it. Tests that must know a service's
// port before it starts (its issuer URL names it) bind port 0 themselves
// and hand the listener over: no other process can take the port between
// the choice and the bind. Each listener is taken at most once; the
// service closes it when it stops.
func WithListeners(ctx context.Context, lns ...net.Listener) context.Context {
	h := &handed{lns: map[string]net.Listener{}}
	if prev, ok := ctx.Value(handedKey{}).(*handed); ok {
		prev.mu.Lock()
		for a, ln := range prev.lns {
			h.lns[a] = ln
		}
		prev.mu.Unlock()
	}
	for _, ln := range lns {
		h.lns[ln.Addr().String()] = ln
	}
	return context.WithValue(ctx, handedKey{}, h)
}

// Listen returns a TCP listener for addr: the listener handed over in ctx
// for exactly that address (WithListeners), the inherited socket of an
// "fd:N" address (FDPrefix), or a new one bound with net.Listen. Errors
// name the address.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	if h, ok := ctx.Value(handedKey{}).(*handed); ok {
		h.mu.Lock()
		ln, found := h.lns[addr]
		delete(h.lns, addr)
		h.mu.Unlock()
		if found {
			return ln, nil
		}
	}
	if rest, ok := strings.CutPrefix(addr, FDPrefix); ok {
		fd, err := strconv.Atoi(rest)
		if err != nil || fd < 3 {
			return nil, fmt.Errorf("listen %s: want %sN with N ≥ 3 (an inherited file descriptor)", addr, FDPrefix)
		}
		f := os.NewFile(uintptr(fd), "listener-"+rest)
		defer f.Close() // FileListener holds its own duplicate
		ln, err := net.FileListener(f)
		if err != nil {
			return nil, fmt.Errorf("listen %s: not an inherited listening socket: %w", addr, err)
		}
		return ln, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}

package testharness

import (
	"net"
	"sync"
	"testing"
)

// HungProxy is a TCP proxy in front of a peer (a gRPC server, an
// auth-server's key set port) that a test can make hang, for the failure
// a timeout, a circuit breaker or a shared fetch exists for.
//
// "Hung" is the peer of a process stopped (SIGSTOP) or a network that
// drops every packet after the handshake, not a dead one: from Hang on,
// the proxy forwards no byte in either direction, on the connections it
// holds and on new ones, and closes none of them. A client's connect
// still succeeds (the proxy accepts and dials the upstream as before),
// its writes are taken, and nothing ever comes back — no answer, no
// GOAWAY, no RST or FIN — so only the client's own deadlines end its
// calls; the health service is hung with the rest. A refused or reset
// connection, which a client notices at once, is another failure and
// not this one.
//
// Two shapes of test use it:
//   - hung until the test ends: Hang once (it is idempotent); the
//     connections are held open until the test's cleanup;
//   - hung, then back: Hang, then Release, which closes every connection
//     that carried a byte while hung (that byte was dropped: the stream
//     cannot go on; the client sees the connection closed, as after the
//     peer's restart) and forwards again, on new connections and on any
//     that stayed silent; Hang may follow again;
//   - the connections held now hung, new ones forwarded: SilenceHeld, the
//     connection that goes silent on its own — a NAT or conntrack entry
//     lost, a sidecar stuck on one connection, a node gone behind a
//     proxy that keeps ACKing — while the peer is well: a client that
//     notices and connects again is served. Those connections stay
//     silent until the test ends (Release does not revive them).
//
// The proxy listens on a free loopback port (Addr) until the test ends,
// when it is released and closed.
type HungProxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	hung     chan struct{} // nil while forwarding; closed by Release
	// held are the connections open now, each with its own silence
	// (nil while forwarding; SilenceHeld), closed when the test ends.
	held map[*proxied]chan struct{}
	done chan struct{} // closed when the test ends
}

// proxied is one client connection and its upstream's.
type proxied struct{ client, upstream net.Conn }

// StartHungProxy starts a proxy forwarding to upstream (host:port).
func StartHungProxy(t testing.TB, upstream string) *HungProxy {
	t.Helper()
	p := &HungProxy{ln: Listener(t), upstream: upstream, held: map[*proxied]chan struct{}{}, done: make(chan struct{})}
	t.Cleanup(func() { // before the listener's close: cleanups run last first
		close(p.done)
		p.Release()
	})
	go func() {
		for {
			c, err := p.ln.Accept()
			if err != nil {
				return // closed at the test's end
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			pc := &proxied{client: c, upstream: u}
			p.mu.Lock()
			p.held[pc] = nil
			p.mu.Unlock()
			go p.pipe(pc, c, u)
			go p.pipe(pc, u, c)
		}
	}()
	return p
}

// Addr is the proxy's address (127.0.0.1:port): dial it instead of the
// upstream.
func (p *HungProxy) Addr() string { return p.ln.Addr().String() }

// Hang stops all forwarding, on held and new connections, until Release
// or the test's end. Calling it while hung changes nothing.
func (p *HungProxy) Hang() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hung == nil {
		p.hung = make(chan struct{})
	}
}

// Release closes the connections that carried a byte while hung and
// forwards again.
// Calling it while forwarding changes nothing.
func (p *HungProxy) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hung != nil {
		close(p.hung)
		p.hung = nil
	}
}

// SilenceHeld makes every connection the proxy holds now hang as Hang
// would — no byte forwarded in either direction, none closed, until the
// test ends — and keeps forwarding on the connections accepted after it.
func (p *HungProxy) SilenceHeld() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pc, silent := range p.held {
		if silent == nil {
			p.held[pc] = p.done
		}
	}
}

// hungNow is what pc's pipes wait for before they close it, or nil while
// it is forwarded.
func (p *HungProxy) hungNow(pc *proxied) chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hung != nil {
		return p.hung
	}
	return p.held[pc]
}

// pipe copies src to dst, one direction of pc. What it reads while pc is
// hung is never forwarded: it waits for Release (SilenceHeld: the test's
// end), then closes both connections.
func (p *HungProxy) pipe(pc *proxied, src, dst net.Conn) {
	defer func() {
		p.mu.Lock()
		delete(p.held, pc)
		p.mu.Unlock()
	}()
	defer src.Close()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if h := p.hungNow(pc); h != nil {
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

// Package app runs a service's listeners under one context: every server
// starts together, the first failure stops the rest, and SIGTERM drains them
// within the shutdown timeout.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
)

// Server is one listener of a service.
type Server interface {
	// Name identifies the server in logs ("http", "grpc", "admin").
	Name() string
	// Serve blocks until the listener closes.
	Serve() error
	// Shutdown stops accepting work and waits for in-flight work until ctx ends.
	Shutdown(ctx context.Context) error
	// Addr is the bound address.
	Addr() net.Addr
}

// Run serves until ctx is cancelled or a server fails, then shuts every
// server down with timeout. beforeShutdown runs first (for example to mark
// readiness down).
func Run(ctx context.Context, log *slog.Logger, timeout time.Duration, beforeShutdown func(), servers ...Server) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, s := range servers {
		log.Info("listening", "server", s.Name(), "addr", s.Addr().String())
		g.Go(func() error {
			if err := s.Serve(); err != nil {
				return fmt.Errorf("%s server: %w", s.Name(), err)
			}
			return nil
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		if beforeShutdown != nil {
			beforeShutdown()
		}
		log.Info("shutting down", "timeout", timeout.String())
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		var errs []error
		for _, s := range servers {
			if err := s.Shutdown(sctx); err != nil {
				errs = append(errs, fmt.Errorf("%s shutdown: %w", s.Name(), err))
			}
		}
		return errors.Join(errs...)
	})
	err := g.Wait()
	if err != nil {
		log.Error("stopped with error", "err", err)
	} else {
		log.Info("stopped")
	}
	return err
}

// Deadlines of every HTTP listener (docs/operations/failures.md). A client
// sending a request slowly is disconnected within HeaderTimeout (request
// line and headers) plus BodyTimeout (body); an idle keep-alive connection
// is closed after IdleTimeout. Each write of a response (and the flush at
// its end) must complete within WriteTimeout of its start: a client that
// stops reading an answer loses its connection instead of holding the
// handler's goroutine, the connection and the socket's buffers for as long
// as it keeps the connection open. The deadline is per write, not per
// response, so long-lived streams (SSE, streamed MCP responses) that are
// read are not cut; once its body has been read, a request has no read
// deadline either.
const (
	HeaderTimeout = 10 * time.Second
	BodyTimeout   = 30 * time.Second
	WriteTimeout  = 30 * time.Second
	// IdleTimeout is longer than common proxies' upstream keep-alive
	// (nginx: 60s), so the proxy, not the server, closes idle connections.
	IdleTimeout = 120 * time.Second
)

// MaxHeaderBytes bounds a request's line and header block (net/http
// allows 4 KiB more); a larger one is answered "431 Request Header Fields
// Too Large" while it is read (RFC 6585 §5), before any handler runs.
// net/http's default, 1 MiB, let one request hold a megabyte of a
// handler's memory and have it repeated in answers that quote a header
// (an MCP stateless-era Mcp-Name mismatch); no client of the fleet sends
// more than a few KiB (a bearer token, an authorization request's query,
// cookies of at most 4 KiB each), and common ingresses stop at 32 KiB.
const MaxHeaderBytes = 64 << 10

// HTTP wraps an http.Server on a bound listener.
type HTTP struct {
	name string
	srv  *http.Server
	ln   net.Listener
	// BodyTimeout bounds reading a request body (default BodyTimeout);
	// change it before Serve.
	BodyTimeout time.Duration
	// WriteTimeout bounds each write of a response (default WriteTimeout;
	// 0: none); change it before Serve. A handler that sets its own write
	// deadline (http.ResponseController.SetWriteDeadline) takes over from
	// it for the rest of its response.
	WriteTimeout time.Duration
}

// NewHTTP listens on addr (see Listen: a listener handed over in ctx or an
// "fd:N" socket is taken as is) and serves h with the listener deadlines
// above.
func NewHTTP(ctx context.Context, name, addr string, h http.Handler) (*HTTP, error) {
	ln, err := Listen(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s := &HTTP{name: name, ln: ln, BodyTimeout: BodyTimeout, WriteTimeout: WriteTimeout}
	s.srv = &http.Server{
		Handler:           s.writeDeadline(s.bodyDeadline(h)),
		ReadHeaderTimeout: HeaderTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
	return s, nil
}

// bodyDeadline sets a read deadline of BodyTimeout on a request that has a
// body and lifts it once the body has been read to its end. http.Server's
// ReadTimeout would do the first half but stays in force while the handler
// runs, and its expiry cancels the request's context: it would cut SSE
// streams and long tool calls.
//
// The wrapped body goes on a shallow copy of the request, never on the
// *http.Request net/http holds: when a handler answers without reading
// the body (a 413 for a Content-Length over a limit, a 401, 404 or 415),
// net/http decides from that request's Body type (chunkWriter.writeHeader
// in net/http/server.go) to answer at once and close the connection — a
// body of 256 KiB or more left unread, or an Expect: 100-continue body
// the client has not been asked for (RFC 9110 §10.1.1) — or to discard
// up to 256 KiB of it first. A body of another type is always discarded
// first: the answer would wait for 256 KiB more of the body or for
// BodyTimeout.
func (s *HTTP) bodyDeadline(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody && s.BodyTimeout > 0 {
			rc := http.NewResponseController(w)
			if rc.SetReadDeadline(time.Now().Add(s.BodyTimeout)) == nil {
				r = r.WithContext(r.Context()) // a copy: net/http keeps its own Body
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
			}
		}
		h.ServeHTTP(w, r)
	})
}

// writeDeadline gives each Write and Flush of a response a write deadline
// of WriteTimeout from then, and the end of the response too (net/http
// flushes what is buffered once the handler returns). http.Server's
// WriteTimeout would be one deadline for the whole response, from the end
// of the request's headers: it would cut SSE streams and long tool calls.
// A response nobody reads (the client keeps its connection open and its
// receive window closed) would otherwise hold its handler in a Write
// forever: a context cancellation does not interrupt a blocked Write.
func (s *HTTP) writeDeadline(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.WriteTimeout <= 0 {
			h.ServeHTTP(w, r)
			return
		}
		d := &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: s.WriteTimeout}
		// From the start too: a "100 Continue" is written while the
		// handler reads the body, and a deadline left by the connection's
		// previous request may have passed.
		d.arm()
		h.ServeHTTP(d, r)
		d.arm()
	})
}

// deadlineWriter sets the write deadline before each write that can reach
// the connection, until the handler sets one itself.
//
// net/http buffers a response: the status line and headers go out with
// the first bytes of the body that leave its buffer, and the body's first
// bufferedBody bytes stay in it until a Flush or the handler's return
// (both armed here). So WriteHeader of a final status and a Write that
// leaves the response within bufferedBody bytes cannot block on the
// client, and are not armed: a small answer (a token response, an OAuth
// error) pays two deadlines, at its start and at its end, instead of four
// (docs/benchmarks/auth-server-history.md, session 42 perf16). Were
// net/http to write sooner, such a write would run under the deadline
// armed at the request's start — earlier, never later, than its own.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	own     bool  // the handler set its own write deadline
	written int64 // body bytes the handler has written
}

// bufferedBody is net/http's buffer before a response's first write to the
// connection (bufferBeforeChunkingSize in net/http/server.go, 2 KiB since
// Go 1.0; HTTP/2's is 4 KiB).
const bufferedBody = 2 << 10

func (d *deadlineWriter) arm() {
	if !d.own {
		_ = d.rc.SetWriteDeadline(time.Now().Add(d.timeout))
	}
}

// writeChunk is the most bytes one deadline covers: a large Write (a
// tool result of megabytes, written at once) goes out in pieces of this
// size, each with its own WriteTimeout, so a client that reads steadily —
// at more than writeChunk per WriteTimeout, ~2 KiB/s at 30 s — is never
// cut, while one that stops reading still is.
const writeChunk = 64 << 10

func (d *deadlineWriter) Write(p []byte) (int, error) {
	if d.written += int64(len(p)); d.written <= bufferedBody {
		return d.ResponseWriter.Write(p) // stays in net/http's buffer
	}
	written := 0
	for {
		n := min(len(p), writeChunk)
		d.arm()
		m, err := d.ResponseWriter.Write(p[:n])
		written += m
		if err != nil || n == len(p) {
			return written, err
		}
		p = p[n:]
	}
}

func (d *deadlineWriter) WriteHeader(code int) {
	if code < 200 {
		d.arm() // an informational answer (100, 103) is written at once
	}
	d.ResponseWriter.WriteHeader(code)
}

func (d *deadlineWriter) Flush() { _ = d.FlushError() }

// FlushError is what http.ResponseController.Flush calls.
func (d *deadlineWriter) FlushError() error {
	d.arm()
	return d.rc.Flush()
}

// SetWriteDeadline is what http.ResponseController.SetWriteDeadline calls:
// the handler manages its deadlines from now on (the mcp-gateway's streams
// set STREAM_WRITE_TIMEOUT before each of their writes).
func (d *deadlineWriter) SetWriteDeadline(t time.Time) error {
	d.own = true
	return d.rc.SetWriteDeadline(t)
}

func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }

// deadlineBody lifts the connection's read deadline at the end of the body.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

func (s *HTTP) Name() string   { return s.name }
func (s *HTTP) Addr() net.Addr { return s.ln.Addr() }

// Server exposes the underlying http.Server for tuning (RegisterOnShutdown for streams).
func (s *HTTP) Server() *http.Server { return s.srv }

func (s *HTTP) Serve() error {
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *HTTP) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		_ = s.srv.Close()
	}
	return err
}

// GRPC wraps a grpc.Server on a bound listener.
type GRPC struct {
	srv *grpc.Server
	ln  net.Listener
}

// NewGRPC listens on addr (as NewHTTP) for srv.
func NewGRPC(ctx context.Context, addr string, srv *grpc.Server) (*GRPC, error) {
	ln, err := Listen(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("grpc: %w", err)
	}
	return &GRPC{srv: srv, ln: ln}, nil
}

func (s *GRPC) Name() string   { return "grpc" }
func (s *GRPC) Addr() net.Addr { return s.ln.Addr() }

// Serve serves until Shutdown. A Shutdown that came first (a service
// stopped as soon as it started) is a clean stop too: grpc.Server.Serve then
// closes the listener and answers grpc.ErrServerStopped.
func (s *GRPC) Serve() error {
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

func (s *GRPC) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.srv.GracefulStop(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.srv.Stop()
		return ctx.Err()
	}
}

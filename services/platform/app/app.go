// Package app runs a service's listeners under one context: every server
// starts together, the first failure stops the rest, and SIGTERM drains them
// within the shutdown timeout.
package app

import (
	"context"
	"errors"
	"fmt"
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

// HTTP wraps an http.Server on a bound listener.
type HTTP struct {
	name string
	srv  *http.Server
	ln   net.Listener
}

// NewHTTP listens on addr and serves h.
func NewHTTP(name, addr string, h http.Handler) (*HTTP, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listen %s: %w", name, addr, err)
	}
	return &HTTP{name: name, ln: ln, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}}, nil
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

// NewGRPC listens on addr for srv.
func NewGRPC(addr string, srv *grpc.Server) (*GRPC, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("grpc: listen %s: %w", addr, err)
	}
	return &GRPC{srv: srv, ln: ln}, nil
}

func (s *GRPC) Name() string   { return "grpc" }
func (s *GRPC) Addr() net.Addr { return s.ln.Addr() }
func (s *GRPC) Serve() error   { return s.srv.Serve(s.ln) }

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

// Package gateway wires the mcp-gateway: MCP Streamable HTTP and legacy
// HTTP+SSE (mcp-go) behind the fleet's OAuth rules, with tools from the
// capability registry and sessions shared by all replicas through Redis.
package gateway

import (
	"context"
	"io"

	"google.golang.org/grpc"

	"github.com/tollgate/tollgate/services/mcp-gateway/internal/config"
	"github.com/tollgate/tollgate/services/mcp-gateway/internal/session"
	"github.com/tollgate/tollgate/services/platform/app"
	pconfig "github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/grpcx"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/revocation"
	"github.com/tollgate/tollgate/services/platform/telemetry"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// Run starts the mcp-gateway and blocks until ctx ends.
func Run(ctx context.Context, getenv func(string) string, stderr io.Writer, onListen app.Listening) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	base, err := app.NewBase(ctx, cfg.Common, stderr)
	if err != nil {
		return err
	}
	fail := func(err error) error { base.Close(); return err }
	rdb, err := redisx.Open(ctx, cfg.Redis, redisx.WithLogger(base.Log), redisx.WithMetrics(base.Metrics))
	if err != nil {
		return fail(err)
	}
	defer rdb.Close()
	if err := base.Instrument(rdb); err != nil {
		return fail(err)
	}
	coreConn, err := base.Dial(cfg.CoreGRPCAddr, "capability-core")
	if err != nil {
		return fail(err)
	}
	defer coreConn.Close()
	authConn, err := base.Dial(cfg.AuthGRPCAddr, "auth-server")
	if err != nil {
		return fail(err)
	}
	defer authConn.Close()

	// The tools are what the configured backends serve, read from their
	// reflection now and every CAPABILITY_REFRESH_INTERVAL; the
	// auth-server is always one (its connected-apps service, see
	// docs/architecture.md, "Capabilities discovered from backends").
	dctx, stopDiscovery := context.WithCancel(ctx)
	defer stopDiscovery()
	disc, closeBackends, err := registry.Start(dctx, registry.Fleet{
		Backends: cfg.Backends,
		First:    []registry.Backend{{Name: pconfig.ReservedBackend, Target: cfg.AuthGRPCAddr, Conn: authConn}},
		Reuse:    map[string]*grpc.ClientConn{cfg.CoreGRPCAddr: coreConn},
		// Two tools published under one name (notes.list and notes_list
		// in the underscore style) refuse the later one's service, not
		// the gateway's start or its following of every backend.
		UnderscoreToolNames: cfg.ToolNameStyle == config.ToolNamesUnderscore,
		Log:                 base.Log, Metrics: base.Metrics, Telemetry: base.Telemetry,
	})
	if err != nil {
		return fail(err)
	}
	defer closeBackends()
	m, err := newMetrics(base.Metrics)
	if err != nil {
		return fail(err)
	}
	// Revoked grants are followed in memory (loaded now, then announced
	// and reconciled); Redis being down does not stop the start.
	rctx, stopRevocations := context.WithCancel(ctx)
	defer stopRevocations()
	revoked, err := revocation.Follow(rctx, rdb, cfg.Revocation, base.Log, base.Metrics)
	if err != nil {
		return fail(err)
	}
	verifier := tokens.NewVerifier(tokens.VerifierOptions{
		Source:      tokens.NewGRPCKeySource(authConn),
		Audiences:   []string{cfg.Resource},
		OnCache:     m.cache,
		Revocations: revoked,
	})
	// Keys are fetched in the background and refreshed every 5 minutes:
	// requests never wait for the auth-server (tokens/source.go).
	go verifier.KeepFresh(ctx)
	g, err := New(Deps{
		Config: cfg, Log: base.Log, Registry: disc.Registry(), Redis: rdb, Core: coreConn,
		// Each capability goes to the backend that serves it
		// (docs/architecture.md, "Which backend serves a capability").
		Backends: disc.Conns(),
		Verifier: verifier, Revocations: revoked, Metrics: m, Replica: session.NewID()[:16],
	})
	if err != nil {
		return fail(err)
	}
	disc.OnChange(func(reg *registry.Registry) {
		if err := g.UseRegistry(reg); err != nil {
			base.Log.Error("capability registry not served: the gateway keeps the previous tools", "err", err)
		}
	})
	// A registry installed while the gateway was being built.
	if err := g.UseRegistry(disc.Registry()); err != nil {
		base.Log.Error("capability registry not served: the gateway keeps the previous tools", "err", err)
	}
	// Shared dependencies are reported, never gating: a Redis or
	// capability-core outage answers 503 + Retry-After from every replica
	// instead of taking them all out of the Service.
	base.Ready.AddDependency("redis", rdb.Ping)
	base.Ready.AddDependency("capability-core", grpcx.HealthCheck(coreConn, ""))
	base.Ready.AddDependency("signing-keys", verifier.Ready)

	sctx, stop := context.WithCancel(ctx)
	defer stop()
	g.Subscribe(sctx)

	// Every request: an id, a trace, the latency histogram and one access-log
	// line (HTTP method, MCP method, tool, status, duration, client_id).
	public, err := base.PublicHTTP(g.Handler(), telemetry.HTTPOptions{Route: g.Route, Streaming: Streaming, AccessLog: base.Log})
	if err != nil {
		return fail(err)
	}
	h, err := app.NewHTTP(ctx, "http", cfg.HTTPAddr, public)
	if err != nil {
		return fail(err)
	}
	// Every write of an answer has STREAM_WRITE_TIMEOUT, as the streams'
	// writes do: an unread POST /mcp answer does not hold its goroutine,
	// connection and socket buffers for as long as the client keeps the
	// connection open.
	h.WriteTimeout = cfg.StreamWriteTimeout
	h.Server().RegisterOnShutdown(g.Shutdown)
	base.Log.Info("mcp gateway ready", "resource", cfg.Resource, "replica", g.replica, "tools", len(disc.Registry().Tools()))
	return base.Serve(ctx, onListen, h)
}

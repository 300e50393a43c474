// Package core wires capability-core: configuration, the gRPC server with
// its interceptors, the capability implementations and the admin listener.
package core

import (
	"context"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/reflect/protoregistry"

	capabilityv1 "github.com/tollgate/tollgate/proto/gen/tollgate/capability/v1"
	"github.com/tollgate/tollgate/services/capability-core/internal/config"
	"github.com/tollgate/tollgate/services/platform/app"
	"github.com/tollgate/tollgate/services/platform/capauth"
	"github.com/tollgate/tollgate/services/platform/grpcx"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/revocation"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// Run starts capability-core and blocks until ctx ends.
func Run(ctx context.Context, getenv func(string) string, stderr io.Writer, onListen app.Listening) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	base, err := app.NewBase(ctx, cfg.Common, stderr)
	if err != nil {
		return err
	}
	reg, err := registry.FromFiles(protoregistry.GlobalFiles)
	if err != nil {
		base.Close()
		return err
	}

	authConn, err := base.Dial(cfg.AuthGRPCAddr, "auth-server")
	if err != nil {
		base.Close()
		return err
	}
	defer authConn.Close()
	vo := tokens.VerifierOptions{
		Source:    tokens.NewGRPCKeySource(authConn),
		Audiences: []string{cfg.MCPResource, cfg.ActionsAudience},
	}
	var deps []Dependency
	if cfg.Redis.URL != "" {
		rdb, err := redisx.Open(ctx, cfg.Redis, redisx.WithLogger(base.Log), redisx.WithMetrics(base.Metrics))
		if err != nil {
			base.Close()
			return err
		}
		defer rdb.Close()
		if err := base.Instrument(rdb); err != nil {
			base.Close()
			return err
		}
		deps = append(deps, Dependency{Name: "redis", Check: rdb.Ping})
		base.Ready.AddDependency("redis", rdb.Ping)
		// Revoked grants are followed in memory (loaded now, then
		// announced and reconciled); Redis being down does not stop the start.
		rctx, stopRevocations := context.WithCancel(ctx)
		defer stopRevocations()
		revoked, err := revocation.Follow(rctx, rdb, cfg.Revocation, base.Log, base.Metrics)
		if err != nil {
			base.Close()
			return err
		}
		vo.Revocations = revoked
	} else {
		base.Log.Warn("REDIS_URL is not set: revoked grants are not followed here (development only; production requires Redis)")
	}
	verifier := tokens.NewVerifier(vo)
	// Keys are fetched in the background and refreshed every 5 minutes:
	// requests never wait for the auth-server (tokens/source.go).
	go verifier.KeepFresh(ctx)
	deps = append([]Dependency{{Name: "signing-keys", Check: verifier.Ready}}, deps...)
	// Shared dependencies are reported, never gating (see admin.Readiness):
	// capability-core needs Redis only for its health tool.
	base.Ready.AddDependency("signing-keys", verifier.Ready)

	// Every capability RPC needs the caller's verified token (unless an
	// exposure of it needs no scope); probes need none, and reflection is
	// the one stream served: clients such as grpcurl list services by it.
	auth := capauth.Options{
		Registry: reg, Verifier: verifier,
		Public:  []string{capauth.HealthCheck},
		Streams: []string{capauth.HealthWatch, capauth.Reflection},
	}
	srv := grpcx.NewServer(grpcx.ServerOptions{
		Logger:        base.Log,
		Registry:      base.Metrics,
		Telemetry:     base.Telemetry,
		StreamWorkers: cfg.StreamWorkers(),
		Unary:         []grpc.UnaryServerInterceptor{capauth.Unary(auth)},
		Stream:        []grpc.StreamServerInterceptor{capauth.Stream(auth)},
	})
	base.Ready.OnDrain(srv.Health.Shutdown) // grpc.health.v1 answers NOT_SERVING while draining
	capabilityv1.RegisterHealthServiceServer(srv, &Health{Service: "capability-core", Deps: deps})
	capabilityv1.RegisterIdentityServiceServer(srv, Identity{})
	g, err := app.NewGRPC(ctx, cfg.GRPCAddr, srv.Server)
	if err != nil {
		base.Close()
		return err
	}
	return base.Serve(ctx, onListen, g)
}

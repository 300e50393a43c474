// Package backend wires the example backend: configuration, token
// verification, the gRPC server (NotesService, reflection v1, health) and
// the admin listener. It is capability-core's wiring with one service of
// its own: a Go backend needs nothing more to be discovered by Tollgate.
package backend

import (
	"context"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	notesv1 "github.com/tollgate/tollgate/services/example-backend/gen/example/notes/v1"
	"github.com/tollgate/tollgate/services/example-backend/internal/config"
	"github.com/tollgate/tollgate/services/example-backend/internal/notes"
	"github.com/tollgate/tollgate/services/platform/app"
	"github.com/tollgate/tollgate/services/platform/capauth"
	"github.com/tollgate/tollgate/services/platform/grpcx"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/revocation"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// Run starts the example backend and blocks until ctx ends.
func Run(ctx context.Context, getenv func(string) string, stderr io.Writer, onListen app.Listening) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	// The scopes each RPC needs come from the options of the service this
	// process serves (its own descriptors), never from other packages
	// linked into the binary.
	reg, err := registry.New(notesv1.File_example_notes_v1_notes_proto.Services().ByName("NotesService"))
	if err != nil {
		return err
	}
	base, err := app.NewBase(ctx, cfg.Common, stderr)
	if err != nil {
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
	if cfg.Redis.URL != "" {
		rdb, err := redisx.Open(ctx, cfg.Redis, redisx.WithLogger(base.Log), redisx.WithMetrics(base.Metrics))
		if err != nil {
			base.Close()
			return err
		}
		defer rdb.Close()
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
	go verifier.KeepFresh(ctx)
	base.Ready.AddDependency("signing-keys", verifier.Ready)

	// Every NotesService call needs the caller's verified token with the
	// scopes its options require. The connectors read reflection and ask
	// grpc.health.v1 without a token; nothing else is open.
	auth := capauth.Options{
		Registry: reg, Verifier: verifier,
		Public:  []string{capauth.HealthCheck},
		Streams: []string{capauth.HealthWatch, capauth.Reflection},
	}
	var creds credentials.TransportCredentials // plaintext unless GRPC_TLS_* are set
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	srv := grpcx.NewServer(grpcx.ServerOptions{ // registers grpc.health.v1 and reflection (v1, v1alpha)
		Creds:         creds,
		Logger:        base.Log,
		Registry:      base.Metrics,
		Telemetry:     base.Telemetry,
		StreamWorkers: cfg.StreamWorkers(),
		Unary:         []grpc.UnaryServerInterceptor{capauth.Unary(auth)},
		Stream:        []grpc.StreamServerInterceptor{capauth.Stream(auth)},
	})
	base.Ready.OnDrain(srv.Health.Shutdown)
	notesv1.RegisterNotesServiceServer(srv, &notes.Service{Store: notes.NewStore(nil)})
	g, err := app.NewGRPC(ctx, cfg.GRPCAddr, srv.Server)
	if err != nil {
		base.Close()
		return err
	}
	return base.Serve(ctx, onListen, g)
}

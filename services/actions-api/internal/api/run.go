// Package api wires the actions-api: the GPT Actions REST API whose routes
// and OpenAPI document are built from the capability registry, each
// operation answered by capability-core over gRPC with the caller's token.
package api

import (
	"context"
	"io"

	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/tollgate/tollgate/proto/gen/tollgate/capability/v1" // registers the capabilities
	"github.com/tollgate/tollgate/services/actions-api/internal/config"
	"github.com/tollgate/tollgate/services/actions-api/internal/openapi"
	"github.com/tollgate/tollgate/services/platform/app"
	"github.com/tollgate/tollgate/services/platform/grpcx"
	"github.com/tollgate/tollgate/services/platform/ratelimit"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/revocation"
	"github.com/tollgate/tollgate/services/platform/telemetry"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// Capabilities is the registry of every capability linked into the binary.
func Capabilities() (*registry.Registry, error) {
	return registry.FromFiles(protoregistry.GlobalFiles)
}

// Run starts the actions-api and blocks until ctx ends.
func Run(ctx context.Context, getenv func(string) string, stderr io.Writer, onListen app.Listening) (err error) {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	reg, err := Capabilities()
	if err != nil {
		return err
	}
	doc, err := openapi.Build(reg, openapi.Options{ServerURL: cfg.PublicURL, OAuthBaseURL: cfg.OAuthBaseURL})
	if err != nil {
		return err
	}
	docJSON, err := doc.JSON()
	if err != nil {
		return err
	}
	base, err := app.NewBase(ctx, cfg.Common, stderr)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			base.Close()
		}
	}()
	authConn, err := grpcx.Dial(cfg.AuthGRPCAddr, grpcx.ClientOptions{Registry: base.Metrics, Name: "auth-server", Telemetry: base.Telemetry})
	if err != nil {
		return err
	}
	defer authConn.Close()
	coreConn, err := grpcx.Dial(cfg.CoreGRPCAddr, grpcx.ClientOptions{Registry: base.Metrics, Name: "capability-core", Telemetry: base.Telemetry})
	if err != nil {
		return err
	}
	defer coreConn.Close()
	rdb, err := redisx.New(cfg.Redis, redisx.WithLogger(base.Log), redisx.WithMetrics(base.Metrics))
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := base.Instrument(rdb); err != nil {
		return err
	}
	if cfg.Redis.CheckDurable {
		if err := rdb.CheckDurable(ctx); err != nil {
			return err
		}
	}
	// Revoked grants are followed in memory (loaded now, then announced
	// and reconciled); Redis being down does not stop the start.
	rctx, stopRevocations := context.WithCancel(ctx)
	defer stopRevocations()
	revoked, err := revocation.Follow(rctx, rdb, cfg.Revocation, base.Log, base.Metrics)
	if err != nil {
		return err
	}
	verifier := tokens.NewVerifier(tokens.VerifierOptions{
		Source: tokens.NewGRPCKeySource(authConn), Audiences: []string{cfg.Audience}, Revocations: revoked,
	})
	// Keys are fetched in the background and refreshed every 5 minutes:
	// requests never wait for the auth-server (tokens/source.go).
	go verifier.KeepFresh(ctx)
	// Shared dependencies are reported, never gating (see admin.Readiness).
	base.Ready.AddDependency("capability-core", grpcx.HealthCheck(coreConn, ""))
	base.Ready.AddDependency("signing-keys", verifier.Ready)
	base.Ready.AddDependency("redis", rdb.Ping)

	requests, duration, err := newMetrics(base.Metrics)
	if err != nil {
		return err
	}
	if err := (registry.Conns{registry.DefaultBackend: coreConn, "auth-server": authConn}).Check(reg); err != nil {
		return err
	}
	s := &server{
		cfg: cfg, log: base.Log, reg: reg, core: coreConn, verifier: verifier,
		// The connected-apps capability is the auth-server's own
		// (docs/architecture.md, "Which backend serves a capability").
		backends: registry.Conns{registry.DefaultBackend: coreConn, "auth-server": authConn},
		limiter:  ratelimit.New(rdb), doc: docJSON, requests: requests, duration: duration,
	}
	e, err := s.handler()
	if err != nil {
		return err
	}
	// observe (above) logs each request and names its route; the platform
	// middleware adds the request id, the trace and the latency histogram.
	public, err := base.PublicHTTP(e, telemetry.HTTPOptions{})
	if err != nil {
		return err
	}
	h, err := app.NewHTTP(ctx, "http", cfg.HTTPAddr, public)
	if err != nil {
		return err
	}
	return base.Serve(ctx, onListen, h)
}

// Package server wires the auth-server: configuration, signing keys, the
// client registry, Redis, the public OAuth/OIDC HTTP endpoints, the fleet
// gRPC API and the admin listener.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/go-jose/go-jose/v4"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/reflect/protoregistry"

	authv1 "github.com/tollgate/tollgate/proto/gen/tollgate/auth/v1"
	_ "github.com/tollgate/tollgate/proto/gen/tollgate/capability/v1" // registers the capabilities and their scopes
	"github.com/tollgate/tollgate/services/auth-server/internal/audit"
	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
	"github.com/tollgate/tollgate/services/auth-server/internal/config"
	"github.com/tollgate/tollgate/services/auth-server/internal/oauth"
	"github.com/tollgate/tollgate/services/platform/app"
	"github.com/tollgate/tollgate/services/platform/capauth"
	pconfig "github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/grpcx"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/revocation"
	"github.com/tollgate/tollgate/services/platform/telemetry"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// Run starts the auth-server and blocks until ctx ends. Start-up fails
// closed: every configuration, key and client-registry problem is listed.
func Run(ctx context.Context, getenv func(string) string, stderr io.Writer, onListen app.Listening) error {
	cfg, err := config.Load(getenv)
	var problems pconfig.Problems
	if err != nil {
		var ce *pconfig.Error
		if !errors.As(err, &ce) {
			return err
		}
		problems = append(problems, ce.Problems...)
	}
	var ring *tokens.KeyRing
	if cfg.SigningKeysDir != "" {
		if ring, err = tokens.LoadKeyDir(cfg.SigningKeysDir, cfg.SigningKeyActive, cfg.SigningKeyActiveES256); err != nil {
			problems.Addf("SIGNING_KEYS_DIR: %v", err)
		} else if !ring.Supports(jose.SignatureAlgorithm(cfg.AccessTokenAlg)) {
			problems.Addf("ACCESS_TOKEN_SIGNING_ALG: %s needs an EC P-256 key in SIGNING_KEYS_DIR", cfg.AccessTokenAlg)
		}
	}
	caps, err := Capabilities()
	if err != nil {
		problems.Addf("%v", err)
		caps, _ = registry.New()
	}
	rules := clients.Rules{Resources: cfg.Resources(), Production: cfg.Production(), Scopes: caps.ScopeNames()}
	static, cp := clients.LoadFile(cfg.ClientsFile, rules)
	for _, p := range cp {
		problems.Addf("CLIENTS_FILE: %s", p)
	}
	if err := problems.Err(); err != nil {
		return err
	}
	base, err := app.NewBase(ctx, cfg.Common, stderr)
	if err != nil {
		return err
	}
	// Open refuses a reachable Redis without persistence when durability
	// is required (production): refresh-token families must survive restarts.
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
	base.Ready.AddDependency("redis", rdb.Ping) // reported, never gating (see admin.Readiness)
	if static.Len() == 0 {
		base.Log.Warn("the static client registry is empty; only self-registered clients can sign in")
	}

	// Revoked grants are followed in memory by this replica too (userinfo,
	// introspection); Redis being down does not stop the start.
	rctx, stopRevocations := context.WithCancel(ctx)
	defer stopRevocations()
	revoked, err := revocation.Follow(rctx, rdb, cfg.Revocation, base.Log, base.Metrics)
	if err != nil {
		base.Close()
		return err
	}
	o, err := oauth.New(oauth.Options{
		Config: cfg, Ring: ring, Redis: rdb, Static: static, Log: base.Log, Metrics: base.Metrics,
		Audit: audit.New(stderr, cfg.Service), Revocations: revoked, Capabilities: caps,
	})
	if err != nil {
		base.Close()
		return fmt.Errorf("oauth: %w", err)
	}
	// The fleet's gRPC API. The key set is public (verifiers fetch it
	// before they can check anything); every other RPC needs a verified
	// access token with its scopes (capauth), and the only streams served
	// are the health watch and reflection.
	auth := capauth.Options{
		Registry: caps, Verifier: o.Verifier(),
		Public:  []string{capauth.HealthCheck, authv1.KeySetService_GetKeySet_FullMethodName},
		Streams: []string{capauth.HealthWatch, capauth.Reflection},
	}
	srv := grpcx.NewServer(grpcx.ServerOptions{
		Logger: base.Log, Registry: base.Metrics, Telemetry: base.Telemetry,
		Unary:  []grpc.UnaryServerInterceptor{capauth.Unary(auth)},
		Stream: []grpc.StreamServerInterceptor{capauth.Stream(auth)},
	})
	base.Ready.OnDrain(srv.Health.Shutdown) // grpc.health.v1 answers NOT_SERVING while draining
	authv1.RegisterKeySetServiceServer(srv, &KeySet{Issuer: cfg.Issuer, Ring: ring})
	authv1.RegisterGrantsServiceServer(srv, &Grants{OAuth: o})
	g, err := app.NewGRPC(ctx, cfg.GRPCAddr, srv.Server)
	if err != nil {
		base.Close()
		return err
	}
	// A rotated secret takes effect when the mounted registry changes.
	go static.Watch(ctx, cfg.ClientsFile, rules,
		cfg.ClientsReload, base.Log, o.CheckRegistry)
	public, err := base.PublicHTTP(o.Handler(), telemetry.HTTPOptions{Route: o.Route, AccessLog: base.Log})
	if err != nil {
		base.Close()
		return err
	}
	h, err := app.NewHTTP(ctx, "http", cfg.HTTPAddr, public)
	if err != nil {
		base.Close()
		return err
	}
	base.Log.Info("oauth provider ready", "issuer", cfg.Issuer, "static_clients", static.Len(),
		"active_key", ring.ActiveKeyID(), "upstream", cfg.Upstream.Issuer, "dcr", cfg.DCREnabled, "cimd", cfg.CIMDEnabled)
	return base.Serve(ctx, onListen, g, h)
}

// Capabilities is the capability registry linked into the binary: the
// auth-server supports the scopes its services declare (see
// registry.Registry.SupportedScopes).
func Capabilities() (*registry.Registry, error) {
	return registry.FromFiles(protoregistry.GlobalFiles)
}

// KeySet serves the fleet's verifiers.
type KeySet struct {
	authv1.UnimplementedKeySetServiceServer
	Issuer string
	Ring   *tokens.KeyRing
}

// GetKeySet returns the issuer and the public keys.
func (k *KeySet) GetKeySet(context.Context, *authv1.GetKeySetRequest) (*authv1.GetKeySetResponse, error) {
	return &authv1.GetKeySetResponse{Issuer: k.Issuer, JwksJson: k.Ring.PublicJWKSJSON(), ActiveKeyId: k.Ring.ActiveKeyID()}, nil
}

// Package server wires the auth-server: configuration, signing keys, the
// public OAuth/OIDC HTTP endpoints, the fleet gRPC API and the admin listener.
package server

import (
	"context"
	"io"
	"net/http"

	authv1 "github.com/tollgate/tollgate/proto/gen/tollgate/auth/v1"
	"github.com/tollgate/tollgate/services/auth-server/internal/config"
	"github.com/tollgate/tollgate/services/platform/app"
	"github.com/tollgate/tollgate/services/platform/grpcx"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// Run starts the auth-server and blocks until ctx ends.
func Run(ctx context.Context, getenv func(string) string, stderr io.Writer, onListen app.Listening) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	ring, err := tokens.LoadKeyDir(cfg.SigningKeysDir, cfg.SigningKeyActive)
	if err != nil {
		return err
	}
	base, err := app.NewBase(cfg.Common, stderr)
	if err != nil {
		return err
	}
	rdb, err := redisx.New(cfg.Redis)
	if err != nil {
		base.Close()
		return err
	}
	defer rdb.Close()
	base.Ready.Add("redis", rdb.Ping)

	srv := grpcx.NewServer(grpcx.ServerOptions{Logger: base.Log, Registry: base.Metrics})
	authv1.RegisterKeySetServiceServer(srv, &KeySet{Issuer: cfg.Issuer, Ring: ring})
	g, err := app.NewGRPC(cfg.GRPCAddr, srv.Server)
	if err != nil {
		base.Close()
		return err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /oauth/jwks", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(ring.PublicJWKSJSON())
	})
	h, err := app.NewHTTP("http", cfg.HTTPAddr, mux)
	if err != nil {
		base.Close()
		return err
	}
	return base.Serve(ctx, onListen, g, h)
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

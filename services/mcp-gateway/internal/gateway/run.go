// Package gateway wires the mcp-gateway.
package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"

	"github.com/tollgate/tollgate/services/mcp-gateway/internal/config"
	"github.com/tollgate/tollgate/services/platform/app"
	"github.com/tollgate/tollgate/services/platform/grpcx"
	"github.com/tollgate/tollgate/services/platform/redisx"
)

// Run starts the mcp-gateway and blocks until ctx ends.
func Run(ctx context.Context, getenv func(string) string, stderr io.Writer, onListen app.Listening) error {
	cfg, err := config.Load(getenv)
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
	coreConn, err := grpcx.Dial(cfg.CoreGRPCAddr, grpcx.ClientOptions{Registry: base.Metrics, Name: "capability-core"})
	if err != nil {
		base.Close()
		return err
	}
	defer coreConn.Close()
	base.Ready.Add("redis", rdb.Ping)
	base.Ready.Add("capability-core", grpcx.HealthCheck(coreConn, ""))

	mux := http.NewServeMux()
	prm := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"resource":                 cfg.Resource,
			"authorization_servers":    []string{cfg.Issuer},
			"bearer_methods_supported": []string{"header"},
		})
	}
	mux.HandleFunc("GET /.well-known/oauth-protected-resource/mcp", prm)
	mux.HandleFunc("GET /.well-known/oauth-protected-resource", prm)
	h, err := app.NewHTTP("http", cfg.HTTPAddr, mux)
	if err != nil {
		base.Close()
		return err
	}
	return base.Serve(ctx, onListen, h)
}

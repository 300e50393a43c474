// Package api wires the actions-api: REST routes built from the capability
// registry, each answered by capability-core over gRPC.
package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/tollgate/tollgate/proto/gen/tollgate/capability/v1" // registers the capabilities
	"github.com/tollgate/tollgate/services/actions-api/internal/config"
	"github.com/tollgate/tollgate/services/platform/app"
	"github.com/tollgate/tollgate/services/platform/fault"
	"github.com/tollgate/tollgate/services/platform/grpcx"
	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// Run starts the actions-api and blocks until ctx ends.
func Run(ctx context.Context, getenv func(string) string, stderr io.Writer, onListen app.Listening) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	base, err := app.NewBase(cfg.Common, stderr)
	if err != nil {
		return err
	}
	reg, err := registry.FromFiles(protoregistry.GlobalFiles)
	if err != nil {
		base.Close()
		return err
	}
	authConn, err := grpcx.Dial(cfg.AuthGRPCAddr, grpcx.ClientOptions{Registry: base.Metrics, Name: "auth-server"})
	if err != nil {
		base.Close()
		return err
	}
	defer authConn.Close()
	coreConn, err := grpcx.Dial(cfg.CoreGRPCAddr, grpcx.ClientOptions{Registry: base.Metrics, Name: "capability-core"})
	if err != nil {
		base.Close()
		return err
	}
	defer coreConn.Close()
	verifier := tokens.NewVerifier(tokens.VerifierOptions{Source: tokens.NewGRPCKeySource(authConn), Audiences: []string{cfg.Audience}})
	base.Ready.Add("capability-core", grpcx.HealthCheck(coreConn, ""))
	base.Ready.Add("signing-keys", verifier.Ready)

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	for _, a := range reg.Actions() {
		e.Add(a.Method, a.Path, handler(a, coreConn, verifier))
	}
	h, err := app.NewHTTP("http", cfg.HTTPAddr, e)
	if err != nil {
		base.Close()
		return err
	}
	return base.Serve(ctx, onListen, h)
}

// Error is the one JSON error shape of the API.
type Error struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func handler(a *registry.Action, core grpc.ClientConnInterface, v *tokens.Verifier) echo.HandlerFunc {
	c := a.Capability
	return func(ec echo.Context) error {
		r := ec.Request()
		ctx := r.Context()
		if len(a.RequiredScopes) > 0 {
			raw, err := tokens.FromRequest(r)
			if err != nil {
				return ec.JSON(http.StatusUnauthorized, Error{"invalid_token", err.Error()})
			}
			claims, err := v.Verify(ctx, raw)
			if err != nil {
				return ec.JSON(http.StatusUnauthorized, Error{"invalid_token", err.Error()})
			}
			if missing := claims.MissingScopes(a.RequiredScopes); len(missing) > 0 {
				return ec.JSON(http.StatusForbidden, Error{"insufficient_scope", "missing scopes: " + strings.Join(missing, " ")})
			}
			ctx = tokens.WithToken(ctx, raw)
		}
		in, err := c.DecodeQuery(r.URL.Query())
		if err != nil {
			var fe *fault.Error
			if errors.As(err, &fe) {
				return ec.JSON(http.StatusBadRequest, Error{"invalid_request", fe.Msg})
			}
			return err
		}
		out, err := c.Invoke(ctx, core, in)
		if err != nil {
			code, name := fault.HTTPStatus(status.Code(err))
			return ec.JSON(code, Error{name, status.Convert(err).Message()})
		}
		b, err := registry.MarshalOutput(out)
		if err != nil {
			return err
		}
		return ec.JSONBlob(http.StatusOK, b)
	}
}

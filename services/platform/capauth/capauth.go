// Package capauth is the authentication rule of every gRPC server that
// serves capabilities (capability-core, the auth-server's GrantsService):
// the caller's own access token, forwarded by a connector in the
// "authorization" metadata, is verified again here — signature, issuer,
// audience, lifetime, revocation — and must carry the scopes that every
// exposure of the RPC requires (derived from the registry's options).
//
// What needs no token is listed explicitly (Options.Public); a streaming
// RPC is refused unless it is listed in Options.Streams. Nothing is open
// by default: a service registered later, or a streaming method added to
// the server, needs a verified token or is refused.
package capauth

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc"

	"github.com/tollgate/tollgate/services/platform/fault"
	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// Well-known methods a server may list in Options.
const (
	// HealthCheck is grpc.health.v1 Check (unary): probes carry no token.
	HealthCheck = "/grpc.health.v1.Health/Check"
	// HealthWatch is grpc.health.v1 Watch (server streaming).
	HealthWatch = "/grpc.health.v1.Health/Watch"
	// Reflection is every method of gRPC server reflection (v1 and
	// v1alpha, bidirectional streams). It discloses descriptors, never
	// data; list it only where clients discover services by it.
	Reflection = "/grpc.reflection."
)

// Options say what a server lets through without a token.
type Options struct {
	// Registry gives each capability RPC its scopes. An RPC is callable
	// without a token only if one of its exposures needs no scope.
	Registry *registry.Registry
	// Verifier checks the forwarded access tokens.
	Verifier *tokens.Verifier
	// Public are unary methods callable without a token: full method
	// names ("/pkg.Service/Method"), or prefixes ending in "/" or "."
	// that match a whole service or package.
	Public []string
	// Streams are the streaming methods served (same forms as Public),
	// without a token; every other streaming call is refused with
	// PermissionDenied. Capabilities are never streaming (the registry
	// refuses them).
	Streams []string
}

// policy is what a caller must present to call one RPC.
type policy struct {
	public bool
	scopes []string // the scopes every exposure of the RPC requires
}

// policies derives each RPC's policy from its exposure options: an RPC is
// public only if one of its exposures needs no scope; otherwise the caller
// must hold the scopes that all exposures require. RPCs without exposure
// options (and unknown methods) need a verified token.
func policies(reg *registry.Registry) map[string]policy {
	out := map[string]policy{}
	if reg == nil {
		return out
	}
	for _, c := range reg.Capabilities() {
		var sets [][]string
		for _, t := range c.Tools {
			sets = append(sets, t.RequiredScopes)
		}
		if c.Action != nil {
			sets = append(sets, c.Action.RequiredScopes)
		}
		p := policy{scopes: sets[0]}
		for _, s := range sets {
			if len(s) == 0 {
				p = policy{public: true}
				break
			}
			p.scopes = intersect(p.scopes, s)
		}
		out[c.FullMethod] = p
	}
	return out
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		for _, y := range b {
			if x == y {
				out = append(out, x)
				break
			}
		}
	}
	return out
}

// matches reports whether method is one of list (full names or prefixes).
func matches(list []string, method string) bool {
	for _, m := range list {
		if m == method || (strings.HasSuffix(m, "/") || strings.HasSuffix(m, ".")) && strings.HasPrefix(method, m) {
			return true
		}
	}
	return false
}

// Unary verifies, on every RPC that needs one, the caller's access token
// and puts its claims in the context (tokens.FromContext).
func Unary(o Options) grpc.UnaryServerInterceptor {
	pol := policies(o.Registry)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if matches(o.Public, info.FullMethod) {
			return h(ctx, req)
		}
		p := pol[info.FullMethod]
		raw, err := tokens.FromIncoming(ctx)
		if errors.Is(err, tokens.ErrNoToken) && p.public {
			return h(ctx, req)
		}
		if err != nil {
			return nil, fault.Unauthenticated("a bearer access token is required in the authorization metadata")
		}
		claims, err := o.Verifier.Verify(ctx, raw)
		switch {
		case errors.Is(err, tokens.ErrKeysUnavailable):
			return nil, fault.Unavailable(err, "cannot verify tokens right now")
		case err != nil:
			return nil, fault.Unauthenticated("access token rejected: %s", strings.TrimPrefix(err.Error(), tokens.ErrInvalidToken.Error()+": "))
		}
		if missing := claims.MissingScopes(p.scopes); len(missing) > 0 {
			return nil, fault.PermissionDenied("missing scopes: %s", strings.Join(missing, " "))
		}
		return h(tokens.NewContext(ctx, claims), req)
	}
}

// Stream refuses every streaming call not listed in o.Streams.
func Stream(o Options) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if matches(o.Streams, info.FullMethod) {
			return h(srv, ss)
		}
		return fault.ToStatus(fault.PermissionDenied("streaming method %s is not served", info.FullMethod))
	}
}

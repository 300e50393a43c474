package core

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc"

	"github.com/tollgate/tollgate/services/platform/fault"
	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

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

// Authenticate verifies, on every non-public RPC, the caller's access token
// forwarded in the "authorization" metadata. capability-core trusts no
// connector: it checks signature, issuer, audience, lifetime and scopes
// itself and puts the claims in the context.
func Authenticate(reg *registry.Registry, v *tokens.Verifier) grpc.UnaryServerInterceptor {
	pol := policies(reg)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if strings.HasPrefix(info.FullMethod, "/grpc.") {
			return h(ctx, req) // health and reflection
		}
		p := pol[info.FullMethod]
		raw, err := tokens.FromIncoming(ctx)
		if errors.Is(err, tokens.ErrNoToken) && p.public {
			return h(ctx, req)
		}
		if err != nil {
			return nil, fault.Unauthenticated("a bearer access token is required in the authorization metadata")
		}
		claims, err := v.Verify(ctx, raw)
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

package server

import (
	"context"
	"errors"

	"google.golang.org/protobuf/types/known/timestamppb"

	authv1 "github.com/tollgate/tollgate/proto/gen/tollgate/auth/v1"
	"github.com/tollgate/tollgate/services/auth-server/internal/oauth"
	"github.com/tollgate/tollgate/services/auth-server/internal/store"
	"github.com/tollgate/tollgate/services/platform/fault"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// Grants serves the connected-apps capability (tollgate.auth.v1.GrantsService).
// The subject is always the verified access token's (put in the context
// by capauth), never a request field.
type Grants struct {
	authv1.UnimplementedGrantsServiceServer
	OAuth *oauth.Server
}

// caller is the verified principal, which must hold scope (checked here
// too, whatever the exposure options say).
func caller(ctx context.Context, scope string) (*tokens.Claims, error) {
	c, ok := tokens.FromContext(ctx)
	if !ok || c.Subject == "" {
		return nil, fault.Unauthenticated("no verified principal")
	}
	if missing := c.MissingScopes([]string{scope}); len(missing) > 0 {
		return nil, fault.PermissionDenied("missing scopes: %s", scope)
	}
	return c, nil
}

func storeFault(err error) error {
	if errors.Is(err, store.ErrUnavailable) {
		return fault.Unavailable(err, "the grant store is unavailable; retry later")
	}
	return err
}

// ownGrantLive refuses a caller whose token's own grant no longer vouches
// for its sub (oauth.TokenGrant): a grant that is gone — revoked, expired,
// or deleted by the provider-change purge (docs/guides/upstream-idp.md),
// after which the sub may be another user's — or one made by a sign-in at
// an upstream issuer no longer accepted. Both are Unauthenticated: the
// token is signed and unexpired, but no live grant stands behind it.
func (g *Grants) ownGrantLive(ctx context.Context, c *tokens.Claims) error {
	switch st, err := g.OAuth.TokenGrant(ctx, c.Subject, c.GrantID); {
	case err != nil:
		return storeFault(err)
	case st == store.TokenGrantRefused:
		return fault.Unauthenticated("this access token's grant comes from a sign-in at an identity provider this server no longer accepts; sign in again")
	case st != store.TokenGrantLive:
		return fault.Unauthenticated("this access token's grant has ended (revoked, expired or removed); sign in again")
	}
	return nil
}

// ListGrants returns the caller's grants.
func (g *Grants) ListGrants(ctx context.Context, _ *authv1.ListGrantsRequest) (*authv1.ListGrantsResponse, error) {
	c, err := caller(ctx, "connections.read")
	if err != nil {
		return nil, err
	}
	if err := g.ownGrantLive(ctx, c); err != nil {
		return nil, err
	}
	conns, err := g.OAuth.Connections(ctx, c.Subject)
	if err != nil {
		return nil, storeFault(err)
	}
	out := &authv1.ListGrantsResponse{Connections: make([]*authv1.Connection, len(conns))}
	for i, x := range conns {
		out.Connections[i] = &authv1.Connection{
			GrantId: x.ID, ClientId: x.ClientID, ClientName: x.ClientName, ClientUri: x.ClientURI,
			Scopes: x.Scopes, Audiences: x.Audiences,
			CreatedAt: timestamppb.New(x.Created), LastUsedAt: timestamppb.New(x.LastUsed),
			Current: c.GrantID != "" && c.GrantID == x.ID,
		}
	}
	return out, nil
}

// RevokeGrant revokes one of the caller's grants.
func (g *Grants) RevokeGrant(ctx context.Context, in *authv1.RevokeGrantRequest) (*authv1.RevokeGrantResponse, error) {
	c, err := caller(ctx, "connections.revoke")
	if err != nil {
		return nil, err
	}
	if err := g.ownGrantLive(ctx, c); err != nil {
		return nil, err
	}
	if in.GetGrantId() == "" {
		return nil, fault.InvalidArgument("grant_id is required")
	}
	if !store.ValidGrantID(in.GetGrantId()) {
		// Malformed, so nobody's grant: say what a grant id looks like
		// instead of echoing the value (it may be kilobytes long).
		return nil, fault.InvalidArgument("grant_id is not a grant id: up to 128 letters, digits, '-' or '_' — the grant_id that listConnections (GET /actions/connections) or the MCP tool connections.list gives, or the access token's grant_id claim")
	}
	switch err := g.OAuth.Disconnect(ctx, c.Subject, in.GetGrantId()); {
	case errors.Is(err, oauth.ErrConnectionNotFound):
		return nil, fault.NotFound("no connected app has grant_id %q", in.GetGrantId())
	case err != nil:
		return nil, storeFault(err)
	}
	return &authv1.RevokeGrantResponse{GrantId: in.GetGrantId(), Revoked: true}, nil
}

package core

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	capabilityv1 "github.com/tollgate/tollgate/proto/gen/tollgate/capability/v1"
	"github.com/tollgate/tollgate/services/platform/fault"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// Identity implements the Profile and Session capabilities from the
// verified claims that the capauth interceptor put in the context.
type Identity struct {
	capabilityv1.UnimplementedIdentityServiceServer
}

func principal(ctx context.Context) (*tokens.Claims, error) {
	c, ok := tokens.FromContext(ctx)
	if !ok {
		return nil, fault.Unauthenticated("no verified principal")
	}
	return c, nil
}

// GetProfile returns the caller's OIDC profile.
func (Identity) GetProfile(ctx context.Context, _ *capabilityv1.GetProfileRequest) (*capabilityv1.GetProfileResponse, error) {
	c, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	p := c.Profile
	return &capabilityv1.GetProfileResponse{
		Sub: c.Subject, Name: p.Name, GivenName: p.GivenName, FamilyName: p.FamilyName,
		PreferredUsername: p.PreferredUsername, Email: p.Email, EmailVerified: p.EmailVerified,
	}, nil
}

// GetSession returns what the caller's token grants.
func (Identity) GetSession(ctx context.Context, _ *capabilityv1.GetSessionRequest) (*capabilityv1.GetSessionResponse, error) {
	c, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	aud := ""
	if len(c.Audience) > 0 {
		aud = c.Audience[0]
	}
	return &capabilityv1.GetSessionResponse{
		Subject: c.Subject, ClientId: c.ClientID, Audience: aud, Scopes: c.Scopes,
		IssuedAt: timestamppb.New(c.IssuedAt), ExpiresAt: timestamppb.New(c.Expiry),
	}, nil
}

// Package tokens is the fleet's access-token contract: the claims the
// auth-server signs (RFC 9068 JWT access tokens, RS256 or ES256) and the verifier
// that mcp-gateway, actions-api and capability-core use to check them with
// the key set the auth-server publishes over gRPC.
package tokens

import (
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// AccessTokenType is the JOSE "typ" of access tokens (RFC 9068).
const AccessTokenType = "at+jwt"

// Profile is the OIDC profile carried in access and ID tokens.
type Profile struct {
	Name              string `json:"name,omitempty"`
	GivenName         string `json:"given_name,omitempty"`
	FamilyName        string `json:"family_name,omitempty"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	Email             string `json:"email,omitempty"`
	EmailVerified     bool   `json:"email_verified,omitempty"`
}

// AccessClaims are the private claims of an access token, next to the
// registered ones (iss, sub, aud, exp, iat, nbf, jti).
type AccessClaims struct {
	ClientID string `json:"client_id"`
	Scope    string `json:"scope,omitempty"`
	AuthTime int64  `json:"auth_time,omitempty"`
	// GrantID identifies the grant (the authorization the user gave one
	// client) that issued the token; it stays the same across refresh-token
	// rotation, so revoking the grant refuses every access token it minted
	// (services/platform/revocation). The name is the grant_id of OAuth 2.0
	// Grant Management (draft-ietf-oauth-grant-management); RFC 9068 defines
	// no such claim and OIDC's sid names a login session, not a grant.
	GrantID string `json:"grant_id,omitempty"`
	Profile
}

// Claims is a verified access token.
type Claims struct {
	Issuer   string
	Subject  string
	Audience []string
	ClientID string
	Scopes   []string
	ID       string
	// GrantID is the grant_id claim; empty on tokens issued before it existed.
	GrantID   string
	IssuedAt  time.Time
	NotBefore time.Time
	Expiry    time.Time
	Profile   Profile
	// Raw is the token itself, to forward to capability-core.
	Raw string
	// KeyID is the kid of the key that signed the token (Verifier.Publishes
	// tells whether the key set still holds that key).
	KeyID string
	// signer is the published key the signature was checked with.
	signer jose.JSONWebKey
	// bearer is "Bearer " + Raw, the authorization metadata WithBearer
	// sends, built once when the token is verified; Raw is its tail.
	bearer string
}

func newClaims(raw string, std jwt.Claims, priv AccessClaims) *Claims {
	c := &Claims{
		Issuer:   std.Issuer,
		Subject:  std.Subject,
		Audience: []string(std.Audience),
		ClientID: priv.ClientID,
		Scopes:   strings.Fields(priv.Scope),
		ID:       std.ID,
		GrantID:  priv.GrantID,
		Profile:  priv.Profile,
	}
	c.bearer = bearerPrefix + raw
	c.Raw = c.bearer[len(bearerPrefix):]
	if std.IssuedAt != nil {
		c.IssuedAt = std.IssuedAt.Time()
	}
	if std.NotBefore != nil {
		c.NotBefore = std.NotBefore.Time()
	}
	if std.Expiry != nil {
		c.Expiry = std.Expiry.Time()
	}
	return c
}

// MissingScopes returns the scopes of required that the token lacks.
func (c *Claims) MissingScopes(required []string) []string {
	var missing []string
	for _, s := range required {
		if !slices.Contains(c.Scopes, s) {
			missing = append(missing, s)
		}
	}
	return missing
}

// HasAudience reports whether aud is one of the token's audiences.
func (c *Claims) HasAudience(aud string) bool { return slices.Contains(c.Audience, aud) }

package idp

import (
	"net/url"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// client adapts a ClientSpec to op.Client: a web application using the
// authorization code flow only, opaque access tokens, ID tokens carrying the
// profile claims as well.
type client struct {
	spec     ClientSpec
	loginURL string // issuer + /login
	idTTL    time.Duration
}

var _ op.Client = (*client)(nil)

func (c *client) GetID() string                       { return c.spec.ClientID }
func (c *client) RedirectURIs() []string              { return c.spec.RedirectURIs }
func (c *client) PostLogoutRedirectURIs() []string    { return nil }
func (c *client) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType        { return []oidc.GrantType{oidc.GrantTypeCode} }
func (c *client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration      { return c.idTTL }

// DevMode lets public test clients use http redirect URIs; confidential
// clients may anyway (code flow).
func (c *client) DevMode() bool { return true }

func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// IsScopeAllowed refuses scopes beyond the standard OpenID ones (op keeps
// openid, profile, email, phone, address and offline_access itself).
func (c *client) IsScopeAllowed(string) bool { return false }

// IDTokenUserinfoClaimsAssertion puts the profile claims in the ID token
// even when an access token is issued.
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *client) ClockSkew() time.Duration             { return 0 }

func (c *client) AuthMethod() oidc.AuthMethod {
	switch c.spec.AuthMethod {
	case "none":
		return oidc.AuthMethodNone
	case "client_secret_post":
		return oidc.AuthMethodPost
	default:
		return oidc.AuthMethodBasic
	}
}

func (c *client) LoginURL(authRequestID string) string {
	return c.loginURL + "?" + url.Values{"authRequestID": {authRequestID}}.Encode()
}

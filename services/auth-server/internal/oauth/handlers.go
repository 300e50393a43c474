package oauth

import (
	"context"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
)

// fosite asks every token endpoint handler to populate every token
// response, and its handlers answer a grant they do not handle with
// errorsx.WithStack(fosite.ErrUnknownRequest): a stack trace per handler
// and request, 1.3 % of a refresh's CPU (docs/benchmarks/auth-server.md).
// These wrappers answer the plain sentinel when the handler's own
// CanHandleTokenEndpointRequest says no — the check the handler makes
// first — and call the handler otherwise; every other method is the
// handler's.

type codeGrantHandler struct {
	*oauth2.AuthorizeExplicitGrantHandler
}

func codeGrantFactory(c fosite.Configurator, storage, strategy any) any {
	return codeGrantHandler{compose.OAuth2AuthorizeExplicitFactory(c, storage, strategy).(*oauth2.AuthorizeExplicitGrantHandler)}
}

func (h codeGrantHandler) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	return h.AuthorizeExplicitGrantHandler.PopulateTokenEndpointResponse(ctx, r, resp)
}

type refreshGrantHandler struct {
	*oauth2.RefreshTokenGrantHandler
}

func refreshGrantFactory(c fosite.Configurator, storage, strategy any) any {
	return refreshGrantHandler{compose.OAuth2RefreshTokenGrantFactory(c, storage, strategy).(*oauth2.RefreshTokenGrantHandler)}
}

func (h refreshGrantHandler) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	return h.RefreshTokenGrantHandler.PopulateTokenEndpointResponse(ctx, r, resp)
}

type oidcCodeHandler struct {
	*openid.OpenIDConnectExplicitHandler
}

func oidcCodeFactory(c fosite.Configurator, storage, strategy any) any {
	return oidcCodeHandler{compose.OpenIDConnectExplicitFactory(c, storage, strategy).(*openid.OpenIDConnectExplicitHandler)}
}

func (h oidcCodeHandler) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	return h.OpenIDConnectExplicitHandler.PopulateTokenEndpointResponse(ctx, r, resp)
}

var (
	_ fosite.AuthorizeEndpointHandler = codeGrantHandler{}
	_ fosite.TokenEndpointHandler     = codeGrantHandler{}
	_ fosite.TokenEndpointHandler     = refreshGrantHandler{}
	_ fosite.AuthorizeEndpointHandler = oidcCodeHandler{}
	_ fosite.TokenEndpointHandler     = oidcCodeHandler{}
)

package oauth

import (
	"context"
	"strings"

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

// populateIfHandled is each wrapper's PopulateTokenEndpointResponse: the
// plain fosite.ErrUnknownRequest when h cannot handle r, else h's own.
func populateIfHandled(ctx context.Context, h fosite.TokenEndpointHandler, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	return h.PopulateTokenEndpointResponse(ctx, r, resp)
}

type codeGrantHandler struct {
	*oauth2.AuthorizeExplicitGrantHandler
}

func codeGrantFactory(c fosite.Configurator, storage, strategy any) any {
	return codeGrantHandler{compose.OAuth2AuthorizeExplicitFactory(c, storage, strategy).(*oauth2.AuthorizeExplicitGrantHandler)}
}

func (h codeGrantHandler) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	return populateIfHandled(ctx, h.AuthorizeExplicitGrantHandler, r, resp)
}

type refreshGrantHandler struct {
	*oauth2.RefreshTokenGrantHandler
}

func refreshGrantFactory(c fosite.Configurator, storage, strategy any) any {
	return refreshGrantHandler{compose.OAuth2RefreshTokenGrantFactory(c, storage, strategy).(*oauth2.RefreshTokenGrantHandler)}
}

// HandleTokenEndpointRequest is fosite's refresh check, then RFC 6749 §6:
// a scope named on a refresh request must have been granted. fosite's
// handler replaces the requested scope with the grant's without looking,
// so a request for more than the grant got 200 with the grant's scope
// instead of invalid_scope (§5.2). A scope that names fewer scopes is
// still answered with the grant's whole scope (§3.3 lets the server
// ignore it; the response's scope says what was issued): narrowing would
// narrow the stored grant too, and §6 wants the new refresh token's scope
// identical to the old one's. Nothing is written before this check
// (fosite rotates in PopulateTokenEndpointResponse), so a refused request
// leaves the refresh token as it was.
func (h refreshGrantHandler) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if err := h.RefreshTokenGrantHandler.HandleTokenEndpointRequest(ctx, r); err != nil {
		return err
	}
	for _, sc := range strings.Fields(r.GetRequestForm().Get("scope")) {
		if !r.GetGrantedScopes().Has(sc) {
			return fosite.ErrInvalidScope.WithHintf("The scope '%s' was not granted to this grant: a refresh may ask for the granted scopes only (RFC 6749 §6); sign in again to get more.", sc)
		}
	}
	return nil
}

func (h refreshGrantHandler) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	return populateIfHandled(ctx, h.RefreshTokenGrantHandler, r, resp)
}

type oidcCodeHandler struct {
	*openid.OpenIDConnectExplicitHandler
}

func oidcCodeFactory(c fosite.Configurator, storage, strategy any) any {
	return oidcCodeHandler{compose.OpenIDConnectExplicitFactory(c, storage, strategy).(*openid.OpenIDConnectExplicitHandler)}
}

func (h oidcCodeHandler) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	return populateIfHandled(ctx, h.OpenIDConnectExplicitHandler, r, resp)
}

var (
	_ fosite.AuthorizeEndpointHandler = codeGrantHandler{}
	_ fosite.TokenEndpointHandler     = codeGrantHandler{}
	_ fosite.TokenEndpointHandler     = refreshGrantHandler{}
	_ fosite.AuthorizeEndpointHandler = oidcCodeHandler{}
	_ fosite.TokenEndpointHandler     = oidcCodeHandler{}
)

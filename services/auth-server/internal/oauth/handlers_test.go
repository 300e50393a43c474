package oauth

import (
	"context"
	"errors"
	"testing"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
)

// TestOIDCCodeHandlerTokenRequest: the OpenID Connect code handler's token
// request step answers what fosite's answers — ErrUnknownRequest, which
// fosite's NewAccessRequest skips — but as the plain sentinel, without
// fosite's stack trace, for code grants (which it says it handles) as for
// anything else.
func TestOIDCCodeHandlerTokenRequest(t *testing.T) {
	ctx := context.Background()
	inner := &openid.OpenIDConnectExplicitHandler{}
	h := oidcCodeHandler{inner}
	for _, grant := range []string{"authorization_code", "refresh_token"} {
		r := fosite.NewAccessRequest(NewSession())
		r.GrantTypes = fosite.Arguments{grant}
		want := inner.HandleTokenEndpointRequest(ctx, r)
		if !errors.Is(want, fosite.ErrUnknownRequest) {
			t.Fatalf("%s: fosite's handler now answers %v: check the wrapper still does what it does", grant, want)
		}
		if got := h.HandleTokenEndpointRequest(ctx, r); got != fosite.ErrUnknownRequest {
			t.Errorf("%s: HandleTokenEndpointRequest = %v, want the plain fosite.ErrUnknownRequest", grant, got)
		}
	}
	r := fosite.NewAccessRequest(NewSession())
	r.GrantTypes = fosite.Arguments{"authorization_code"}
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		t.Error("the handler no longer handles code grants: fosite would not call it")
	}
}

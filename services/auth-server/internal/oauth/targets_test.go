package oauth

import (
	"errors"
	"testing"

	"github.com/ory/fosite"

	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
)

// TestTargetsAllowedTo: the token endpoint's invalid_target for a grant
// whose resource its client may no longer use (targetStrategy, as fosite
// applies it to a refresh) says what the client may use and where that is
// set — its own resources, an operator-registered client's from
// CLIENTS_FILE, a self-registered one's from DYNAMIC_CLIENT_RESOURCES,
// "none" for an empty list (RFC 8707 §2); before, it named only the
// refused resource. Another error is left as it is.
func TestTargetsAllowedTo(t *testing.T) {
	const mcp, actions = "https://mcp.example/mcp", "https://mcp.example/actions"
	for _, tc := range []struct {
		client *clients.Client
		want   string
	}{
		{&clients.Client{ID: "s", Kind: clients.KindStatic, Resources: []string{mcp}},
			`The resource "` + actions + `" is not allowed for this client: it may use ` + mcp + ` (its resources in CLIENTS_FILE).`},
		{&clients.Client{ID: "d", Kind: clients.KindDynamic, Resources: []string{mcp}},
			`The resource "` + actions + `" is not allowed for this client: a self-registered client may use ` + mcp + ` (the auth-server's DYNAMIC_CLIENT_RESOURCES).`},
		{&clients.Client{ID: "m", Kind: clients.KindMetadata},
			`The resource "` + actions + `" is not allowed for this client: a self-registered client may use none (the auth-server's DYNAMIC_CLIENT_RESOURCES).`},
	} {
		ar := fosite.NewAccessRequest(NewSession())
		ar.Client = tc.client
		err := targetsAllowedTo(ar, targetStrategy(tc.client.GetAudience(), []string{actions}))
		rfc := fosite.ErrorToRFC6749Error(err)
		if rfc.ErrorField != "invalid_target" || rfc.CodeField != 400 || rfc.HintField != tc.want {
			t.Errorf("%s client: %d %s %q, want 400 invalid_target %q", tc.client.Kind, rfc.CodeField, rfc.ErrorField, rfc.HintField, tc.want)
		}
	}
	// Without the client (fosite's authorization request's audience), the
	// client's list alone.
	if rfc := fosite.ErrorToRFC6749Error(targetStrategy([]string{mcp}, []string{actions})); rfc.HintField != `The resource "`+actions+`" is not allowed for this client: it may use `+mcp+`.` {
		t.Errorf("targetStrategy: %q", rfc.HintField)
	}
	other := fosite.ErrInvalidGrant.WithHint("expired")
	ar := fosite.NewAccessRequest(NewSession())
	ar.Client = &clients.Client{ID: "s", Kind: clients.KindStatic}
	if err := targetsAllowedTo(ar, other); !errors.Is(err, fosite.ErrInvalidGrant) || fosite.ErrorToRFC6749Error(err).HintField != "expired" {
		t.Errorf("another error: %v, want it unchanged", err)
	}
}

package server_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestSelfRegisteredClientResources: a client that registered itself (RFC
// 7591) or is known by its Client ID Metadata Document may be issued tokens
// for DYNAMIC_CLIENT_RESOURCES only, by default the MCP resource. The MCP
// resource (named, through its legacy SSE identifier, or by default) works
// end to end; the Actions audience is refused with invalid_target (RFC
// 8707 §2), sent back to the verified redirect URI with state and iss (RFC
// 6749 §4.1.2.1, RFC 9207). Widened to the Actions audience, the same
// registration gets an Actions token; narrowed again, the setting holds for
// it at its next request: its unredeemed Actions code and its Actions
// refresh token are refused with invalid_target at the token endpoint,
// while its MCP grant keeps working. An operator-registered client keeps
// the resources of its entry.
func TestSelfRegisteredClientResources(t *testing.T) {
	f := startFleet(t, nil)
	mcp, actions := f.Base+"/mcp", f.Base+"/actions"
	redirect := "http://127.0.0.1:8981/dcr-resources-callback"
	// Confidential, so that its approval is remembered for its loopback
	// redirect URI (RFC 8252 §8.6: a public one's is not).
	st, reg := register(t, f, `{"redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"client_secret_basic","client_name":"MCP app"}`)
	if st != http.StatusCreated {
		t.Fatalf("register: %d %v", st, reg)
	}
	c := devClient{ClientID: reg["client_id"].(string), ClientSecret: reg["client_secret"].(string), RedirectURIs: []string{redirect}, AuthMethod: "client_secret_basic"}

	// The MCP resource: named, through /sse, and by default.
	var mcpGrant tokenResponse
	for i, res := range []string{mcp, f.Base + "/sse", ""} {
		a := newAuthRequest(c)
		a.Resource = res
		var code string
		if i == 0 {
			b, p := consentPage(t, f, a)
			code = approve(t, b, p)
		} else {
			code = f.authorize(a) // the approval of the MCP resource is remembered
		}
		tr := f.exchange(c, a, code)
		if tr.Status != http.StatusOK {
			t.Fatalf("resource %q: token %d %s %s", res, tr.Status, tr.Error, tr.Description)
		}
		if _, err := f.Verifier(mcp).Verify(ctxT(t), tr.AccessToken); err != nil {
			t.Fatalf("resource %q: not an MCP token: %v", res, err)
		}
		mcpGrant = tr
	}

	// The Actions audience is refused before sign-in, back to the client.
	refusedAtAuthorize := func(t *testing.T, c devClient) {
		t.Helper()
		a := newAuthRequest(c)
		a.Resource = actions
		p := newBrowser(t, a.RedirectURI, f.IdP.Issuer).get(a.URL(f.Base))
		if p.Location == nil || p.Location.Query().Get("error") != "invalid_target" || p.Location.Query().Get("state") != a.State || p.Location.Query().Get("iss") != f.Base {
			t.Errorf("Actions audience at authorize: %d %v, want a redirect to %s with invalid_target, state and iss", p.Status, p.Location, a.RedirectURI)
			return
		}
		// The description says what it may use and what sets that.
		want := "resource is not allowed for this client: a self-registered client may use " + mcp + " (the auth-server's DYNAMIC_CLIENT_RESOURCES)"
		if got := p.Location.Query().Get("error_description"); got != want {
			t.Errorf("Actions audience at authorize: error_description %q, want %q", got, want)
		}
	}
	refusedAtAuthorize(t, c)
	// At the token endpoint an MCP grant cannot be turned into an Actions
	// token; the description names the one resource the request may name,
	// the grant's (RFC 8707 §2), and not the refused value.
	for _, rs := range [][]string{{actions}, {mcp, mcp}} {
		want := "The resource parameter does not match the grant's resource: name " + mcp + ", or none."
		if len(rs) > 1 {
			want = "Only one resource parameter is supported: name this grant's resource, " + mcp + ", or none."
		}
		if tr := f.token(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {mcpGrant.RefreshToken}, "resource": rs}); tr.Status != http.StatusBadRequest || tr.Error != "invalid_target" || !strings.Contains(tr.Description, want) {
			t.Errorf("refresh of the MCP grant with resource=%v: %d %s %q, want 400 invalid_target saying %q", rs, tr.Status, tr.Error, tr.Description, want)
		}
	}
	// Audited as every refused token request (docs/operations/audit-log.md).
	if e := findEvent(auditEvents(t, f), map[string]any{"event": "grant", "grant_type": "refresh_token", "result": "invalid_target", "client_id": c.ClientID}); e == nil {
		t.Errorf("no grant audit record for the refused resource parameter")
	}

	// A metadata-document client is held to the same list.
	cimdRedirect := "http://127.0.0.1:8982/cimd-resources-callback"
	var docURL string
	docs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"client_id":"` + docURL + `","client_name":"CIMD app","redirect_uris":["` + cimdRedirect + `"],"token_endpoint_auth_method":"none"}`))
	}))
	defer docs.Close()
	docURL = docs.URL + "/client.json"
	refusedAtAuthorize(t, devClient{ClientID: docURL, RedirectURIs: []string{cimdRedirect}, AuthMethod: "none"})

	// An operator-registered client keeps its entry's resources.
	static := f.Clients["test-public"]
	sa := newAuthRequest(static)
	sa.Resource = actions
	if tr := f.exchange(static, sa, f.authorize(sa)); tr.Status != http.StatusOK {
		t.Errorf("static client, Actions audience: %d %s %s", tr.Status, tr.Error, tr.Description)
	}

	// Widened, the same registration gets an Actions token.
	f.restart(map[string]string{"DYNAMIC_CLIENT_RESOURCES": mcp + "," + actions})
	a := newAuthRequest(c)
	a.Resource = actions
	b, p := consentPage(t, f, a) // the approval was for the MCP resource only
	actionsGrant := f.exchange(c, a, approve(t, b, p))
	if actionsGrant.Status != http.StatusOK {
		t.Fatalf("widened: Actions token %d %s %s", actionsGrant.Status, actionsGrant.Error, actionsGrant.Description)
	}
	if _, err := f.Verifier(actions).Verify(ctxT(t), actionsGrant.AccessToken); err != nil {
		t.Fatalf("widened: not an Actions token: %v", err)
	}
	pending := newAuthRequest(c)
	pending.Resource = actions
	pendingCode := f.authorize(pending) // redeemed after the narrowing

	// Narrowed again (unset: the default), the setting holds for the
	// registration at its next request.
	f.restart(map[string]string{"DYNAMIC_CLIENT_RESOURCES": ""})
	// The description names the refused resource (RFC 8707 §2), as a
	// refresh's does, and what the client may use instead and where that
	// is set: the client's developer sees which one to drop and which to
	// ask for.
	named := "The resource '" + actions + "' is not allowed for this client: a self-registered client may use " + mcp + " (the auth-server's DYNAMIC_CLIENT_RESOURCES)."
	if tr := f.exchange(c, pending, pendingCode); tr.Status != http.StatusBadRequest || tr.Error != "invalid_target" || tr.AccessToken != "" || !strings.Contains(tr.Description, named) {
		t.Errorf("narrowed: the Actions code: %d %s %q, want 400 invalid_target saying %q", tr.Status, tr.Error, tr.Description, named)
	}
	if e := findEvent(auditEvents(t, f), map[string]any{"event": "grant", "grant_type": "authorization_code", "result": "invalid_target", "client_id": c.ClientID}); e == nil {
		t.Errorf("narrowed: no grant audit record for the refused Actions code")
	}
	if tr := f.refresh(c, actionsGrant.RefreshToken); tr.Status != http.StatusBadRequest || tr.Error != "invalid_target" || tr.AccessToken != "" || !strings.Contains(tr.Description, named) {
		t.Errorf("narrowed: the Actions refresh token: %d %s %q, want 400 invalid_target saying %q", tr.Status, tr.Error, tr.Description, named)
	}
	refusedAtAuthorize(t, c)
	if tr := f.refresh(c, mcpGrant.RefreshToken); tr.Status != http.StatusOK {
		t.Errorf("narrowed: the MCP refresh token: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
}

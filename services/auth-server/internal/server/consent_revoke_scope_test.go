package server_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestConsentRevokeNeedsTheUsersPermission (brk45a): an app's access
// token that carries no permission over the user's connections (scope
// "openid" only) must not forget the user's remembered consent to another
// app: the connected-apps disconnect asks for connections.revoke, which
// the user approves on the consent page. Refused 403 insufficient_scope
// (RFC 6750 §3.1) naming the scope, audited, the consent kept; the
// token's own client's consent it may forget, and a token granted
// connections.revoke may forget another's.
func TestConsentRevokeNeedsTheUsersPermission(t *testing.T) {
	f := startFleet(t, nil)
	app := registerConfidential(t, f) // asks consent
	a := newAuthRequest(app)
	b, p := consentPage(t, f, a)
	if tr := f.exchange(app, a, approve(t, b, p)); tr.Status != http.StatusOK {
		t.Fatalf("token: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
	remembered := func() bool {
		t.Helper()
		p := f.login(newBrowser(t, app.RedirectURIs[0]), newAuthRequest(app))
		return p.Location != nil && p.Location.Query().Get("code") != ""
	}
	if !remembered() {
		t.Fatal("the approval is not remembered")
	}
	forget := func(token, clientID string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, f.Base+"/oauth/consent/revoke", strings.NewReader(url.Values{"client_id": {clientID}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(body)
	}

	local := f.Clients["local-test"]
	la := newAuthRequest(local)
	la.Scope = "openid"
	weak := f.fullFlow(local, la)
	st, challenge, body := forget(weak.AccessToken, app.ClientID)
	if st != http.StatusForbidden || !strings.Contains(body, `"insufficient_scope"`) {
		t.Errorf("local-test's openid-only token forgetting the user's consent to %s: %d %s, want 403 insufficient_scope", app.ClientID, st, body)
	}
	if !strings.Contains(challenge, `error="insufficient_scope"`) || !strings.Contains(challenge, `scope="connections.revoke"`) {
		t.Errorf("challenge %q: want error=\"insufficient_scope\" and scope=\"connections.revoke\" (RFC 6750 §3)", challenge)
	}
	if !remembered() {
		t.Errorf("the refused request forgot the user's consent to %s", app.ClientID)
	}
	if findEvent(auditEvents(t, f), map[string]any{"event": "consent_revocation", "result": "insufficient_scope",
		"client_id": app.ClientID, "token_client_id": local.ClientID, "endpoint": "consent"}) == nil {
		t.Error("no consent_revocation audit record of the refusal")
	}

	if st, _, body := forget(weak.AccessToken, local.ClientID); st != http.StatusNoContent {
		t.Errorf("an openid-only token forgetting the consent to its own client: %d %s, want 204", st, body)
	}

	la = newAuthRequest(local)
	la.Scope = "openid connections.revoke"
	strong := f.fullFlow(local, la)
	if st, _, body := forget(strong.AccessToken, app.ClientID); st != http.StatusNoContent {
		t.Errorf("a connections.revoke token forgetting the consent to %s: %d %s, want 204", app.ClientID, st, body)
	}
	if remembered() {
		t.Errorf("the consent to %s is still remembered after its withdrawal", app.ClientID)
	}
}

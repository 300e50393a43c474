package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestConsentMergeRefusedWhenPreviousUnreadable: approving a client for a
// second redirect URI merges the approval into the one remembered for the
// first; when Redis refuses that read (an ACL makes the consent keys
// write-only) the approval is refused like a failed write — a redirect
// with temporarily_unavailable and the request's state, no code — and the
// remembered approval is not overwritten by this one alone: once Redis
// answers again the first redirect URI still needs no consent page.
func TestConsentMergeRefusedWhenPreviousUnreadable(t *testing.T) {
	f := startFleetWith(t, nil, "")
	first, second := "http://127.0.0.1:8976/merge-first", "http://127.0.0.1:8976/merge-second"
	// Confidential: a public client's loopback redirect never uses a
	// remembered approval (RFC 8252 §8.6).
	st, reg := register(t, f, `{"redirect_uris":["`+first+`","`+second+`"],"token_endpoint_auth_method":"client_secret_basic","client_name":"Consent merge client","grant_types":["authorization_code","refresh_token"],"response_types":["code"]}`)
	if st != http.StatusCreated {
		t.Fatalf("register: %d %v", st, reg)
	}
	app := devClient{ClientID: reg["client_id"].(string), ClientSecret: reg["client_secret"].(string), RedirectURIs: []string{first, second}, AuthMethod: "client_secret_basic"}
	request := func(redirect string) *authRequest {
		a := newAuthRequest(app)
		a.RedirectURI, a.Resource = redirect, f.Base+"/mcp"
		return a
	}
	a := request(first)
	b, p := consentPage(t, f, a)
	if tr := f.exchange(app, a, approve(t, b, p)); tr.Status != http.StatusOK {
		t.Fatalf("first token: %d %s %s", tr.Status, tr.Error, tr.Description)
	}

	a = request(second)
	b, p = consentPage(t, f, a)
	// Consent keys (tollgate:as:consent:*) become write-only: the merge's
	// read fails, its write would succeed. Every other key (the consent
	// request's among them) stays readable and writable.
	restore := f.Redis.RestrictKeys(t, "tollgate:as:consent:", "%W")
	p = b.submit(p, url.Values{"decision": {"approve"}})
	if p.Location == nil {
		t.Fatalf("approval while the remembered consent is unreadable: %d, want a redirect to the client\n%s", p.Status, p.Body)
	}
	q := p.Location.Query()
	if q.Get("error") != "temporarily_unavailable" || q.Get("code") != "" || q.Get("state") != a.State || !strings.HasPrefix(p.Location.String(), second) {
		t.Fatalf("approval while the remembered consent is unreadable: redirect %s, want %s with error=temporarily_unavailable, the state and no code", p.Location, second)
	}
	restore()

	// The first redirect URI's approval is still remembered: no consent page.
	if p := f.login(newBrowser(t, first), request(first)); p.Location == nil || p.Location.Query().Get("code") == "" {
		t.Fatalf("first redirect URI after the refused approval: %d %v, want a code without the consent page (its approval was overwritten)", p.Status, p.Location)
	}
	// The refused approval was not recorded: the second still asks.
	if p := f.login(newBrowser(t, second), request(second)); p.Location != nil || !strings.Contains(p.Body, `value="approve"`) {
		t.Fatalf("second redirect URI after the refused approval: %d %v, want the consent page", p.Status, p.Location)
	}
}

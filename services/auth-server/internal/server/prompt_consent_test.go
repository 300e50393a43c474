package server_test

import (
	"net/http"
	"net/url"
	"testing"
)

// TestPromptConsentShowsTheConsentPage: prompt=consent (OpenID Connect
// Core §3.1.2.1: the server SHOULD prompt the user for consent) shows the
// consent page to a client that needs consent even when the user's
// approval is remembered, and the client gets a code only after it is
// approved again (access_denied when refused); without prompt=consent the
// remembered approval still goes straight to the client. A static client
// the operator marked skip_consent gets no page either way.
func TestPromptConsentShowsTheConsentPage(t *testing.T) {
	f := startFleetWith(t, nil, `- client_id: operator-skip
  redirect_uris: ["http://127.0.0.1:8976/skip-callback"]
  token_endpoint_auth_method: none
  resources: ["BASE/mcp"]
  skip_consent: true
`)
	redirect := "http://127.0.0.1:8976/prompt-consent-callback"
	// Confidential: a public client's loopback redirect never uses a
	// remembered approval (RFC 8252 §8.6).
	st, reg := register(t, f, `{"redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"client_secret_basic","client_name":"Prompt consent client","grant_types":["authorization_code","refresh_token"],"response_types":["code"]}`)
	if st != http.StatusCreated {
		t.Fatalf("register: %d %v", st, reg)
	}
	c := devClient{ClientID: reg["client_id"].(string), ClientSecret: reg["client_secret"].(string), RedirectURIs: []string{redirect}, AuthMethod: "client_secret_basic"}
	request := func(prompt string) *authRequest {
		a := newAuthRequest(c)
		a.Resource = f.Base + "/mcp"
		if prompt != "" {
			a.Extra = url.Values{"prompt": {prompt}}
		}
		return a
	}
	// Approved once: remembered.
	a := request("")
	b, p := consentPage(t, f, a)
	if tr := f.exchange(c, a, approve(t, b, p)); tr.Status != http.StatusOK {
		t.Fatalf("first token: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
	if code := f.authorize(request("")); code == "" {
		t.Fatal("the remembered approval did not go straight to the client")
	}
	// prompt=consent (alone, and among other values) asks again.
	for _, prompt := range []string{"consent", "login consent"} {
		a = request(prompt)
		p := f.login(newBrowser(t, a.RedirectURI), a)
		if p.Location != nil || p.Status != http.StatusOK {
			t.Fatalf("prompt=%s: want the consent page, got %d %v", prompt, p.Status, p.Location)
		}
	}
	a = request("consent")
	b, p = consentPage(t, f, a)
	if tr := f.exchange(c, a, approve(t, b, p)); tr.Status != http.StatusOK {
		t.Fatalf("token after prompt=consent: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
	a = request("consent")
	if p := consentFlow(t, f, a, "deny", true); p.Location == nil || p.Location.Query().Get("error") != "access_denied" {
		t.Fatalf("prompt=consent, denied: %d %v, want access_denied", p.Status, p.Location)
	}
	// The operator's skip_consent client: no page, prompt=consent or not.
	skip := devClient{ClientID: "operator-skip", RedirectURIs: []string{"http://127.0.0.1:8976/skip-callback"}, AuthMethod: "none"}
	a = newAuthRequest(skip)
	a.Extra = url.Values{"prompt": {"consent"}}
	if code := f.authorize(a); code == "" {
		t.Fatal("skip_consent client with prompt=consent: no code")
	}
}

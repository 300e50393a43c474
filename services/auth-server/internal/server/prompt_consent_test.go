package server_test

import (
	"net/http"
	"net/url"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestPromptConsentShowsTheConsentPage: prompt=consent (OpenID Connect
// Core §3.1.2.1: the server SHOULD prompt the user for consent) shows the
// consent page to a client that needs consent even when the user's
// approval is remembered, and the client gets a code only after it is
// approved again (access_denied when refused); without prompt=consent the
// remembered approval still goes straight to the client. A static
// (confidential) client the operator marked skip_consent gets no page
// either way.
func TestPromptConsentShowsTheConsentPage(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("operator-skip-secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	f := startFleetWith(t, nil, `- client_id: operator-skip
  client_secret_hash: "`+string(hash)+`"
  redirect_uris: ["http://127.0.0.1:8976/skip-callback"]
  token_endpoint_auth_method: client_secret_basic
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
	skip := devClient{ClientID: "operator-skip", ClientSecret: "operator-skip-secret", RedirectURIs: []string{"http://127.0.0.1:8976/skip-callback"}, AuthMethod: "client_secret_basic"}
	for _, prompt := range []string{"", "consent"} {
		a = newAuthRequest(skip)
		a.Resource = f.Base + "/mcp"
		if prompt != "" {
			a.Extra = url.Values{"prompt": {prompt}}
		}
		if tr := f.exchange(skip, a, f.authorize(a)); tr.Status != http.StatusOK {
			t.Fatalf("skip_consent client, prompt=%q: token %d %s %s", prompt, tr.Status, tr.Error, tr.Description)
		}
	}
}

// TestSkipConsentRefusedForPublicLoopbackClient: RFC 8252 §8.6 — a public
// client's loopback redirect does not prove which app asks, so the
// operator's skip_consent cannot stand in for the user's approval: the
// auth-server does not start with such a client in CLIENTS_FILE, and the
// error names the client, the redirect URI and the rule. (A reload of
// such a file is refused by the same check, clients.LoadFile.)
func TestSkipConsentRefusedForPublicLoopbackClient(t *testing.T) {
	f := newFleet(t, nil, `- client_id: native-skip
  redirect_uris: ["https://native.example/cb", "http://127.0.0.1:8976/native-callback"]
  token_endpoint_auth_method: none
  resources: ["BASE/mcp"]
  skip_consent: true
`, true)
	startRefused(t, f, nil, `client "native-skip": skip_consent is refused for a public client (token_endpoint_auth_method none) with redirect URI "http://127.0.0.1:8976/native-callback": a code sent there does not prove which app asked, since any local app can listen on it (RFC 8252 section 8.6)`)
}

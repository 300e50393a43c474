package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/tollgate/tollgate/e2e/harness"
)

// link runs the real account-linking flow through the local ingress: the
// client's authorization request, the dev IdP's login form, the callback,
// and the code exchange with PKCE. It returns the token response.
func link(t *testing.T, clientID, resource string, style oauth2.AuthStyle) *oauth2.Token {
	t.Helper()
	g := authorize(t, clientID, resource, style)
	tok, err := g.exchange()
	if err != nil {
		t.Fatalf("token exchange: %v", err)
	}
	return tok
}

// authorization is a code on its way to the client, which exchange redeems
// (tests call it twice to replay the code).
type authorization struct {
	conf     *oauth2.Config
	code     string
	verifier string
	resource string
}

func (a authorization) exchange() (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return a.conf.Exchange(ctx, a.code, oauth2.VerifierOption(a.verifier), oauth2.SetAuthURLParam("resource", a.resource))
}

// authorize runs the flow up to the callback and returns the code.
func authorize(t *testing.T, clientID, resource string, style oauth2.AuthStyle) authorization {
	t.Helper()
	return authorizeScopes(t, clientID, resource, style, "openid", "profile", "email")
}

// authorizeScopes is authorize asking for scopes.
func authorizeScopes(t *testing.T, clientID, resource string, style oauth2.AuthStyle, scopes ...string) authorization {
	t.Helper()
	c, ok := fleet.Client(clientID)
	if !ok {
		t.Fatalf("no dev client %s", clientID)
	}
	conf := &oauth2.Config{
		ClientID: c.ClientID, ClientSecret: c.ClientSecret, RedirectURL: c.RedirectURIs[0],
		Scopes:   scopes,
		Endpoint: oauth2.Endpoint{AuthURL: fleet.Origin + "/oauth/authorize", TokenURL: fleet.Origin + "/oauth/token", AuthStyle: style},
	}
	verifier := oauth2.GenerateVerifier()
	state := "st-" + oauth2.GenerateVerifier()[:12]
	authURL := conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", resource))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := harness.NewBrowser(fleet.Creds.User.Username, fleet.Creds.User.Password)
	cb, err := b.Authorize(ctx, authURL, c.RedirectURIs[0])
	if err != nil {
		t.Fatalf("authorize: %v\nvisited: %v", err, b.Visited)
	}
	q := cb.Query()
	if q.Get("error") != "" || q.Get("state") != state || q.Get("iss") != fleet.Origin || q.Get("code") == "" {
		t.Fatalf("callback %s: want code, state %s and iss %s", cb, state, fleet.Origin)
	}
	return authorization{conf: conf, code: q.Get("code"), verifier: verifier, resource: resource}
}

func call(t *testing.T, method, url, token string, body io.Reader, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestActionsAccountLinking: a GPT Action links an account and reads the
// profile; its token does not open MCP.
func TestActionsAccountLinking(t *testing.T) {
	actions, _ := fleet.Client("gpt-actions")
	tok := link(t, "gpt-actions", actions.Audience, oauth2.AuthStyleInParams)
	if tok.RefreshToken == "" {
		t.Error("no refresh token for a client allowed the refresh grant")
	}
	resp, body := call(t, "GET", fleet.Origin+"/actions/profile", tok.AccessToken, nil)
	var p struct {
		Sub           string `json:"sub"`
		Email         string `json:"email"`
		EmailVerified bool   `json:"email_verified"`
	}
	if err := json.Unmarshal(body, &p); resp.StatusCode != 200 || err != nil {
		t.Fatalf("GET /actions/profile = %d %s", resp.StatusCode, body)
	}
	if p.Sub != "dev-user-0001" || p.Email != "dev@example.com" || !p.EmailVerified {
		t.Errorf("profile = %s", body)
	}
	resp, body = call(t, "GET", fleet.Origin+"/actions/session", tok.AccessToken, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"client_id":"gpt-actions"`) || !strings.Contains(string(body), actions.Audience) {
		t.Errorf("GET /actions/session = %d %s", resp.StatusCode, body)
	}
	// Audience binding: the Actions token is refused by the MCP gateway.
	resp, _ = call(t, "POST", fleet.Origin+"/mcp", tok.AccessToken, strings.NewReader(initialize), "Content-Type", "application/json", "Accept", "application/json, text/event-stream")
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("Actions token on /mcp = %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	// Userinfo on the issuer answers for the same subject.
	resp, body = call(t, "GET", fleet.Origin+"/oauth/userinfo", tok.AccessToken, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"sub":"dev-user-0001"`) {
		t.Errorf("userinfo = %d %s", resp.StatusCode, body)
	}
}

const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`

// TestAppsAccountLinking: the ChatGPT Apps client links an account and
// opens an MCP session; its token does not open the Actions API.
func TestAppsAccountLinking(t *testing.T) {
	apps, _ := fleet.Client("gpt-apps-mcp")
	tok := link(t, "gpt-apps-mcp", apps.Audience, oauth2.AuthStyleInParams)
	resp, body := call(t, "POST", fleet.Origin+"/mcp", tok.AccessToken, strings.NewReader(initialize), "Content-Type", "application/json", "Accept", "application/json, text/event-stream")
	if resp.StatusCode != 200 || resp.Header.Get("Mcp-Session-Id") == "" || !strings.Contains(string(body), `"protocolVersion"`) {
		t.Fatalf("initialize = %d %s", resp.StatusCode, body)
	}
	resp, body = call(t, "GET", fleet.Origin+"/actions/profile", tok.AccessToken, nil)
	if resp.StatusCode != 401 {
		t.Errorf("MCP token on /actions/profile = %d %s", resp.StatusCode, body)
	}
}

// TestLocalClientWithBasicAuth covers client_secret_basic and the refresh grant.
func TestLocalClientWithBasicAuth(t *testing.T) {
	local, _ := fleet.Client("local-test")
	tok := link(t, "local-test", local.Audience, oauth2.AuthStyleInHeader)
	conf := &oauth2.Config{ClientID: local.ClientID, ClientSecret: local.ClientSecret,
		Endpoint: oauth2.Endpoint{TokenURL: fleet.Origin + "/oauth/token", AuthStyle: oauth2.AuthStyleInHeader}}
	expired := &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}
	fresh, err := conf.TokenSource(context.Background(), expired).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == tok.RefreshToken || fresh.RefreshToken == "" {
		t.Error("refresh did not rotate the tokens")
	}
}

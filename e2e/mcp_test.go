package e2e

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/tollgate/tollgate/e2e/harness"
)

// TestMCPWithMCPGoOAuthClient links an account the way an MCP host does,
// with mcp-go's OAuth client: the 401 challenge leads it to the protected
// resource metadata, the authorization server metadata and the login at the
// dev IdP; then every tool answers over /mcp and, with the same token, over
// the legacy /sse transport, all through the local ingress.
func TestMCPWithMCPGoOAuthClient(t *testing.T) {
	apps, ok := fleet.Client("gpt-apps-mcp")
	if !ok {
		t.Fatal("no gpt-apps-mcp dev client")
	}
	store := client.NewMemoryTokenStore()
	oauth := client.OAuthConfig{
		ClientID: apps.ClientID, ClientSecret: apps.ClientSecret, TokenEndpointAuthMethod: apps.AuthMethod,
		RedirectURI: apps.RedirectURIs[0], Scopes: []string{"openid", "profile", "email"},
		TokenStore: store, PKCEEnabled: true,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	c, err := client.NewOAuthStreamableHttpClient(fleet.Origin+"/mcp", oauth)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = mcp.LATEST_LEGACY_PROTOCOL_VERSION
	init.Params.ClientInfo = mcp.Implementation{Name: "e2e-mcp-go", Version: "1"}
	_, err = c.Initialize(ctx, init)
	if !client.IsOAuthAuthorizationRequiredError(err) {
		t.Fatalf("initialize without a token: %v, want the OAuth challenge", err)
	}
	h := client.GetOAuthHandler(err)
	verifier, err := client.GenerateCodeVerifier()
	if err != nil {
		t.Fatal(err)
	}
	state, err := client.GenerateState()
	if err != nil {
		t.Fatal(err)
	}
	authURL, err := h.GetAuthorizationURL(ctx, state, client.GenerateCodeChallenge(verifier))
	if err != nil {
		t.Fatalf("discovery from the challenge: %v", err)
	}
	if u, _ := url.Parse(authURL); u.Query().Get("resource") != fleet.Origin+"/mcp" {
		t.Errorf("authorization URL %s does not name the MCP resource", authURL)
	}
	b := harness.NewBrowser(fleet.Creds.User.Username, fleet.Creds.User.Password)
	cb, err := b.Authorize(ctx, authURL, apps.RedirectURIs[0])
	if err != nil {
		t.Fatalf("authorize: %v\nvisited: %v", err, b.Visited)
	}
	if err := h.ProcessAuthorizationResponse(ctx, cb.Query().Get("code"), cb.Query().Get("state"), verifier); err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize with the linked token: %v", err)
	}
	useEveryTool(ctx, t, c)

	// The legacy transport with the token the link produced.
	tok, err := store.GetToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sse, err := client.NewSSEMCPClient(fleet.Origin+"/sse", transport.WithHeaders(map[string]string{"Authorization": "Bearer " + tok.AccessToken}))
	if err != nil {
		t.Fatal(err)
	}
	defer sse.Close()
	if err := sse.Start(ctx); err != nil {
		t.Fatal(err)
	}
	init.Params.ProtocolVersion = mcp.ProtocolVersion20241105
	if _, err := sse.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize over /sse: %v", err)
	}
	useEveryTool(ctx, t, sse)
}

func useEveryTool(ctx context.Context, t *testing.T, c *client.Client) {
	t.Helper()
	tools, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, tool := range tools.Tools {
		names[tool.Name] = true
		if strings.HasPrefix(tool.Name, "connections.") {
			// The token here has openid profile email; the connected-apps
			// tools (their own scopes; revoke needs a grant id) are
			// exercised in connections_test.go.
			continue
		}
		call := mcp.CallToolRequest{}
		call.Params.Name = tool.Name
		res, err := c.CallTool(ctx, call)
		if err != nil {
			t.Errorf("%s: %v", tool.Name, err)
			continue
		}
		if res.IsError || res.StructuredContent == nil {
			t.Errorf("%s: %+v", tool.Name, res)
		}
		if strings.HasPrefix(tool.Name, "identity.") {
			sc, _ := res.StructuredContent.(map[string]any)
			if sc["sub"] != "dev-user-0001" || sc["email"] != "dev@example.com" {
				t.Errorf("%s is not the linked user's: %v", tool.Name, sc)
			}
		}
	}
	for _, want := range []string{"health.check", "health.status_card", "identity.profile", "identity.profile_card", "auth.session"} {
		if !names[want] {
			t.Errorf("tool %s not listed", want)
		}
	}
	rr := mcp.ReadResourceRequest{}
	rr.Params.URI = "ui://widget/profile-summary-card-v1.html"
	res, err := c.ReadResource(ctx, rr)
	if err != nil || len(res.Contents) != 1 {
		t.Errorf("read profile card: %v", err)
	} else if text, ok := res.Contents[0].(mcp.TextResourceContents); !ok || !strings.Contains(text.Text, fleet.Origin+"/app-ui/") {
		t.Errorf("profile card does not load its assets from %s/app-ui/", fleet.Origin)
	}
}

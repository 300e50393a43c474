package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/e2e/harness"
)

// TestGPTSignInOnTheActionsHost signs in as a GPT Action does when the
// Actions API has its own host (the chart's production shape: issuer
// https://gateway.example.com, ACTIONS_OAUTH_BASE_URL
// https://api.example.com): the OAuth URLs come from the Actions OpenAPI
// document, on the Actions host (here http://127.0.0.1:PORT; the issuer is
// http://localhost:PORT, another host to the browser's cookies), and the
// sign-in — no PKCE, state, client_secret_post — must end with a token
// the Actions API accepts. The upstream IdP returns the browser to the
// issuer's /oauth/callback, so the authorization endpoint sends a request
// made on the Actions host to the issuer first (302), where the login
// cookie is then set and read.
func TestGPTSignInOnTheActionsHost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	var actionsOrigin string
	f, err := harness.StartWith(ctx, harness.Options{Setup: func(origin string) (map[string]string, error) {
		actionsOrigin = strings.Replace(origin, "http://localhost:", "http://127.0.0.1:", 1)
		return map[string]string{"ACTIONS_OAUTH_BASE_URL": actionsOrigin}, nil
	}})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	if actionsOrigin == f.Origin || actionsOrigin != "http://127.0.0.1:"+strconv.Itoa(f.Ports.Ingress) {
		t.Fatalf("the Actions origin %s must be another host than the issuer %s", actionsOrigin, f.Origin)
	}

	var doc struct {
		Components struct {
			SecuritySchemes map[string]struct {
				Flows struct {
					AuthorizationCode struct {
						AuthorizationURL string `json:"authorizationUrl"`
						TokenURL         string `json:"tokenUrl"`
					} `json:"authorizationCode"`
				} `json:"flows"`
			} `json:"securitySchemes"`
		} `json:"components"`
	}
	if resp := getJSON(t, actionsOrigin+"/actions/openapi.json", &doc); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /actions/openapi.json = %d", resp.StatusCode)
	}
	var authURL, tokenURL string
	for _, s := range doc.Components.SecuritySchemes {
		authURL, tokenURL = s.Flows.AuthorizationCode.AuthorizationURL, s.Flows.AuthorizationCode.TokenURL
	}
	if authURL != actionsOrigin+"/oauth/authorize" || tokenURL != actionsOrigin+"/oauth/token" {
		t.Fatalf("the document's OAuth URLs are %q and %q, want them on %s", authURL, tokenURL, actionsOrigin)
	}

	c, ok := f.Client("gpt-actions")
	if !ok {
		t.Fatal("no dev client gpt-actions")
	}
	state := "gpt-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	q := url.Values{"response_type": {"code"}, "client_id": {c.ClientID}, "redirect_uri": {c.RedirectURIs[0]},
		"scope": {"openid profile email"}, "state": {state}}
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := harness.NewBrowser(f.Creds.User.Username, f.Creds.User.Password)
	cb, err := b.Authorize(ctx, authURL+"?"+q.Encode(), c.RedirectURIs[0])
	if err != nil {
		t.Fatalf("sign-in started on the Actions host: %v\nvisited: %v", err, b.Visited)
	}
	if len(b.Visited) < 2 || !strings.HasPrefix(b.Visited[1], "GET "+f.Origin+"/oauth/authorize?") {
		t.Errorf("the Actions host's /oauth/authorize did not send the browser to the issuer's: visited %v", b.Visited)
	}
	cq := cb.Query()
	if cq.Get("code") == "" || cq.Get("state") != state || cq.Get("iss") != f.Origin {
		t.Fatalf("callback %s: want a code, state %s and iss %s", cb.Redacted(), state, f.Origin)
	}

	form := url.Values{"grant_type": {"authorization_code"}, "code": {cq.Get("code")}, "redirect_uri": {c.RedirectURIs[0]},
		"client_id": {c.ClientID}, "client_secret": {c.ClientSecret}}
	resp, err := http.PostForm(tokenURL, form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tr); err != nil || resp.StatusCode != http.StatusOK || tr.AccessToken == "" {
		t.Fatalf("POST %s = %d %s", tokenURL, resp.StatusCode, body)
	}
	resp, body = call(t, "GET", actionsOrigin+"/actions/profile", tr.AccessToken, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "dev-user-0001") {
		t.Errorf("GET /actions/profile with the token = %d %s", resp.StatusCode, body)
	}
}

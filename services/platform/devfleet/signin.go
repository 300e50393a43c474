package devfleet

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// SignInOptions say how SignIn signs in.
type SignInOptions struct {
	// Creds are the fleet's var/dev/clients.json (LoadCredentials).
	Creds DevCredentials
	// ClientID is a dev client of Creds (local-test, gpt-actions, …).
	ClientID string
	// Resource is "mcp", "actions", or an absolute resource URL (RFC 8707),
	// sent as resource on the authorization and the token request; ""
	// sends none, as a GPT Action's OAuth does, and the auth-server gives
	// the token the client's first resource as its audience
	// (docs/reference/oauth.md, "Audience (RFC 8707)").
	Resource string
	// Scope is space-separated; "" asks for "openid profile email".
	Scope string
	// NoPKCE leaves out code_challenge, as a GPT Action does; the
	// auth-server refuses that unless the client does not require PKCE.
	NoPKCE bool
	// Transport carries every request, the browser's and the token
	// request (default: http.DefaultTransport).
	Transport http.RoundTripper
	// Origin is the fleet to sign in at (its issuer, whose /oauth/authorize
	// and /oauth/token are used and under which "mcp" and "actions" are
	// named); "" is Creds.Origin, the fleet that wrote the credentials.
	Origin string
	// LocalOrigin is the local ingress (http://localhost:4000 under make
	// dev). When Creds.Origin is another one (PUBLIC_URL, a tunnel) and
	// cannot be reached, the error says to check the tunnel and where it
	// must point; "" says only that the fleet is unreachable.
	LocalOrigin string
}

// TokenResponse is the token endpoint's answer (RFC 6749 §5.1); Raw is
// the whole JSON object as received.
type TokenResponse struct {
	AccessToken  string          `json:"access_token"`
	TokenType    string          `json:"token_type"`
	ExpiresIn    int             `json:"expires_in"`
	RefreshToken string          `json:"refresh_token,omitempty"`
	IDToken      string          `json:"id_token,omitempty"`
	Scope        string          `json:"scope,omitempty"`
	Raw          json.RawMessage `json:"-"`
}

// LoadCredentials reads <varDir>/dev/clients.json, which `make dev` (and
// `auth-server dev-init`) writes.
func LoadCredentials(varDir string) (DevCredentials, error) {
	var c DevCredentials
	path := filepath.Join(varDir, "dev", "clients.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("%w (start the fleet with `make dev` first; it writes the dev credentials)", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// SignIn runs the real authorization code flow of a dev client against a
// running fleet, headlessly, as the dev IdP's user: the authorization
// request (state, PKCE S256 unless NoPKCE, resource), the auth-server's
// hand-off to the dev IdP, its login form, the callback, and the code
// exchange with the client's registered authentication method
// (client_secret_basic or client_secret_post). Nothing is shortcut: a
// misconfigured client, redirect URI or resource fails here as it would
// for a real client, with the server's error and description.
//
// The browser stops at the client's redirect URI without requesting it;
// a loopback redirect URI is preferred (any port is accepted for those,
// RFC 8252 §7.3).
func SignIn(ctx context.Context, o SignInOptions) (*TokenResponse, error) {
	c, ok := findClient(o.Creds, o.ClientID)
	if !ok {
		var ids []string
		for _, x := range o.Creds.Clients {
			ids = append(ids, x.ClientID)
		}
		return nil, fmt.Errorf("no dev client %q (dev clients: %s)", o.ClientID, strings.Join(ids, ", "))
	}
	if len(c.RedirectURIs) == 0 {
		return nil, fmt.Errorf("dev client %s has no redirect URI", c.ClientID)
	}
	origin := strings.TrimRight(o.Creds.Origin, "/")
	if o.Origin != "" {
		u, err := url.Parse(o.Origin)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
			return nil, fmt.Errorf("origin %q: want the fleet's origin, http(s)://host[:port]", o.Origin)
		}
		origin = strings.TrimRight(o.Origin, "/")
	}
	resource, err := resolveResource(origin, o.Resource)
	if err != nil {
		return nil, err
	}
	redirect := c.RedirectURIs[0]
	for _, r := range c.RedirectURIs {
		if strings.HasPrefix(r, "http://127.0.0.1:") || strings.HasPrefix(r, "http://[::1]:") {
			redirect = r
			break
		}
	}
	scope := o.Scope
	if scope == "" {
		scope = "openid profile email"
	}
	state := randomString()
	q := url.Values{
		"response_type": {"code"}, "client_id": {c.ClientID}, "redirect_uri": {redirect},
		"scope": {scope}, "state": {state},
	}
	if resource != "" {
		q.Set("resource", resource)
	}
	verifier := ""
	if !o.NoPKCE {
		verifier = randomString() + randomString()
		sum := sha256.Sum256([]byte(verifier))
		q.Set("code_challenge", base64.RawURLEncoding.EncodeToString(sum[:]))
		q.Set("code_challenge_method", "S256")
	}
	b := NewBrowser(o.Creds.User.Username, o.Creds.User.Password)
	if o.Transport != nil {
		b.UseTransport(o.Transport)
	}
	cb, err := b.Authorize(ctx, origin+"/oauth/authorize?"+q.Encode(), redirect)
	if err != nil {
		if unreachable(err, origin) {
			return nil, unreachableError(origin, o.LocalOrigin, o.Origin != "", err)
		}
		return nil, fmt.Errorf("sign-in: %w", err)
	}
	cq := cb.Query()
	if e := cq.Get("error"); e != "" {
		return nil, fmt.Errorf("the authorization endpoint answered %s: %s", e, cq.Get("error_description"))
	}
	if cq.Get("state") != state {
		return nil, errors.New("the callback's state is not the request's")
	}
	if iss := cq.Get("iss"); iss != "" && iss != origin {
		return nil, fmt.Errorf("the callback's iss %q is not the issuer %q (RFC 9207)", iss, origin)
	}
	code := cq.Get("code")
	if code == "" {
		return nil, fmt.Errorf("the callback %s has no code", cb.Redacted())
	}

	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}}
	if resource != "" {
		form.Set("resource", resource)
	}
	if verifier != "" {
		form.Set("code_verifier", verifier)
	}
	if c.AuthMethod == "client_secret_post" {
		form.Set("client_id", c.ClientID)
		form.Set("client_secret", c.ClientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, origin+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.AuthMethod == "client_secret_basic" || c.AuthMethod == "" {
		// RFC 6749 §2.3.1: form-encode id and secret before Basic.
		req.SetBasicAuth(url.QueryEscape(c.ClientID), url.QueryEscape(c.ClientSecret))
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second, Transport: o.Transport}).Do(req)
	if err != nil {
		if unreachable(err, origin) {
			return nil, unreachableError(origin, o.LocalOrigin, o.Origin != "", err)
		}
		return nil, fmt.Errorf("token request: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("token response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(raw, &e)
		return nil, fmt.Errorf("the token endpoint answered %d %s: %s", resp.StatusCode, e.Error, e.Description)
	}
	tr := &TokenResponse{Raw: raw}
	if err := json.Unmarshal(raw, tr); err != nil || tr.AccessToken == "" {
		return nil, fmt.Errorf("the token response has no access_token: %.200s", raw)
	}
	return tr, nil
}

// unreachable reports whether err is a request to origin that got no
// answer at all (no connection, no such host, reset): not an HTTP error
// status, and not the caller's context ending.
func unreachable(err error, origin string) bool {
	var ue *url.Error
	if !errors.As(err, &ue) || !strings.HasPrefix(ue.URL, origin+"/") {
		return false
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// unreachableError says what to check when origin does not answer: the
// tunnel, for a PUBLIC_URL, or make dev itself, or (explicit: the caller
// named origin) that a fleet runs there. err stays wrapped
// (errors.Is(err, syscall.ECONNREFUSED) still holds).
func unreachableError(origin, local string, explicit bool, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the cause, without the request's URL (state, challenge)
	}
	if explicit { // the caller named it: nothing of make dev's to check
		return fmt.Errorf("%s is unreachable: is the fleet running there? (%w)", origin, err)
	}
	if local != "" && origin != strings.TrimRight(local, "/") {
		return fmt.Errorf("PUBLIC_URL %s is unreachable: is the tunnel running and pointed at %s? (%w)", origin, local, err)
	}
	return fmt.Errorf("%s is unreachable: is `make dev` running? (%w)", origin, err)
}

func findClient(c DevCredentials, id string) (DevClient, bool) {
	for _, x := range c.Clients {
		if x.ClientID == id {
			return x, true
		}
	}
	return DevClient{}, false
}

// resolveResource turns "mcp"/"actions" into the fleet's resource URLs;
// "" stays "": no resource is sent.
func resolveResource(origin, r string) (string, error) {
	switch r {
	case "":
		return "", nil
	case "mcp", "actions":
		return origin + "/" + r, nil
	}
	if u, err := url.Parse(r); err == nil && u.IsAbs() {
		return r, nil
	}
	return "", fmt.Errorf("resource %q: want mcp, actions or an absolute URL", r)
}

func randomString() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/reflection"
	"sigs.k8s.io/yaml"

	testingv1 "github.com/tollgate/tollgate/proto/gen/tollgate/testing/v1"
	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
	"github.com/tollgate/tollgate/services/auth-server/internal/devinit"
	"github.com/tollgate/tollgate/services/auth-server/internal/server"
	"github.com/tollgate/tollgate/services/dev-idp/idptest"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// fleet is a real auth-server (in-process, real HTTP and gRPC on loopback)
// with a real redis-server and the real dev IdP as its upstream.
type fleet struct {
	t       testing.TB
	Redis   *testharness.Redis
	IdP     *idptest.IdP
	AS      *testharness.Service
	Base    string // public issuer, http://127.0.0.1:<port>
	Dir     string
	Clients map[string]devClient
	env     map[string]string
	// ln is the auth-server's HTTP listener until it starts (newFleet binds
	// it first: the issuer URL names its port).
	ln net.Listener
}

type devClient struct {
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret"`
	RedirectURIs []string `json:"redirect_uris"`
	Audience     string   `json:"audience"`
	AuthMethod   string   `json:"token_endpoint_auth_method"`
}

func startFleet(t testing.TB, env map[string]string) *fleet {
	t.Helper()
	return startFleetWith(t, env, "")
}

// startFleetWith appends extraClients (YAML list items) to the registry.
func startFleetWith(t testing.TB, env map[string]string, extraClients string) *fleet {
	t.Helper()
	f := newFleet(t, env, extraClients, true)
	f.start()
	return f
}

// start runs the auth-server on the fleet's port: on the listener newFleet
// bound, or, after f.AS.Stop, on the same port bound again.
func (f *fleet) start() {
	f.t.Helper()
	ln := f.ln
	if ln == nil {
		ln = testharness.ListenAgain(f.t, f.env["HTTP_ADDR"])
	}
	f.ln = nil
	f.AS = testharness.RunService(f.t, server.Run, f.env, ln)
}

// restart stops the auth-server and starts it again on the same port, with
// env set over its environment.
func (f *fleet) restart(env map[string]string) {
	f.t.Helper()
	if err := f.AS.Stop(); err != nil {
		f.t.Fatalf("stop: %v", err)
	}
	maps.Copy(f.env, env)
	f.start()
}

// newFleet prepares everything but the auth-server: Redis, the dev IdP,
// dev-init's files (with cheap secret hashes when cheap is set) and the
// auth-server's environment.
func newFleet(t testing.TB, env map[string]string, extraClients string, cheap bool, idpUsers ...string) *fleet {
	t.Helper()
	f := &fleet{t: t, Redis: testharness.StartRedis(t), Dir: t.TempDir(), ln: testharness.Listener(t)}
	f.Base = "http://" + f.ln.Addr().String()
	idpOpts := idptest.Options{PublicIssuerURL: f.Base}
	if len(idpUsers) > 0 {
		idpOpts.UsersYAML = idpUsers[0] // replaces the dev account
	}
	// DEVIDP_* entries of env configure the dev IdP (its session age, …).
	for k, v := range env {
		if strings.HasPrefix(k, "DEVIDP_") {
			if idpOpts.Env == nil {
				idpOpts.Env = map[string]string{}
			}
			idpOpts.Env[k] = v
		}
	}
	f.IdP = idptest.Start(t, idpOpts)
	if err := devinit.Init(f.Dir, f.Base, io.Discard); err != nil {
		t.Fatal(err)
	}
	if cheap {
		cheapHashes(t, f.Dir)
	}
	// A public client (PKCE, no secret) next to the dev clients. Its
	// loopback redirect proves nothing, so it gets the consent page at
	// each sign-in (RFC 8252 §8.6; skip_consent is refused for it):
	// authorize approves it (authRequest.Public).
	reg, err := os.OpenFile(filepath.Join(f.Dir, "clients.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = fmt.Fprintf(reg, `- client_id: test-public
  client_name: Public test client
  redirect_uris: [%q]
  token_endpoint_auth_method: none
  resources: [%q, %q]
%s`, "http://127.0.0.1:8976/public-callback", f.Base+"/mcp", f.Base+"/actions", strings.ReplaceAll(extraClients, "BASE", f.Base))
	if err != nil {
		t.Fatal(err)
	}
	reg.Close()
	b, err := os.ReadFile(filepath.Join(f.Dir, "clients.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cj struct{ Clients []devClient }
	if err := json.Unmarshal(b, &cj); err != nil {
		t.Fatal(err)
	}
	f.Clients = map[string]devClient{}
	for _, c := range cj.Clients {
		f.Clients[c.ClientID] = c
	}
	f.Clients["test-public"] = devClient{ClientID: "test-public", RedirectURIs: []string{"http://127.0.0.1:8976/public-callback"}, AuthMethod: "none", Audience: f.Base + "/mcp"}
	f.env = map[string]string{
		// The capability backend: testing/v1's ShipmentsService (shipments.read).
		"CAPABILITY_BACKENDS": "shipments=" + startShipmentsBackend(t),
		"TOLLGATE_ENV":        "development", "LOG_FORMAT": "text", "LOG_LEVEL": "debug",
		"HTTP_ADDR": f.ln.Addr().String(), "GRPC_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0",
		"PUBLIC_ISSUER_URL": f.Base, "SIGNING_KEYS_DIR": filepath.Join(f.Dir, "keys"),
		"CLIENTS_FILE": filepath.Join(f.Dir, "clients.yaml"), "REDIS_URL": f.Redis.URL(), "REDIS_COMMAND_TIMEOUT": testharness.RedisCommandTimeout, "REDIS_DIAL_TIMEOUT": testharness.RedisDialTimeout,
		"MCP_RESOURCE_URL": f.Base + "/mcp", "ACTIONS_AUDIENCE": f.Base + "/actions",
		"UPSTREAM_ISSUER_URL": f.IdP.Issuer, "UPSTREAM_CLIENT_ID": idptest.ClientID, "UPSTREAM_CLIENT_SECRET": f.IdP.ClientSecret,
		"SHUTDOWN_TIMEOUT": testharness.ShutdownTimeout, "DCR_ENABLED": "true", "CIMD_ALLOW_PRIVATE_NETWORKS": "true",
		"RATE_LIMIT_AUTHORIZE_PER_MINUTE": "10000", "RATE_LIMIT_TOKEN_PER_MINUTE": "10000",
		"RATE_LIMIT_USERINFO_PER_MINUTE": "10000", "RATE_LIMIT_REGISTER_PER_MINUTE": "10000",
		"RATE_LIMIT_TOKEN_PER_ADDRESS_PER_MINUTE": "10000",
	}
	for k, v := range env {
		f.env[k] = v
	}
	return f
}

// cheapHashes re-hashes bcrypt-hashed dev client secrets (registries
// written before dev-init used keyed fast hashes) with bcrypt's minimum
// cost: the registry stays the real format, and tests measure the server
// rather than bcrypt under the race detector.
func cheapHashes(t testing.TB, dir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "clients.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cj struct{ Clients []devClient }
	if err := json.Unmarshal(b, &cj); err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(filepath.Join(dir, "clients.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var reg struct {
		Clients []map[string]any `json:"clients"`
	}
	if err := yaml.Unmarshal(y, &reg); err != nil {
		t.Fatal(err)
	}
	for i, c := range reg.Clients {
		if h, _ := c["client_secret_hash"].(string); !strings.HasPrefix(h, "$2") {
			continue // keyed fast hashes (dev-init's) need no cheaper form
		}
		h, _ := bcrypt.GenerateFromPassword([]byte(cj.Clients[i].ClientSecret), bcrypt.MinCost)
		if c["client_id"] != cj.Clients[i].ClientID {
			t.Fatalf("clients.yaml and clients.json disagree at %d", i)
		}
		c["client_secret_hash"] = string(h)
	}
	out, _ := yaml.Marshal(reg)
	if err := os.WriteFile(filepath.Join(dir, "clients.yaml"), out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Admin is the auth-server's admin base URL.
func (f *fleet) Admin() string { return "http://" + f.AS.Addr("admin") }

// Verifier checks access tokens the way the fleet does: key set over gRPC.
func (f *fleet) Verifier(audiences ...string) *tokens.Verifier {
	f.t.Helper()
	return tokens.NewVerifier(tokens.VerifierOptions{Source: f.KeySource(), Audiences: audiences})
}

// KeySource is a new gRPC connection to the auth-server's KeySetService.
func (f *fleet) KeySource() *tokens.GRPCKeySource {
	f.t.Helper()
	conn, err := grpc.NewClient(f.AS.Addr("grpc"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = conn.Close() })
	return tokens.NewGRPCKeySource(conn)
}

// authRequest is one authorization request a test client makes.
type authRequest struct {
	ClientID    string
	RedirectURI string
	Scope       string // "" = omit
	Resource    string // "" = omit
	Verifier    string // PKCE verifier; "" = no PKCE
	State       string
	Nonce       string
	Extra       url.Values
	// Public is set for a public client (token_endpoint_auth_method
	// none): authorize then approves the consent page it is shown when
	// RedirectURI does not prove the client's identity (RFC 8252 §8.6,
	// clients.Client.ApprovalReusable) — at every sign-in, whatever the
	// registry says — as the user would.
	Public bool
}

func newAuthRequest(c devClient) *authRequest {
	return &authRequest{ClientID: c.ClientID, RedirectURI: c.RedirectURIs[0], Scope: "openid profile email",
		Verifier: oauth2.GenerateVerifier(), State: "state-" + oauth2.GenerateVerifier()[:16], Nonce: "nonce-" + oauth2.GenerateVerifier()[:16],
		Public: c.AuthMethod == clients.AuthNone}
}

// consentRequired reports whether a's sign-in always gets the consent
// page: a public client's request whose redirect URI does not prove who
// asks (the server's rule, clients.Client.ApprovalReusable).
func (a *authRequest) consentRequired() bool {
	return a.Public && !(&clients.Client{AuthMethod: clients.AuthNone}).ApprovalReusable(a.RedirectURI)
}

func (a *authRequest) URL(base string) string {
	q := url.Values{"response_type": {"code"}, "client_id": {a.ClientID}, "redirect_uri": {a.RedirectURI}, "state": {a.State}}
	if a.Scope != "" {
		q.Set("scope", a.Scope)
	}
	if a.Nonce != "" {
		q.Set("nonce", a.Nonce)
	}
	if a.Resource != "" {
		q.Set("resource", a.Resource)
	}
	if a.Verifier != "" {
		q.Set("code_challenge", challenge(a.Verifier))
		q.Set("code_challenge_method", "S256")
	}
	for k, v := range a.Extra {
		q[k] = v
	}
	return base + "/oauth/authorize?" + q.Encode()
}

func challenge(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// browser follows redirects like a user agent, with cookies, and stops at
// a redirect to the client (whose URI it returns) or at a page.
type browser struct {
	t      testing.TB
	client *http.Client
	stopAt []string
}

func newBrowser(t testing.TB, stopAt ...string) *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{t: t, stopAt: stopAt}
	b.client = &http.Client{Jar: jar, Timeout: 60 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) > 20 {
			return fmt.Errorf("too many redirects")
		}
		for _, p := range b.stopAt {
			if strings.HasPrefix(req.URL.String(), p) {
				return http.ErrUseLastResponse
			}
		}
		return nil
	}}
	return b
}

var (
	formAction  = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)"`)
)

// page is a response the browser stopped at.
type page struct {
	Status   int
	Location *url.URL // set when stopped at a redirect to the client
	Body     string
	Header   http.Header
	URL      *url.URL
}

func (b *browser) do(req *http.Request) *page {
	b.t.Helper()
	req.Header.Set("Accept", "text/html")
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := &page{Status: resp.StatusCode, Body: string(body), Header: resp.Header, URL: resp.Request.URL}
	if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode/100 == 3 {
		p.Location, _ = resp.Request.URL.Parse(loc)
	}
	return p
}

func (b *browser) get(u string) *page {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

// submit posts the page's form with its hidden fields plus fields.
func (b *browser) submit(p *page, fields url.Values, cookies ...*http.Cookie) *page {
	b.t.Helper()
	m := formAction.FindStringSubmatch(p.Body)
	if m == nil {
		b.t.Fatalf("no form on page %s (status %d):\n%s", p.URL, p.Status, p.Body)
	}
	action, err := p.URL.Parse(htmlUnescape(m[1]))
	if err != nil {
		b.t.Fatal(err)
	}
	form := url.Values{}
	for _, h := range hiddenInput.FindAllStringSubmatch(p.Body, -1) {
		form.Set(h[1], htmlUnescape(h[2]))
	}
	for k, v := range fields {
		form[k] = v
	}
	req, _ := http.NewRequest(http.MethodPost, action.String(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range cookies {
		req.AddCookie(c)
	}
	return b.do(req)
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">").Replace(s)
}

// login runs the authorization request through the dev IdP's login form
// and returns where the browser ends (the client redirect, or a page).
func (f *fleet) login(b *browser, a *authRequest) *page {
	f.t.Helper()
	p := b.get(a.URL(f.Base))
	if p.Location != nil {
		return p // an error sent back to the client before login
	}
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="password"`) {
		return p
	}
	return b.submit(p, url.Values{"username": {idptest.Username}, "password": {idptest.Password}})
}

// loginApproving is login, and the consent page approved when a's sign-in
// always gets it (authRequest.consentRequired: the harness's public
// client), as the user would.
func (f *fleet) loginApproving(b *browser, a *authRequest) *page {
	f.t.Helper()
	return approveIfAsked(b, a, f.login(b, a))
}

// approveIfAsked submits approve on p when p is the consent page of a
// sign-in that always gets it (authRequest.consentRequired), and returns
// where the browser ends; else p.
func approveIfAsked(b *browser, a *authRequest, p *page) *page {
	b.t.Helper()
	if a.consentRequired() && p.Location == nil && p.Status == http.StatusOK && strings.Contains(p.Body, `value="approve"`) {
		return b.submit(p, url.Values{"decision": {"approve"}})
	}
	return p
}

// authorizeJSON sends an authorization request as a caller that does not
// ask for HTML (GET target, or POST body as contentType when body is not
// empty) and returns the JSON error's status, error and
// error_description: the HTML page says fixed words only, never the
// description (TestAuthorizeErrorPageSaysOnlyOurWords).
func authorizeJSON(t *testing.T, target, contentType, body string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, target, nil)
	if body != "" {
		req, _ = http.NewRequest(http.MethodPost, target, strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
	}
	return sendForError(t, http.DefaultClient, req)
}

// sendForError sends req with client and returns the answer's status and
// its JSON error and error_description (RFC 6749 §5.2) — both empty when
// the body is not such an object.
func sendForError(t *testing.T, client *http.Client, req *http.Request) (int, string, string) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Error, e.Description
}

// authorize runs the whole browser part and returns the code.
func (f *fleet) authorize(a *authRequest) string {
	f.t.Helper()
	return f.authorizeWhile(a, 0)
}

// authorizeWhile is authorize sent again (each time with a new browser)
// while it is answered 503 with a Retry-After, for at most budget: right
// after a Redis outage ends, the circuit breaker fails commands for up to
// REDIS_BREAKER_OPEN before its probe closes it.
func (f *fleet) authorizeWhile(a *authRequest, budget time.Duration) string {
	f.t.Helper()
	p := f.loginApproving(newBrowser(f.t, a.RedirectURI), a)
	for deadline := time.Now().Add(budget); p.Location == nil && p.Status == http.StatusServiceUnavailable &&
		p.Header.Get("Retry-After") != "" && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		p = f.loginApproving(newBrowser(f.t, a.RedirectURI), a)
	}
	if p.Location == nil {
		f.t.Fatalf("no redirect to the client: status %d at %s\n%s", p.Status, p.URL, p.Body)
	}
	q := p.Location.Query()
	if q.Get("error") != "" {
		f.t.Fatalf("authorization failed: %s: %s", q.Get("error"), q.Get("error_description"))
	}
	if q.Get("state") != a.State || q.Get("iss") != f.Base {
		f.t.Fatalf("redirect %s: want state %q and iss %q", p.Location, a.State, f.Base)
	}
	return q.Get("code")
}

// tokenResponse is the token endpoint's answer.
type tokenResponse struct {
	Status       int
	Header       http.Header
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	Scope        string `json:"scope"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
}

// post sends a form to the auth-server, authenticating as c per its method.
func (f *fleet) post(path string, c devClient, form url.Values) (*http.Response, []byte) {
	f.t.Helper()
	if c.AuthMethod == "client_secret_post" || c.AuthMethod == "none" {
		form.Set("client_id", c.ClientID)
	}
	if c.AuthMethod == "client_secret_post" {
		form.Set("client_secret", c.ClientSecret)
	}
	req, _ := http.NewRequest(http.MethodPost, f.Base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.AuthMethod == "client_secret_basic" || c.AuthMethod == "" {
		req.SetBasicAuth(url.QueryEscape(c.ClientID), url.QueryEscape(c.ClientSecret))
	}
	resp, err := (&http.Client{Timeout: 90 * time.Second}).Do(req)
	if err != nil {
		f.t.Errorf("POST %s: %v", path, err) // not Fatal: tests call this from goroutines
		return &http.Response{Header: http.Header{}}, []byte(`{}`)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func (f *fleet) token(c devClient, form url.Values) tokenResponse {
	f.t.Helper()
	resp, b := f.post("/oauth/token", c, form)
	var tr tokenResponse
	if err := json.Unmarshal(b, &tr); err != nil {
		f.t.Errorf("token response %d is not JSON: %s", resp.StatusCode, b)
	}
	tr.Status, tr.Header = resp.StatusCode, resp.Header
	return tr
}

func (f *fleet) exchange(c devClient, a *authRequest, code string) tokenResponse {
	f.t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.RedirectURI}}
	if a.Verifier != "" {
		form.Set("code_verifier", a.Verifier)
	}
	return f.token(c, form)
}

func (f *fleet) refresh(c devClient, rt string) tokenResponse {
	f.t.Helper()
	return f.token(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
}

// userinfo calls /oauth/userinfo with the token.
func (f *fleet) userinfo(at string) (int, map[string]any) {
	f.t.Helper()
	status, _, m := f.userinfoAnswer(at)
	return status, m
}

// userinfoAnswer calls GET /oauth/userinfo with the bearer token at (a
// 90 s client timeout) and returns the status, the headers and the JSON
// body (empty when it is none).
func (f *fleet) userinfoAnswer(at string) (int, http.Header, map[string]any) {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.Base+"/oauth/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+at)
	resp, err := (&http.Client{Timeout: 90 * time.Second}).Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	m := map[string]any{}
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, resp.Header, m
}

// uncacheDocuments ends every cached Client ID Metadata Document in f's
// Redis (as the end of its max-age or CIMD_CACHE_TTL would): the next
// lookup of such a client fetches its document again.
func (f *fleet) uncacheDocuments() {
	f.t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: f.Redis.Addr()})
	defer rdb.Close()
	keys, err := rdb.Keys(context.Background(), "*as:cimd:*").Result()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, k := range keys {
		if err := rdb.Del(context.Background(), k).Err(); err != nil {
			f.t.Fatal(err)
		}
	}
}

// whileUnavailable sends a token request (do) again while it is answered
// 503 — refused by the signing queue, or Redis not answering yet — at most
// 100 times, 100 ms apart (~10 s), and returns the last answer; the caller
// checks it. A 503 changes nothing of the grant: the same code or refresh
// token works on the retry.
func whileUnavailable(do func() tokenResponse) tokenResponse {
	tr := do()
	for i := 1; i < 100 && tr.Status == http.StatusServiceUnavailable; i++ {
		time.Sleep(100 * time.Millisecond)
		tr = do()
	}
	return tr
}

// exchangeRetrying is exchange sent again while it is answered 503
// (whileUnavailable); the caller checks the last answer.
func (f *fleet) exchangeRetrying(c devClient, a *authRequest, code string) tokenResponse {
	f.t.Helper()
	return whileUnavailable(func() tokenResponse { return f.exchange(c, a, code) })
}

// fullFlow runs authorize + exchange and fails the test unless tokens come back.
func (f *fleet) fullFlow(c devClient, a *authRequest) tokenResponse {
	f.t.Helper()
	code := f.authorize(a)
	tr := f.exchange(c, a, code)
	if tr.Status != http.StatusOK || tr.AccessToken == "" {
		f.t.Fatalf("token exchange: %d %s: %s", tr.Status, tr.Error, tr.Description)
	}
	return tr
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startShipmentsBackend serves testing/v1's ShipmentsService with gRPC server
// reflection on loopback TCP until the test ends, and returns its address:
// the auth-server supports the scopes its backends declare, so shipments.read
// (proto/tollgate/testing/v1/shipments.proto, the capability guide's worked
// example under names of its own) comes from here, not from linking the package.
func startShipmentsBackend(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	testingv1.RegisterShipmentsServiceServer(srv, testingv1.UnimplementedShipmentsServiceServer{})
	reflection.Register(srv)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// editPendingSignIn changes the one sign-in pending in f's Redis (the
// authorization request waiting for the upstream login) with edit, which
// gets its JSON record decoded, and writes it back with the TTL it had.
func editPendingSignIn(t *testing.T, f *fleet, edit func(p map[string]any)) {
	t.Helper()
	ctx := context.Background()
	rdb := f.Redis.Client()
	keys, err := rdb.Keys(ctx, "*pending:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("pending sign-ins in Redis: %v %v", keys, err)
	}
	raw, err := rdb.Get(ctx, keys[0]).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("pending record %s: %v", raw, err)
	}
	edit(p)
	altered, _ := json.Marshal(p)
	if err := rdb.Set(ctx, keys[0], altered, rdb.TTL(ctx, keys[0]).Val()).Err(); err != nil {
		t.Fatal(err)
	}
}

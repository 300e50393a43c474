package conformance

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tollgate/tollgate/e2e/harness"
)

// The relying-party clients of the registry written for this fleet
// (rpRegistryClients): one per client authentication method, each with a
// loopback redirect URI nothing listens on (the harness's browser stops
// at it and the URL goes to the script) and both resources.
const rpRedirectURI = "http://127.0.0.1/openid-client/callback"

type rpClient struct {
	Name        string         `json:"name"`
	ClientID    string         `json:"client_id"`
	Auth        string         `json:"auth"`
	Secret      string         `json:"secret,omitempty"`
	JWK         map[string]any `json:"jwk,omitempty"`
	RedirectURI string         `json:"redirect_uri"`
	// Light: the flow without the refusals.
	Light bool `json:"light,omitempty"`
}

var rpClients []rpClient

// rpRegistryClients makes the relying-party clients (secrets, a private
// key) and returns their registry entries.
func rpRegistryClients(origin string) ([]any, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	rpClients = nil
	var entries []any
	for _, c := range []struct {
		name, auth, id string
		light          bool
	}{
		{name: "basic", auth: "client_secret_basic"}, {name: "post", auth: "client_secret_post"},
		{name: "public", auth: "none"}, {name: "private-key-jwt", auth: "private_key_jwt"},
		// Credentials with characters the form encoding of RFC 6749
		// §2.3.1 changes (oauth4webapi encodes "-", "." and "~" too, and
		// a space as "+"), in Basic and in the body.
		{name: "basic-encoded", auth: "client_secret_basic", id: "openid-client basic:é+%~.", light: true},
		{name: "post-encoded", auth: "client_secret_post", id: "openid-client post:é+%~.", light: true},
	} {
		rc := rpClient{Name: c.name, ClientID: "openid-client-" + c.name, Auth: c.auth, RedirectURI: rpRedirectURI, Light: c.light}
		if c.id != "" {
			rc.ClientID = c.id
		}
		e := map[string]any{
			"client_id": rc.ClientID, "client_name": "openid-client (" + c.auth + ")",
			"redirect_uris": []string{rpRedirectURI}, "resources": []string{origin + "/mcp", origin + "/actions"},
			"token_endpoint_auth_method": c.auth,
		}
		if c.auth != "none" {
			// A public client's loopback redirect proves nothing (RFC 8252
			// §8.6): it gets the consent page, which the harness's browser
			// approves; the others skip it.
			e["skip_consent"] = true
		}
		switch c.auth {
		case "client_secret_basic", "client_secret_post":
			rc.Secret = rand.Text() + rand.Text()
			if c.light {
				rc.Secret += " +:%/=&é~-._"
			}
			h, err := bcrypt.GenerateFromPassword([]byte(rc.Secret), bcrypt.MinCost)
			if err != nil {
				return nil, err
			}
			e["client_secret_hash"] = string(h)
		case "private_key_jwt":
			pub, priv := rsaJWKs(key, "openid-client-1")
			rc.JWK = priv
			e["jwks"] = map[string]any{"keys": []any{pub}}
		}
		rpClients = append(rpClients, rc)
		entries = append(entries, e)
	}
	return entries, nil
}

// rsaJWKs are key's public and private JWKs (RFC 7518 §6.3).
func rsaJWKs(key *rsa.PrivateKey, kid string) (pub, priv map[string]any) {
	b := func(i *big.Int) string { return base64.RawURLEncoding.EncodeToString(i.Bytes()) }
	pub = map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b(key.N), "e": b(big.NewInt(int64(key.E)))}
	key.Precompute()
	priv = map[string]any{"kty": "RSA", "kid": kid, "n": b(key.N), "e": b(big.NewInt(int64(key.E))), "d": b(key.D),
		"p": b(key.Primes[0]), "q": b(key.Primes[1]), "dp": b(key.Precomputed.Dp), "dq": b(key.Precomputed.Dq), "qi": b(key.Precomputed.Qinv)}
	return pub, priv
}

// rpStep is one "STEP" line of rpclient.mjs.
type rpStep struct {
	Client string `json:"client"`
	Step   string `json:"step"`
	Want   string `json:"want"`
	Got    string `json:"got"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// rpExpectedFailures are steps known to go otherwise than wanted, keyed by
// "<client>/<step>", as expectedFailures for the suite: a listed step that
// goes as wanted fails the test.
var rpExpectedFailures = map[string]knownFailure{}

// rpWant is every step rpclient.mjs must report for a client
// authenticating with auth, in order, and what it must end with: "ok" or
// the refusal as openid-client reports it. dynamic: registered by the
// script (RFC 7591) rather than discovered with a registry client id.
func rpWant(auth string, dynamic, light bool) [][2]string {
	ok := func(s string) [2]string { return [2]string{s, "ok"} }
	var w [][2]string
	if dynamic {
		w = append(w, ok("dynamic-client-registration"))
	} else {
		w = append(w, ok("discovery-openid-configuration"), ok("discovery-oauth-authorization-server"))
	}
	w = append(w, ok("authorization-code-grant"), ok("userinfo"), ok("refresh"),
		[2]string{"refused-refresh-other-resource", "ResponseBodyError invalid_target"},
		[2]string{"refused-refresh-wider-scope", "ResponseBodyError invalid_scope"},
		ok("refresh-with-id-token"), ok("mcp-with-access-token"))
	if auth == "none" {
		w = append(w, [2]string{"introspection-public-client-refused", "ResponseBodyError invalid_client"})
	} else {
		w = append(w, ok("introspection"), ok("introspection-refresh-token"))
	}
	w = append(w, ok("revocation"),
		[2]string{"refresh-after-revocation", "ResponseBodyError invalid_grant"},
		[2]string{"userinfo-after-revocation", "WWWAuthenticateChallengeError bearer invalid_token body=invalid_token"})
	if auth != "none" {
		w = append(w, ok("introspection-after-revocation"))
	}
	w = append(w, ok("end-session"))
	if light {
		return w
	}
	w = append(w, ok("sign-in"),
		[2]string{"refused-wrong-state", "ClientError OAUTH_INVALID_RESPONSE"},
		[2]string{"refused-wrong-iss", "ClientError OAUTH_INVALID_RESPONSE"},
		[2]string{"refused-missing-iss", "ClientError OAUTH_INVALID_RESPONSE"},
		ok("code-grant-after-client-refusals"),
		[2]string{"refused-reused-code", "ResponseBodyError invalid_grant"},
		[2]string{"refused-refresh-after-code-reuse", "ResponseBodyError invalid_grant"},
		ok("sign-in-for-nonce"),
		[2]string{"refused-wrong-nonce", "ClientError OAUTH_JWT_CLAIM_COMPARISON_FAILED"},
		ok("sign-in-for-redirect-uri"),
		[2]string{"refused-wrong-redirect-uri", "ResponseBodyError invalid_grant"},
		ok("sign-in-for-verifier"),
		[2]string{"refused-wrong-code-verifier", "ResponseBodyError invalid_grant"},
		ok("sign-in-for-resource"),
		[2]string{"refused-token-resource-not-the-grants", "ResponseBodyError invalid_target"},
		ok("sign-in-unknown-resource"),
		[2]string{"refused-authorization-unknown-resource", "AuthorizationResponseError invalid_target"},
		ok("sign-in-unknown-scope"),
		[2]string{"refused-unknown-scope", "AuthorizationResponseError invalid_scope"},
		ok("sign-in-without-pkce"),
		[2]string{"refused-without-pkce", "AuthorizationResponseError invalid_request"},
		ok("sign-in-prompt-none"),
		[2]string{"refused-prompt-none", "AuthorizationResponseError login_required"},
		ok("sign-in-max-age"), ok("code-grant-max-age"), ok("revocation-access-token"),
		[2]string{"userinfo-after-access-token-revocation", "WWWAuthenticateChallengeError bearer invalid_token body=invalid_token"},
		[2]string{"refresh-after-access-token-revocation", "ResponseBodyError invalid_grant"},
		ok("sign-in-without-openid"), ok("code-grant-without-openid"), ok("mcp-without-openid"),
		[2]string{"refused-userinfo-without-openid", "WWWAuthenticateChallengeError bearer insufficient_scope body=insufficient_scope"},
		[2]string{"refused-client-credentials-grant", "ResponseBodyError unsupported_grant_type"})
	if dynamic {
		w = append(w, ok("sign-in-consent-denied"), [2]string{"refused-consent-denied", "AuthorizationResponseError access_denied"},
			ok("sign-in-prompt-consent-denied"), [2]string{"refused-prompt-consent-denied", "AuthorizationResponseError access_denied"})
	} else {
		// RFC 8707: the Actions API's token does not open /mcp. The
		// gateway answers RFC 6750 §3's challenge and a JSON error.
		w = append(w, ok("sign-in-for-other-resource"), ok("code-grant-other-resource"),
			[2]string{"refused-other-resource-token-at-mcp", "WWWAuthenticateChallengeError bearer invalid_token body=invalid_token"})
	}
	switch auth {
	case "client_secret_basic":
		// RFC 6749 §5.2: 401 with a Basic challenge for a client that
		// used Basic; oauth4webapi reports a challenge error, whose body
		// is still the JSON error.
		w = append(w, ok("sign-in-for-credentials"), [2]string{"refused-wrong-client-credentials", "WWWAuthenticateChallengeError basic - body=invalid_client"})
	case "client_secret_post", "private_key_jwt":
		w = append(w, ok("sign-in-for-credentials"), [2]string{"refused-wrong-client-credentials", "ResponseBodyError invalid_client"})
	}
	return w
}

// The clients rpclient.mjs registers itself (RFC 7591; the fleet runs
// with DCR_ENABLED=true).
var rpDynamic = []rpClient{
	{Name: "dynamic-public", Auth: "none", RedirectURI: "http://127.0.0.1/openid-client/dynamic"},
	{Name: "dynamic-basic", Auth: "client_secret_basic", RedirectURI: "http://127.0.0.1/openid-client/dynamic"},
}

// TestOpenIDClient runs rpclient.mjs — panva's openid-client, a certified
// OpenID Connect relying party, pinned in package-lock.json — against the
// fleet's auth-server, once for each client authentication method of the
// registry and for clients it registers itself, and judges every step it
// reports against rpWant: discovery (both documents), the authorization
// code flow with PKCE S256, state, nonce and RFC 8707 resource (RFC 9207
// iss, the ID token and at_hash checked), userinfo, refresh (with and
// without an ID token), an MCP call with the token, introspection,
// revocation, max_age, and the refusals openid-client must report — wrong
// state, iss, nonce, redirect_uri, verifier, resource, scope, credentials,
// a reused code, another client's code, no PKCE, prompt=none, a denied
// consent, an unsupported grant. The sign-ins are the harness's browser at
// the dev IdP.
func TestOpenIDClient(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile("rpclient.mjs")
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "rpclient.mjs")
	if err := os.WriteFile(script, src, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(suiteDir, filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	plan, err := json.Marshal(map[string]any{
		"issuer": fleet.Origin, "resource": fleet.Origin + "/mcp", "other_resource": fleet.Origin + "/actions",
		"clients": rpClients, "dynamic": rpDynamic,
	})
	if err != nil {
		t.Fatal(err)
	}
	planFile := filepath.Join(dir, "plan.json")
	if err := os.WriteFile(planFile, plan, 0o600); err != nil {
		t.Fatal(err)
	}

	steps, output, exitErr := runRPClient(t, script, planFile)

	got := map[string]rpStep{}
	for _, s := range steps {
		key := s.Client + "/" + s.Step
		if _, dup := got[key]; dup {
			t.Errorf("%s reported twice", key)
		}
		got[key] = s
	}
	want := map[string]bool{}
	judge := func(client string, wants [][2]string) {
		for _, w := range wants {
			key := client + "/" + w[0]
			want[key] = true
			s, ok := got[key]
			if !ok {
				t.Errorf("%s: not reported", key)
				continue
			}
			if s.Want != w[1] {
				t.Errorf("%s: the script wants %q, the test %q", key, s.Want, w[1])
			}
			bad := s.Got != w[1] || !s.OK
			reason := fmt.Sprintf("got %q, want %q: %s", s.Got, w[1], s.Detail)
			if !bad {
				reason = fmt.Sprintf(" (%s) %s", s.Got, s.Detail)
			}
			verdict(t, "openid-client/"+key, rpExpectedFailures, bad, reason, "")
		}
	}
	for _, c := range rpClients {
		judge(c.Name, rpWant(c.Auth, false, c.Light))
	}
	for _, c := range rpDynamic {
		judge(c.Name, rpWant(c.Auth, true, false))
	}
	// RFC 6749 §4.1.3: the first registry client's code, redeemed by the
	// second (same redirect URI, state and verifier), is invalid_grant;
	// its own client then redeems it.
	judge("cross-client", [][2]string{{"sign-in", "ok"}, {"refused-code-of-another-client", "ResponseBodyError invalid_grant"}, {"code-grant-by-its-client", "ok"}})
	for key := range got {
		if !want[key] {
			t.Errorf("%s: reported, but not a step the test knows", key)
		}
	}
	for key := range rpExpectedFailures {
		if !want[key] {
			t.Errorf("rpExpectedFailures lists %q, which is no step", key)
		}
	}
	// The exit status agrees with the steps: 0 exactly when every step
	// went as the script wanted, and a SUMMARY line.
	anyNotOK := false
	for _, s := range steps {
		anyNotOK = anyNotOK || !s.OK
	}
	switch {
	case !strings.Contains(output, "SUMMARY "):
		t.Errorf("rpclient.mjs printed no SUMMARY (exit: %v)", exitErr)
	case anyNotOK && exitErr == nil:
		t.Errorf("rpclient.mjs exited 0 although a step failed")
	case !anyNotOK && exitErr != nil:
		t.Errorf("rpclient.mjs exited with %v although every step passed", exitErr)
	}
	if t.Failed() {
		t.Logf("rpclient.mjs output:\n%s", output)
	}
}

// runRPClient runs rpclient.mjs on plan: it signs in for each "AUTHORIZE"
// line and answers the callback URL on the script's standard input. It
// returns the steps reported, the whole output and the exit error.
func runRPClient(t *testing.T, script, plan string) ([]rpStep, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node(), script, plan)
	cmd.WaitDelay = 5 * time.Second
	var log lockedBuffer
	cmd.Stderr = &log
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var steps []rpStep
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		log.WriteString(line + "\n")
		switch {
		case strings.HasPrefix(line, "AUTHORIZE "):
			var a struct {
				URL         string `json:"url"`
				RedirectURI string `json:"redirect_uri"`
				Deny        bool   `json:"deny"`
			}
			answer := ""
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "AUTHORIZE ")), &a); err != nil {
				answer = "SIGNIN-ERROR " + err.Error()
			} else {
				b := harness.NewBrowser(fleet.Creds.User.Username, fleet.Creds.User.Password)
				b.Deny = a.Deny
				if cb, err := b.Authorize(ctx, a.URL, a.RedirectURI); err != nil {
					answer = fmt.Sprintf("SIGNIN-ERROR %v (visited %v)", err, b.Visited)
				} else {
					answer = "CALLBACK " + cb.String()
				}
			}
			if _, err := io.WriteString(stdin, strings.ReplaceAll(answer, "\n", " ")+"\n"); err != nil {
				t.Errorf("answering the sign-in: %v", err)
			}
		case strings.HasPrefix(line, "STEP "):
			var s rpStep
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "STEP ")), &s); err != nil {
				t.Errorf("unparsable step %q: %v", line, err)
				continue
			}
			steps = append(steps, s)
		}
	}
	stdin.Close()
	exitErr := cmd.Wait()
	if ctx.Err() != nil {
		t.Errorf("rpclient.mjs did not finish: %v", ctx.Err())
	}
	return steps, log.String(), exitErr
}

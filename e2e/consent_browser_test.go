package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
)

// TestConsentInABrowser: a person approves, then denies, a self-registered
// client on the auth-server's consent page in headless Chromium, through
// the fleet the way `make dev` runs it.
//
// A public client registers by DCR (RFC 7591 §3, token_endpoint_auth_method
// none) with a loopback redirect URI this test serves. Its authorization
// request (PKCE S256, state, resource <origin>/mcp) goes through the dev
// IdP's login page to the consent page, which must name the client and the
// redirect host; a real click on "Allow" posts the form and the browser
// follows the answer's redirect to the client's redirect URI with code,
// state and iss (RFC 9207 §2), and the client redeems the code. A second
// authorization in the same browser asks for a scope not yet approved: the
// page is shown again, "Deny" is clicked, and the redirect carries
// error=access_denied (RFC 6749 §4.1.2.1) with the state.
//
// What the HTTP-client tests of the consent form cannot see: the page's CSP
// form-action, which the browser checks on every redirect of the form's
// answer ('self' alone blocks the hop to the client's origin), and the
// Origin the browser sends under Referrer-Policy no-referrer ("null"): the
// auth-server relies on the consent cookie and the page's token instead.
func TestConsentInABrowser(t *testing.T) {
	exe := chromium(t)

	// The client's redirect URI: a loopback listener that answers every
	// /cb with a page of its own, so the browser stays there to be read.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "client callback")
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	redirectHost := ln.Addr().String()
	redirect := "http://" + redirectHost + "/cb"

	const clientName = "Consent browser e2e"
	clientID := registerPublicClient(t, clientName, redirect)
	resource := fleet.Origin + "/mcp"
	conf := &oauth2.Config{
		ClientID: clientID, RedirectURL: redirect,
		Scopes:   []string{"openid", "profile"},
		Endpoint: oauth2.Endpoint{AuthURL: fleet.Origin + "/oauth/authorize", TokenURL: fleet.Origin + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams},
	}

	b := newBrowser(t, exe)

	// 1. Sign in and approve.
	verifier := oauth2.GenerateVerifier()
	state := "st-" + oauth2.GenerateVerifier()[:12]
	b.do("authorize", chromedp.Navigate(conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", resource))))
	b.waitFor("the dev IdP's login page", `location.pathname === "/login" && document.querySelector("form input[name=password]")`)
	b.do("type the credentials and click Sign in",
		chromedp.SendKeys(`#username`, fleet.Creds.User.Username),
		chromedp.SendKeys(`#password`, fleet.Creds.User.Password),
		chromedp.Click(`button[type=submit]`))
	b.waitFor("the consent page", `document.querySelector("form[action='/oauth/consent'] button[value=approve]")`)
	b.consentPageNames(clientName, redirectHost)
	b.do("click Allow", chromedp.Click(`button[value=approve]`))
	b.waitFor("back at the client's redirect URI", `location.href.startsWith(`+jsString(redirect+"?")+`)`)
	q := b.query()
	if q.Get("error") != "" || q.Get("state") != state || q.Get("iss") != fleet.Origin || q.Get("code") == "" {
		t.Fatalf("client's redirect after Allow %s: want code, state %s and iss %s\n%s", q.Encode(), state, fleet.Origin, b.report())
	}
	x, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	tok, err := conf.Exchange(x, q.Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", resource))
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("the client redeems the code: %v", err)
	}

	// 2. A scope not yet approved: the page again, and Deny. The dev IdP
	// may ask for the password again or remember the sign-in.
	state2 := "st-" + oauth2.GenerateVerifier()[:12]
	conf.Scopes = []string{"openid", "profile", "email"}
	b.do("authorize a new scope", chromedp.Navigate(conf.AuthCodeURL(state2, oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", resource))))
	b.waitFor("the dev IdP's login page or the consent page", `document.querySelector("form input[name=password]") || document.querySelector("button[value=deny]")`)
	if again, _ := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`!!document.querySelector("form input[name=password]")`)); again {
		b.do("sign in again",
			chromedp.SendKeys(`#username`, fleet.Creds.User.Username),
			chromedp.SendKeys(`#password`, fleet.Creds.User.Password),
			chromedp.Click(`button[type=submit]`))
		b.waitFor("the consent page for the new scope", `document.querySelector("form[action='/oauth/consent'] button[value=deny]")`)
	} else {
		t.Log("the dev IdP remembered the sign-in")
	}
	b.consentPageNames(clientName, redirectHost)
	b.do("click Deny", chromedp.Click(`button[value=deny]`))
	b.waitFor("back at the client's redirect URI", `location.href.startsWith(`+jsString(redirect+"?")+`)`)
	q = b.query()
	if q.Get("error") != "access_denied" || q.Get("state") != state2 || q.Get("code") != "" {
		t.Fatalf("client's redirect after Deny %s: want error=access_denied, state %s and no code\n%s", q.Encode(), state2, b.report())
	}
}

// registerPublicClient registers a public client (RFC 7591 §3,
// token_endpoint_auth_method none) with one redirect URI and returns its id.
func registerPublicClient(t *testing.T, name, redirect string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"client_name": name, "redirect_uris": []string{redirect},
		"token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code", "refresh_token"},
		"response_types": []string{"code"},
	})
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Post(fleet.Origin+"/oauth/register", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var reg struct {
		ClientID string `json:"client_id"`
	}
	if err := json.Unmarshal(b, &reg); resp.StatusCode != http.StatusCreated || err != nil || reg.ClientID == "" {
		t.Fatalf("POST /oauth/register = %d %s", resp.StatusCode, b)
	}
	return reg.ClientID
}

// browser is one headless Chromium with its console kept for failure
// messages, as TestSignInAtTheDevIdPInABrowser drives it.
type browser struct {
	t       *testing.T
	ctx     context.Context
	mu      sync.Mutex
	console []string
}

func newBrowser(t *testing.T, exe string) *browser {
	t.Helper()
	ctx := startChromium(t, exe)
	b := &browser{t: t, ctx: ctx}
	// Console errors carry the browser's own account of a refusal. A
	// form-action violation on a redirect names the form's own URL, not the
	// redirect's target (CSP3 §5.4 reports the pre-redirect URL), with the
	// directive that blocked it.
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, fmt.Sprintf("%s: %s (%s)", m.Type, m.Text, m.URL))
			b.mu.Unlock()
		}
	}()
	return b
}

// report is what the browser shows, its console and what the dev IdP
// counted, for a failure message.
func (b *browser) report() string {
	loc, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`location.href`))
	text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	b.mu.Lock()
	defer b.mu.Unlock()
	return fmt.Sprintf("location: %s\npage: %s\nconsole:\n  %s\ndev IdP: %s", loc, text,
		strings.Join(b.console, "\n  "), devIdPLogins())
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	c, stop := context.WithTimeout(b.ctx, 30*time.Second)
	defer stop()
	if err := chromedp.Do(c, steps...); err != nil {
		b.t.Fatalf("%s: %v\n%s", what, err, b.report())
	}
}

// cspViolation is the console's first Content-Security-Policy refusal, or "".
func (b *browser) cspViolation() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.console {
		if strings.Contains(m, "Content Security Policy") {
			return m
		}
	}
	return ""
}

// waitFor polls js (bounded) until it is true; the dev IdP's error box (a
// refused post), the auth-server's error page or a CSP violation in the
// console ends the wait at once.
func (b *browser) waitFor(what, js string) {
	b.t.Helper()
	for i := 0; ; i++ {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool]("!!("+js+")"))
		if err == nil && ok {
			return
		}
		if v := b.cspViolation(); v != "" {
			b.t.Fatalf("%s: the browser refused by Content-Security-Policy: %s\n%s", what, v, b.report())
		}
		refused, _ := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`!!document.querySelector("#error") || document.title === "Sign-in error"`))
		if refused {
			b.t.Fatalf("%s: the sign-in was refused\n%s", what, b.report())
		}
		if i == 600 {
			b.t.Fatalf("%s: %s did not become true (last error %v)\n%s", what, js, err, b.report())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// consentPageNames fails unless the consent page shown names the client
// and the host the user will be sent to.
func (b *browser) consentPageNames(client, host string) {
	b.t.Helper()
	heading, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector("h1").innerText`))
	if err != nil || !strings.Contains(heading, "“"+client+"”") {
		b.t.Fatalf("consent page heading %q (%v): want the client's name %q\n%s", heading, err, client, b.report())
	}
	shown, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`Array.from(document.querySelectorAll("p strong")).map(e => e.innerText).join("|")`))
	if err != nil || !strings.Contains("|"+shown+"|", "|"+host+"|") {
		b.t.Fatalf("consent page shows %q (%v): want the redirect host %s\n%s", shown, err, host, b.report())
	}
}

// query is the query of the page the browser shows.
func (b *browser) query() url.Values {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`location.href`))
	if err != nil {
		b.t.Fatal(err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		b.t.Fatal(err)
	}
	return u.Query()
}

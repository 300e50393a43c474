package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
)

// TestSignInAtTheDevIdPInABrowser: a person signs in through the fleet the
// way `make dev` runs it, in headless Chromium — the client's authorization
// request at the auth-server, the dev IdP's login page on its own origin
// (another port), the username and password typed and "Sign in" clicked
// with real key and mouse events, then the redirects the browser follows
// itself: /login → /authorize/callback → the auth-server's /oauth/callback
// (a third origin as far as the login page is concerned) → the client's
// redirect URI with a code, which the client redeems.
//
// The HTTP-client tests of the form cannot see what a browser adds: the
// Origin header it sends under the page's Referrer-Policy (no-referrer made
// it "null", refused as cross-origin) and the page's CSP form-action,
// which the browser checks on every redirect of the form's answer
// ('self' alone blocked the hop to the auth-server's callback).
func TestSignInAtTheDevIdPInABrowser(t *testing.T) {
	exe := chromium(t)
	c, ok := fleet.Client("local-test")
	if !ok {
		t.Fatal("no dev client local-test")
	}
	redirect := fleet.Origin + "/oauth/test-callback"
	conf := &oauth2.Config{
		ClientID: c.ClientID, ClientSecret: c.ClientSecret, RedirectURL: redirect,
		Scopes:   []string{"openid", "profile", "email"},
		Endpoint: oauth2.Endpoint{AuthURL: fleet.Origin + "/oauth/authorize", TokenURL: fleet.Origin + "/oauth/token", AuthStyle: oauth2.AuthStyleInHeader},
	}
	verifier := oauth2.GenerateVerifier()
	state := "st-" + oauth2.GenerateVerifier()[:12]
	authURL := conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", c.Audience))

	ctx := startChromium(t, exe)
	// Console errors carry the browser's own account of a refusal (a CSP
	// violation names the blocked form-action target).
	var mu sync.Mutex
	var console []string
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			mu.Lock()
			console = append(console, fmt.Sprintf("%s: %s (%s)", m.Type, m.Text, m.URL))
			mu.Unlock()
		}
	}()
	// report is what the browser shows and what the dev IdP counted, for a
	// failure message.
	report := func() string {
		loc, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`))
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("location: %s\npage: %s\nconsole:\n  %s\ndev IdP: %s", loc, text,
			strings.Join(console, "\n  "), devIdPLogins())
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, stop := context.WithTimeout(ctx, 30*time.Second)
		defer stop()
		if err := chromedp.Do(c, steps...); err != nil {
			t.Fatalf("%s: %v\n%s", what, err, report())
		}
	}
	// waitFor polls js (bounded) until it is true; the dev IdP's error box
	// (a refused post) ends the wait at once.
	waitFor := func(what, js string) {
		t.Helper()
		for i := 0; ; i++ {
			ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+js+")"))
			if err == nil && ok {
				return
			}
			refused, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!document.querySelector("#error")`))
			if refused {
				t.Fatalf("%s: the dev IdP refused the sign-in\n%s", what, report())
			}
			if i == 600 {
				t.Fatalf("%s: %s did not become true (last error %v)\n%s", what, js, err, report())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	do("authorize", chromedp.Navigate(authURL))
	waitFor("the dev IdP's login page", `location.pathname === "/login" && document.querySelector("form input[name=password]")`)
	loginURL, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`))
	if err != nil {
		t.Fatal(err)
	}
	if u, err := url.Parse(loginURL); err != nil || u.Scheme+"://"+u.Host == fleet.Origin {
		t.Fatalf("login page %s: want the dev IdP's own origin, not the auth-server's (%v)", loginURL, err)
	}
	do("type the credentials and click Sign in",
		chromedp.SendKeys(`#username`, fleet.Creds.User.Username),
		chromedp.SendKeys(`#password`, fleet.Creds.User.Password),
		chromedp.Click(`button[type=submit]`))
	waitFor("back at the client's redirect URI", `location.href.startsWith(`+jsString(redirect+"?")+`)`)

	loc, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`))
	if err != nil {
		t.Fatal(err)
	}
	cb, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	q := cb.Query()
	if q.Get("error") != "" || q.Get("state") != state || q.Get("iss") != fleet.Origin || q.Get("code") == "" {
		t.Fatalf("client's redirect %s: want code, state %s and iss %s", cb, state, fleet.Origin)
	}
	x, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	tok, err := conf.Exchange(x, q.Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", c.Audience))
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("the client redeems the code: %v", err)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// devIdPLogins returns the dev IdP's tollgate_devidp_logins_total lines.
func devIdPLogins() string {
	resp, err := http.Get(fleet.AdminURL("dev-idp") + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "tollgate_devidp_logins_total{") {
			out = append(out, sc.Text())
		}
	}
	return strings.Join(out, ", ")
}

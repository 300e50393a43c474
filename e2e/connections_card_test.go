package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/tollgate/tollgate/e2e/harness"
)

// The connected-apps card in a real browser, driven by the real fleet: the
// grants are made by real sign-ins, the card's template comes from the
// gateway's resources/read (assets from the public origin, under the CSP
// its metadata declares), its tool calls go through the test host to /mcp
// with a real access token, and the gateway sends them to the
// auth-server's GrantsService. Screenshots of the list and of the list
// after revoking go to e2e/testdata/artifacts/. The widgets module's
// browser tests cover
// every state of the card with stand-in tools; this one shows the card and
// the capability fit together.

const cardURI = "ui://widget/connections-card-v1.html"

// mcpSession is an initialized MCP session on the fleet's /mcp.
type mcpSession struct {
	t     *testing.T
	token string
	id    string
	next  int
}

func openMCP(t *testing.T, token string) *mcpSession {
	t.Helper()
	s := &mcpSession{t: t, token: token, next: 10}
	resp, body := call(t, "POST", fleet.Origin+"/mcp", token, strings.NewReader(initialize),
		"Accept", "application/json, text/event-stream", "Content-Type", "application/json")
	s.id = resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || s.id == "" {
		t.Fatalf("initialize: %d %s", resp.StatusCode, body)
	}
	s.notify("notifications/initialized")
	return s
}

func (s *mcpSession) headers() []string {
	return []string{"Accept", "application/json, text/event-stream", "Content-Type", "application/json",
		"Mcp-Session-Id", s.id, "MCP-Protocol-Version", "2025-11-25"}
}

func (s *mcpSession) notify(method string) {
	s.t.Helper()
	resp, body := call(s.t, "POST", fleet.Origin+"/mcp", s.token, strings.NewReader(`{"jsonrpc":"2.0","method":"`+method+`"}`), s.headers()...)
	if resp.StatusCode != http.StatusAccepted {
		s.t.Fatalf("%s: %d %s", method, resp.StatusCode, body)
	}
}

// request sends one JSON-RPC request and returns its result, or the
// error message as an error.
func (s *mcpSession) request(method string, params any) (json.RawMessage, error) {
	s.next++
	msg, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": s.next, "method": method, "params": params})
	if err != nil {
		return nil, err
	}
	req, _ := http.NewRequest("POST", fleet.Origin+"/mcp", bytes.NewReader(msg))
	h := append([]string{"Authorization", "Bearer " + s.token}, s.headers()...)
	for i := 0; i+1 < len(h); i += 2 {
		req.Header.Set(h[i], h[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d: %s", method, resp.StatusCode, raw)
	}
	data := raw
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		data = nil
		sc := bufio.NewScanner(bytes.NewReader(raw))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), "data:"); ok && strings.Contains(line, `"id"`) {
				data = []byte(strings.TrimSpace(line))
			}
		}
	}
	var out struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("%s: not JSON-RPC: %s", method, raw)
	}
	if out.Error != nil {
		return nil, fmt.Errorf("%s: %d %s", method, out.Error.Code, out.Error.Message)
	}
	return out.Result, nil
}

// grantID reads a token's grant_id claim without verifying it.
func grantID(t *testing.T, at string) string {
	t.Helper()
	parts := strings.Split(at, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %.20s…", at)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		GrantID string `json:"grant_id"`
	}
	if err := json.Unmarshal(payload, &c); err != nil || c.GrantID == "" {
		t.Fatalf("token has no grant_id claim (%v): %s", err, payload)
	}
	return c.GrantID
}

// chromium finds the browser as the widgets tests do: a machine without
// one fails (the card is only proven in a real browser).
func chromium(t *testing.T) string {
	t.Helper()
	p := os.Getenv("CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if info, err := os.Stat(p); err != nil || info.IsDir() || info.Mode().Perm()&0o111 == 0 {
		t.Fatalf("this test needs headless Chromium and there is none at %s (%v).\n"+
			"Install it with:  apt-get update && apt-get install -y chromium\n"+
			"or set CHROMIUM to the path of a Chromium or Chrome binary.", p, err)
	}
	return p
}

// cardPolicy is the Content-Security-Policy a host builds from the
// resource's _meta.ui.csp (as widgets.CSP.Policy does): nothing but the
// declared resource domains. extraScripts are the host's own injected
// scripts (ChatGPT's runtime).
func cardPolicy(resourceDomains []string, extraScripts ...string) string {
	res := strings.Join(resourceDomains, " ")
	if res == "" {
		res = "'none'"
	}
	scripts := strings.TrimSpace(res + " " + strings.Join(extraScripts, " "))
	return strings.Join([]string{"default-src 'none'", "script-src " + scripts, "style-src " + res, "img-src " + res,
		"font-src " + res, "connect-src 'none'", "frame-src 'none'", "object-src 'none'", "base-uri 'none'", "form-action 'none'"}, "; ")
}

// TestConnectedAppsCardInBrowser: the dev user has linked two apps
// through the real flow. Under each host bridge (MCP Apps and ChatGPT),
// the model calls connections.card with the host app's token; Chromium
// draws the auth-server's real list (the host's own grant marked "This
// app"); the user revokes the other app from the card; the card calls
// connections.revoke and reloads through the gateway, and the revoked
// grant is gone: from the card, from connections.list, and its access
// token is refused on /mcp and its refresh token at the token endpoint.
func TestConnectedAppsCardInBrowser(t *testing.T) {
	exe := chromium(t)
	// Screenshots, as the widget tests keep theirs (not committed).
	artifacts := filepath.Join("testdata", "artifacts")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	apps, _ := fleet.Client("gpt-apps-mcp")
	local, _ := fleet.Client("local-test")

	hostApp, err := authorizeScopes(t, "gpt-apps-mcp", apps.Audience, oauth2.AuthStyleInParams, connectionScopes...).exchange()
	if err != nil {
		t.Fatal(err)
	}
	hostGrant := grantID(t, hostApp.AccessToken)
	host := openMCP(t, hostApp.AccessToken)

	// The card's template and its declared CSP, from the gateway.
	res, err := host.request("resources/read", map[string]any{"uri": cardURI})
	if err != nil {
		t.Fatal(err)
	}
	var read struct {
		Contents []struct {
			URI  string `json:"uri"`
			Text string `json:"text"`
			Meta struct {
				UI struct {
					CSP struct {
						ResourceDomains []string `json:"resourceDomains"`
					} `json:"csp"`
				} `json:"ui"`
			} `json:"_meta"`
		} `json:"contents"`
	}
	if err := json.Unmarshal(res, &read); err != nil || len(read.Contents) != 1 || read.Contents[0].Text == "" {
		t.Fatalf("resources/read %s: %v %s", cardURI, err, res)
	}
	card := read.Contents[0]
	if len(card.Meta.UI.CSP.ResourceDomains) != 1 || card.Meta.UI.CSP.ResourceDomains[0] != fleet.Origin {
		t.Fatalf("the card declares resource domains %v, want the public origin %s", card.Meta.UI.CSP.ResourceDomains, fleet.Origin)
	}

	// The tool that draws the card, by the name the gateway lists.
	res, err = host.request("tools/list", map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	var tools struct {
		Tools []struct {
			Name string         `json:"name"`
			Meta map[string]any `json:"_meta"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(res, &tools); err != nil {
		t.Fatal(err)
	}
	cardTool := ""
	for _, tl := range tools.Tools {
		if tl.Meta["openai/outputTemplate"] == cardURI {
			cardTool = tl.Name
		}
	}
	if cardTool == "" {
		t.Fatalf("no tool draws %s", cardURI)
	}

	// The card's origin (a host sandbox domain) and the host pages.
	hostFiles := filepath.Join(harness.RepoRoot(), "widgets", "testdata", "host")
	serveHostFile := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			b, err := os.ReadFile(filepath.Join(hostFiles, name))
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			ct := "text/html; charset=utf-8"
			switch filepath.Ext(name) {
			case ".js":
				ct = "text/javascript; charset=utf-8"
			case ".css":
				ct = "text/css; charset=utf-8"
			}
			w.Header().Set("Content-Type", ct)
			w.Write(b)
		}
	}
	cardMux := http.NewServeMux()
	var cardOrigin string
	cardMux.HandleFunc("GET /card.html", func(w http.ResponseWriter, r *http.Request) {
		html, policy := card.Text, cardPolicy(card.Meta.UI.CSP.ResourceDomains)
		if r.URL.Query().Has("openai") {
			// ChatGPT puts its runtime into the card's document first.
			html = strings.Replace(html, "<head>\n", "<head>\n<script src=\"/openai-runtime.js\"></script>\n", 1)
			policy = cardPolicy(card.Meta.UI.CSP.ResourceDomains, cardOrigin+"/openai-runtime.js")
		}
		w.Header().Set("Content-Security-Policy", policy)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, html)
	})
	cardMux.HandleFunc("GET /openai-runtime.js", serveHostFile("openai-runtime.js"))
	cardMux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	cardSrv := httptest.NewServer(cardMux)
	defer cardSrv.Close()
	cardOrigin = cardSrv.URL

	hostMux := http.NewServeMux()
	for _, f := range []string{"mcp-host.html", "mcp-host.js", "mcp-host.css", "chatgpt-host.html", "chatgpt-host.js", "gateway.js"} {
		hostMux.HandleFunc("GET /"+f, serveHostFile(f))
	}
	hostMux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	// The host's backend: tools/call on the real /mcp with the host app's
	// token (the only token the pages hold, labelled "full").
	hostMux.HandleFunc("POST /host/call", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Token     string          `json:"token"`
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&in); err != nil || in.Token != "full" || in.Name == "" {
			http.Error(w, "want {token: full, name, arguments}", http.StatusBadRequest)
			return
		}
		if len(in.Arguments) == 0 || string(in.Arguments) == "null" {
			in.Arguments = json.RawMessage("{}")
		}
		out, err := host.request("tools/call", map[string]any{"name": in.Name, "arguments": in.Arguments})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
	})
	hostSrv := httptest.NewServer(hostMux)
	defer hostSrv.Close()

	browser := startChromium(t, exe)

	for _, b := range []struct{ name, page, view string }{
		{"mcpapps", "/mcp-host.html", cardOrigin + "/card.html"},
		{"chatgpt", "/chatgpt-host.html", cardOrigin + "/card.html?openai=1"},
	} {
		t.Run(b.name, func(t *testing.T) {
			// The app the user will cut off: the local test client, linked
			// through the real flow, with a refresh token.
			victim := link(t, "local-test", local.Audience, oauth2.AuthStyleInHeader)
			victimGrant := grantID(t, victim.AccessToken)
			if victim.RefreshToken == "" {
				t.Fatal("local-test got no refresh token")
			}
			victimChecks := mcpVerifiers(t, victim.AccessToken)
			acceptedEverywhere(t, victimChecks)

			ctx, cancel := chromedp.NewContext(browser)
			defer cancel()
			var mu sync.Mutex
			var console []string
			messages := chromedp.Console(ctx)
			go func() {
				for m, err := range messages {
					if err != nil {
						return
					}
					if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
						mu.Lock()
						console = append(console, fmt.Sprintf("%s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line+1))
						mu.Unlock()
					}
				}
			}()
			do := func(steps ...chromedp.Action[chromedp.Void]) {
				t.Helper()
				c, stop := context.WithTimeout(ctx, 30*time.Second)
				defer stop()
				if err := chromedp.Do(c, steps...); err != nil {
					t.Fatal(err)
				}
			}
			hostEval := func(js string) {
				t.Helper()
				if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](js)); err != nil {
					t.Fatalf("host: %s: %v", js, err)
				}
			}
			waitHost := func(js string) {
				t.Helper()
				deadline := time.Now().Add(60 * time.Second)
				for {
					ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+js+")"))
					if err == nil && ok {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("host: %s did not become true (last error %v)", js, err)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}

			do(chromedp.EmulateViewport(560, 900))
			do(chromedp.Navigate(hostSrv.URL + b.page + "?" + url.Values{"view": {b.view}, "theme": {"light"}, "token": {"full"}}.Encode()))
			if b.name == "mcpapps" {
				waitHost(`window.__host && window.__host.initialized`)
			} else {
				waitHost(`window.__host && window.__host.ready`)
			}

			// The card's frame, read in an isolated world (as a person sees it).
			tree, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (page.GetFrameTreeResult, error) {
				return cdp.Call(ctx, tg, page.GetFrameTree, cdp.Empty{})
			})
			if err != nil {
				t.Fatal(err)
			}
			var frame *cdp.Frame
			for _, c := range tree.FrameTree.ChildFrames {
				if strings.HasPrefix(c.Frame.URL, b.view) {
					frame = c.Frame
				}
			}
			if frame == nil {
				t.Fatalf("no card frame from %s", b.view)
			}
			world, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (page.CreateIsolatedWorldResult, error) {
				return cdp.Call(ctx, tg, page.CreateIsolatedWorld, page.CreateIsolatedWorldParams{FrameID: frame.ID, WorldName: "tollgate-e2e"})
			})
			if err != nil {
				t.Fatal(err)
			}
			inCard := func(ctx context.Context, js string) (string, error) {
				return chromedp.Run(ctx, chromedp.Evaluate[string](js, func(p *runtime.EvaluateParams) { p.ContextID = world.ExecutionContextID }))
			}
			type row struct {
				Grant, Name, Current string
			}
			type view struct {
				State, Notice string
				Rows          []row
			}
			read := func() view {
				t.Helper()
				s, err := inCard(ctx, `JSON.stringify((function () {
  var m = document.getElementById("tg-card"), n = document.querySelector(".tg-notice");
  return {State: m ? m.getAttribute("data-state") : "", Notice: n ? n.textContent : "",
    Rows: Array.prototype.map.call(document.querySelectorAll(".tg-connection"), function (li) {
      var name = li.querySelector(".tg-connection__name"), cur = li.querySelector(".tg-connection__current");
      return {Grant: li.getAttribute("data-grant"), Name: name ? name.textContent : "", Current: cur ? cur.textContent : ""};
    })};
})())`)
				if err != nil {
					t.Fatalf("read card: %v", err)
				}
				var v view
				if err := json.Unmarshal([]byte(s), &v); err != nil {
					t.Fatalf("read card: %v: %s", err, s)
				}
				return v
			}
			waitCard := func(what string, ok func(view) bool) view {
				t.Helper()
				deadline := time.Now().Add(60 * time.Second)
				for {
					v := read()
					if ok(v) {
						return v
					}
					if time.Now().After(deadline) {
						t.Fatalf("the card never showed %s; last seen %+v", what, v)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			has := func(v view, grant string) (row, bool) {
				for _, r := range v.Rows {
					if r.Grant == grant {
						return r, true
					}
				}
				return row{}, false
			}
			click := func(sel string) {
				t.Helper()
				got, err := inCard(ctx, fmt.Sprintf(`(function () { var e = document.querySelector(%q); if (!e) return "missing"; if (e.disabled) return "disabled"; e.click(); return ""; })()`, sel))
				if err != nil || got != "" {
					t.Fatalf("click %s: %v %s", sel, err, got)
				}
			}

			// The model calls the card's tool.
			hostEval(fmt.Sprintf(`window.__host.runTool(%q, {})`, cardTool))
			v := waitCard("the real list", func(v view) bool { return v.State == "ready" })
			mine, ok := has(v, hostGrant)
			if !ok || mine.Current != "This app" || mine.Name == "" {
				t.Errorf("the host's own grant %s: %+v (present %v), want it marked This app", hostGrant, mine, ok)
			}
			other, ok := has(v, victimGrant)
			if !ok || other.Current != "" || other.Name == "" {
				t.Fatalf("the other app's grant %s: %+v (present %v) in %+v", victimGrant, other, ok, v.Rows)
			}

			screenshot := func(name string) {
				t.Helper()
				time.Sleep(60 * time.Millisecond) // let the frame paint the last change
				buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
				if err != nil {
					t.Fatalf("screenshot: %v", err)
				}
				if err := os.WriteFile(filepath.Join(artifacts, "e2e-"+b.name+"-connections-card-"+name+".png"), buf, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			screenshot("list")

			// Revoke it from the card: confirm, then the real revoke and reload.
			sel := fmt.Sprintf(`.tg-connection[data-grant=%q]`, victimGrant)
			click(sel + " .tg-revoke")
			click(sel + " .tg-revoke-confirm")
			v = waitCard("the list after revoking", func(v view) bool { return v.Notice != "" })
			// The revoke tool's answer reached the card before it showed
			// the notice: the promise's second is counted from here, a
			// little after the revocation's response (waitCard's polling).
			revoked := time.Now()
			if v.Notice != "Access revoked for "+other.Name+"." {
				t.Errorf("notice %q", v.Notice)
			}
			if _, still := has(v, victimGrant); still {
				t.Errorf("the revoked grant is still listed: %+v", v.Rows)
			}
			if _, ok := has(v, hostGrant); !ok {
				t.Errorf("the host's own grant is gone: %+v", v.Rows)
			}
			screenshot("revoked")
			calls, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(window.__host.calls.map(function (c) { return c.name; }))`))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			_ = json.Unmarshal([]byte(calls), &names)
			if len(names) != 3 || names[0] != cardTool || names[2] != cardTool || !strings.HasPrefix(names[1], "connections") || !strings.HasSuffix(names[1], "revoke") {
				t.Errorf("the host made the calls %v, want the card, the revoke tool, the card", names)
			}

			// The revocation is real: the list, the access token, the refresh token.
			out, err := host.request("tools/call", map[string]any{"name": "connections.list", "arguments": map[string]any{}})
			if err != nil || strings.Contains(string(out), victimGrant) || !strings.Contains(string(out), hostGrant) {
				t.Errorf("connections.list after the card revoked %s: %v %s", victimGrant, err, out)
			}
			refusedEverywhereWithinPromise(t, victimChecks, revoked)
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {victim.RefreshToken}}
			req, _ := http.NewRequest("POST", fleet.Origin+"/oauth/token", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(url.QueryEscape(local.ClientID), url.QueryEscape(local.ClientSecret))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "invalid_grant") {
				t.Errorf("refresh of the revoked grant: %d %s, want 400 invalid_grant", resp.StatusCode, body)
			}

			// Any console error or exception in the host or the card (CSP
			// violations and failed loads included) fails the test.
			time.Sleep(100 * time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			for _, c := range console {
				t.Errorf("console %s", c)
			}
		})
	}
}

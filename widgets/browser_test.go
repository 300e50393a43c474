package widgets

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The browser tests load every card in headless Chromium under both host
// bridges, each card from its own origin under the CSP its metadata
// declares, and fail on any console error. Screenshots go to
// testdata/artifacts/ (not committed).

const (
	lightBackground = "rgb(255, 255, 255)" // --tg-bg, light
	darkBackground  = "rgb(27, 30, 35)"    // --tg-bg, dark (#1b1e23)
	waitStep        = 40 * time.Millisecond
	waitLimit       = 5 * time.Second
	hostLimit       = 30 * time.Second // host waits may include gateway calls
	noResultLimit   = 9 * time.Second  // the bridge gives up after 5 s
)

// chromiumPath finds the browser. A machine without one fails the test: the
// cards are only proven in a real browser.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	info, err := os.Stat(p)
	if err == nil && (info.IsDir() || info.Mode().Perm()&0o111 == 0) {
		err = fmt.Errorf("not an executable file")
	}
	if err != nil {
		t.Fatalf("the widget browser tests need headless Chromium, and there is none at %s (%v).\n"+
			"Install it with:  apt-get update && apt-get install -y chromium\n"+
			"or set CHROMIUM to the path of a Chromium or Chrome binary.", p, err)
	}
	return p
}

// ---- fixtures ------------------------------------------------------------

type card struct {
	widget    Widget
	data      map[string]any
	invalid   map[string]any
	invalidIs string            // the error text the invalid data must show
	selectors map[string]string // field -> CSS selector in the card
	want      map[string]string // field -> exact text
	hidden    []string          // text the card must not show
}

func cards(t *testing.T) []card {
	health, _ := Lookup("ui://widget/health-status-card-v1.html")
	profile, _ := Lookup("ui://widget/profile-summary-card-v1.html")
	connections, _ := Lookup("ui://widget/connections-card-v1.html")
	if health.URI == "" || profile.URI == "" || connections.URI == "" {
		t.Fatal("the cards under test are not in All")
	}
	return []card{
		{
			widget: health,
			data: map[string]any{
				"service": "capability-core", "version": "v0.1.0", "status": "ok",
				"timestamp": "2026-11-23T18:00:00Z",
				"checks": []any{
					map[string]any{"name": "redis", "status": "ok", "detail": ""},
					map[string]any{"name": "backend", "status": "degraded", "detail": "p99 latency 850 ms"},
				},
			},
			invalid:   map[string]any{"service": "capability-core", "status": 42},
			invalidIs: "The health result has no status.",
			selectors: map[string]string{
				"status": ".tg-status-label", "summary": ".tg-summary", "parts": ".tg-parts",
				"time": "time.tg-time", "title": "#tg-title",
			},
			want: map[string]string{
				"status": "Working normally", "summary": "Everything the app needs is responding.",
				"parts": "1 of 2 responding", "title": "Service status",
			},
			// End users see no internal service names, versions or dependency names.
			hidden: []string{"capability-core", "v0.1.0", "redis", "backend", "p99"},
		},
		{
			widget: profile,
			data: map[string]any{
				"sub": "248289761001", "name": "Ada Lovelace", "given_name": "Ada", "family_name": "Lovelace",
				"preferred_username": "ada", "email": "ada@example.com", "email_verified": true,
			},
			invalid:   map[string]any{"sub": "248289761001", "email": []any{"a@example.com"}},
			invalidIs: "The profile's email is not text.",
			selectors: map[string]string{
				"name": ".tg-name", "handle": ".tg-handle", "email": ".tg-email__address",
				"verified": ".tg-verified", "username": ".tg-username", "sub": ".tg-sub",
				"avatar": ".tg-avatar", "title": "#tg-title",
			},
			want: map[string]string{
				"name": "Ada Lovelace", "handle": "@ada", "email": "ada@example.com", "verified": "Verified",
				"username": "ada", "sub": "248289761001", "avatar": "AL", "title": "Your profile",
			},
		},
		{
			widget: connections,
			data: map[string]any{"connections": []any{
				map[string]any{"grant_id": "g-1", "client_id": "chatgpt", "client_name": "ChatGPT", "scopes": []any{"openid", "profile"},
					"audiences": []any{"http://localhost:4000/mcp"}, "created_at": "2026-11-23T18:00:00Z", "last_used_at": "", "current": true},
				map[string]any{"grant_id": "g-2", "client_id": "8f14e45f-ceea-467f-a0e6-c7ac4a2b3b5e", "client_name": "",
					"scopes": []any{"openid"}, "created_at": "2026-11-22T08:00:00Z", "last_used_at": "2026-11-23T09:30:00Z"},
			}},
			invalid:   map[string]any{"connections": []any{map[string]any{"client_name": "No grant"}}},
			invalidIs: "Connected app 1 has no grant id.",
			selectors: map[string]string{
				"name1": ".tg-connection:nth-child(1) .tg-connection__name", "current": ".tg-connection__current",
				"name2": ".tg-connection:nth-child(2) .tg-connection__name", "scope": ".tg-connection__scope", "title": "#tg-title",
				"meta1": ".tg-connection:nth-child(1) .tg-connection__meta",
			},
			want: map[string]string{
				// Without the gateway's scope words (no _meta here) a scope shows as its name.
				"name1": "ChatGPT", "current": "This app", "name2": "8f14e45f-ceea-467f-a0e6-c7ac4a2b3b5e", "scope": "openid",
				"title": "Connected apps", "meta1": "Connected Nov 23, 2026, 06:00 PM UTC \u00b7 Not used yet",
			},
		},
	}
}

// xssMark is what the payloads would set if any of them ran.
const xssMark = `document.documentElement.setAttribute('data-xss','ran')`

var xssPayloads = map[string]string{
	"name":               `<img src=x onerror="` + xssMark + `">`,
	"preferred_username": `<script>` + xssMark + `</script>`,
	"email":              `"><svg onload="` + xssMark + `">@example.com`,
}

// ---- environment ---------------------------------------------------------

type browserEnv struct {
	browser   context.Context
	origin    string // the public origin: templates and /app-ui
	hostURL   string // the test hosts (ChatGPT, MCP Apps), another origin
	artifacts string
	fleet     *fleet // the real gateway the hosts call
}

func newBrowserEnv(t *testing.T) *browserEnv {
	t.Helper()
	exe := chromiumPath(t)

	artifacts := filepath.Join("testdata", "artifacts")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}

	var publicOrigin string
	mux := http.NewServeMux()
	mux.Handle(AssetPath, AssetHandler())
	mux.HandleFunc("GET /card/{file}", func(w http.ResponseWriter, r *http.Request) {
		wd, ok := Lookup("ui://widget/" + r.PathValue("file"))
		if !ok {
			http.NotFound(w, r)
			return
		}
		html, err := wd.HTML(publicOrigin)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		csp, err := wd.CSP(publicOrigin)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if r.URL.Query().Has("openai") {
			// What ChatGPT does to the document: its runtime runs first.
			q := url.Values{"theme": {r.URL.Query().Get("theme")}, "late": {r.URL.Query().Get("late")}}
			tag := `<script src="/host/openai-runtime.js?` + q.Encode() + `"></script>`
			html = strings.Replace(html, "<head>\n", "<head>\n"+tag+"\n", 1)
		}
		w.Header().Set("Content-Security-Policy", csp.Policy())
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, html)
	})
	mux.HandleFunc("GET /host/openai-runtime.js", serveFile("openai-runtime.js"))
	mux.HandleFunc("GET /favicon.ico", noFavicon)
	widgetSrv := httptest.NewServer(mux)
	t.Cleanup(widgetSrv.Close)
	publicOrigin = widgetSrv.URL

	fl := startFleet(t)
	hostMux := http.NewServeMux()
	for _, f := range []string{"mcp-host.html", "mcp-host.js", "mcp-host.css", "chatgpt-host.html", "chatgpt-host.js", "gateway.js"} {
		hostMux.HandleFunc("GET /"+f, serveFile(f))
	}
	hostMux.HandleFunc("POST /host/call", fl.hostCall)
	hostMux.HandleFunc("GET /favicon.ico", noFavicon)
	hostSrv := httptest.NewServer(hostMux)
	t.Cleanup(hostSrv.Close)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.Flag("lang", "en-US"),
		chromedp.Env("TZ=UTC", "LANG=en_US.UTF-8"),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start Chromium (%s): %v", exe, err)
	}
	return &browserEnv{browser: browser, origin: publicOrigin, hostURL: hostSrv.URL, artifacts: artifacts, fleet: fl}
}

// noFavicon answers the browser's favicon request, which would otherwise
// log a 404 to the console of every top-level page.
func noFavicon(w http.ResponseWriter, _ *http.Request) {
	w.WriteHeader(http.StatusNoContent)
}

func serveFile(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := os.ReadFile(filepath.Join("testdata", "host", name))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", ContentType(name))
		w.Write(body)
	}
}

// ---- one tab -------------------------------------------------------------

type tab struct {
	t     *testing.T
	env   *browserEnv
	ctx   context.Context
	world runtime.ExecutionContextID // an isolated world in the card's frame

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

func (e *browserEnv) newTab(t *testing.T) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(e.browser)
	t.Cleanup(cancel)
	tb := &tab{t: t, env: e, ctx: ctx}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.console = append(tb.console, m)
			tb.mu.Unlock()
		}
	}()
	tb.do(chromedp.EmulateViewport(560, 760))
	t.Cleanup(tb.checkConsole)
	return tb
}

func (tb *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.t.Fatal(err)
	}
}

// hostEval runs JavaScript in the main world of the top page (the host).
func (tb *tab) hostEval(js string) {
	tb.t.Helper()
	if _, err := chromedp.Run(tb.ctx, chromedp.Evaluate[chromedp.Void](js)); err != nil {
		tb.t.Fatalf("host: %s: %v", js, err)
	}
}

func hostValue[T any](tb *tab, js string) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		tb.t.Fatalf("host: %s: %v", js, err)
	}
	return v
}

// waitHost polls a host expression until it is true.
func (tb *tab) waitHost(js string) {
	tb.t.Helper()
	deadline := time.Now().Add(hostLimit)
	for {
		ok, err := chromedp.Run(tb.ctx, chromedp.Evaluate[bool]("!!("+js+")"))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("host: %s did not become true (last error %v)", js, err)
		}
		time.Sleep(waitStep)
	}
}

// useFrame points card reads at the frame whose URL starts with prefix.
func (tb *tab) useFrame(prefix string) {
	tb.t.Helper()
	tree, err := chromedp.Run(tb.ctx, func(ctx context.Context, t *chromedp.Target) (page.GetFrameTreeResult, error) {
		return cdp.Call(ctx, t, page.GetFrameTree, cdp.Empty{})
	})
	if err != nil {
		tb.t.Fatal(err)
	}
	var find func(*page.FrameTree) *cdp.Frame
	find = func(n *page.FrameTree) *cdp.Frame {
		if n == nil {
			return nil
		}
		if strings.HasPrefix(n.Frame.URL, prefix) {
			return n.Frame
		}
		for _, c := range n.ChildFrames {
			if f := find(c); f != nil {
				return f
			}
		}
		return nil
	}
	f := find(tree.FrameTree)
	if f == nil {
		tb.t.Fatalf("no frame loaded from %s", prefix)
	}
	world, err := chromedp.Run(tb.ctx, func(ctx context.Context, t *chromedp.Target) (page.CreateIsolatedWorldResult, error) {
		return cdp.Call(ctx, t, page.CreateIsolatedWorld, page.CreateIsolatedWorldParams{FrameID: f.ID, WorldName: "tollgate-widget-test"})
	})
	if err != nil {
		tb.t.Fatalf("isolated world in %s: %v", f.URL, err)
	}
	tb.world = world.ExecutionContextID
}

// snapshot is what a person would see of the card, read from its DOM.
type snapshot struct {
	State     string            `json:"state"`
	Busy      string            `json:"busy"`
	Theme     string            `json:"theme"`
	Display   string            `json:"display"`
	Bg        string            `json:"bg"`
	Fg        string            `json:"fg"`
	Note      string            `json:"note"`
	Alert     string            `json:"alert"`
	AlertHead string            `json:"alertHead"`
	AlertRole string            `json:"alertRole"`
	Active    int               `json:"active"` // img, script, svg, iframe... inside the card
	XSS       string            `json:"xss"`
	DateTime  string            `json:"datetime"`
	Fields    map[string]string `json:"fields"`
	Pairs     [][2]string       `json:"pairs"` // [text colour, background] of every text element
	Landmark  bool              `json:"landmark"`
	Overflow  bool              `json:"overflow"` // the card is wider than its frame
	Text      string            `json:"text"`     // all the card's text
	Font      string            `json:"font"`     // the body's computed font-family
}

const snapshotJS = `(function (sel) {
  function text(s) { var e = document.querySelector(s); return e ? e.textContent : null; }
  function bgOf(e) {
    for (; e; e = e.parentElement) {
      var c = getComputedStyle(e).backgroundColor;
      if (c && c !== "rgba(0, 0, 0, 0)" && c !== "transparent") return c;
    }
    return "rgb(255, 255, 255)";
  }
  var m = document.getElementById("tg-card");
  var out = {
    state: m ? m.getAttribute("data-state") : "", busy: m ? m.getAttribute("aria-busy") : "",
    theme: document.documentElement.getAttribute("data-theme") || "",
    display: document.documentElement.getAttribute("data-display-mode") || "",
    bg: m ? getComputedStyle(m).backgroundColor : "", fg: m ? getComputedStyle(m).color : "",
    note: text(".tg-note") || "", alert: text(".tg-alert__detail") || "", alertHead: text(".tg-alert__title") || "",
    alertRole: (document.querySelector(".tg-alert") || { getAttribute: function () { return ""; } }).getAttribute("role") || "",
    active: m ? m.querySelectorAll("img, script, svg, iframe, object, embed, style, link, a").length : -1,
    xss: document.documentElement.getAttribute("data-xss") || "",
    datetime: (document.querySelector("time.tg-time") || { getAttribute: function () { return ""; } }).getAttribute("datetime") || "",
    fields: {}, pairs: [],
    overflow: document.documentElement.scrollWidth > document.documentElement.clientWidth + 1,
    text: m ? m.textContent : "", font: getComputedStyle(document.body).fontFamily,
    landmark: !!(m && m.tagName === "MAIN" && m.getAttribute("aria-labelledby") && document.getElementById(m.getAttribute("aria-labelledby")))
  };
  for (var k in sel) { var v = text(sel[k]); if (v !== null) out.fields[k] = v; }
  if (m) {
    m.querySelectorAll("h1, h2, p, dt, dd, li, li span, .tg-pill, time, button").forEach(function (e) {
      if (e.textContent.trim() !== "" && e.getClientRects().length) out.pairs.push([getComputedStyle(e).color, bgOf(e)]);
    });
  }
  return out;
})(%s)`

func (tb *tab) snap(selectors map[string]string) snapshot {
	tb.t.Helper()
	sel, err := json.Marshal(selectors)
	if err != nil {
		tb.t.Fatal(err)
	}
	s, err := chromedp.Run(tb.ctx, chromedp.Evaluate[snapshot](fmt.Sprintf(snapshotJS, sel), func(p *runtime.EvaluateParams) {
		p.ContextID = tb.world
	}))
	if err != nil {
		tb.t.Fatalf("read card: %v", err)
	}
	return s
}

// waitCard polls the card until ok accepts it.
func (tb *tab) waitCard(selectors map[string]string, limit time.Duration, what string, ok func(snapshot) bool) snapshot {
	tb.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		s := tb.snap(selectors)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("card never showed %s; last seen: %+v", what, s)
		}
		time.Sleep(waitStep)
	}
}

func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	// Let the frame paint what the last DOM change asked for.
	time.Sleep(60 * time.Millisecond)
	buf, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(filepath.Join(tb.env.artifacts, name+".png"), buf, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

// checkConsole fails the test on any console error or uncaught exception in
// the page or the card's frame (CSP violations and failed loads included).
func (tb *tab) checkConsole() {
	// Messages travel on their own goroutine; let the last ones land.
	time.Sleep(100 * time.Millisecond)
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, m := range tb.console {
		switch m.Type {
		case chromedp.ConsoleError, chromedp.ConsoleException:
			tb.t.Errorf("console %s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line+1)
		case chromedp.ConsoleWarning:
			if strings.Contains(m.Text, "tollgate-console-probe") || strings.Contains(m.Text, "allow-scripts and allow-same-origin") {
				// Our probe, and the sandbox flags SEP-1865 asks hosts for.
				continue
			}
			tb.t.Logf("console warning: %s (%s:%d)", m.Text, m.URL, m.Line+1)
		}
	}
}

func (tb *tab) sawConsole(text string) bool {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, m := range tb.console {
		if strings.Contains(m.Text, text) {
			return true
		}
	}
	return false
}

// ---- the two bridges ----------------------------------------------------

// bridge drives one kind of host.
type bridge struct {
	name string
	// open loads the card under the host and waits until it may send.
	open func(tb *tab, w Widget, theme string)
	// openAs is open with the host holding the token labelled token
	// ("full", or "weak": openid only).
	openAs func(tb *tab, w Widget, theme, token string)
	// result hands structured tool data to the card.
	result func(tb *tab, data any)
	// fail reports a failed tool call with the message.
	fail func(tb *tab, msg string)
	// empty reports a call that returned no structured data.
	empty func(tb *tab)
	// theme switches the host theme.
	theme func(tb *tab, theme string)
}

func mustJSONString(tb *tab, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		tb.t.Fatal(err)
	}
	return string(b)
}

// openChatGPT loads the ChatGPT host page with the card in its iframe and
// waits until the runtime and the card's scripts ran. late="1" installs
// window.openai only with the first globals.
func openChatGPT(tb *tab, w Widget, theme, token, late string) {
	tb.t.Helper()
	view := tb.env.origin + "/card/" + w.Name + ".html?" + url.Values{"openai": {"1"}, "theme": {theme}, "late": {late}}.Encode()
	tb.do(chromedp.Navigate(tb.env.hostURL + "/chatgpt-host.html?" + url.Values{"view": {view}, "token": {token}}.Encode()))
	tb.waitHost(`window.__host && window.__host.ready`)
	tb.useFrame(view)
}

func openMCPApps(tb *tab, w Widget, theme, token string) {
	tb.t.Helper()
	view := tb.env.origin + "/card/" + w.Name + ".html"
	tb.do(chromedp.Navigate(tb.env.hostURL + "/mcp-host.html?" + url.Values{"view": {view}, "theme": {theme}, "token": {token}}.Encode()))
	// SEP-1865: the host sends nothing before the view is initialized.
	tb.waitHost(`window.__host && window.__host.initialized`)
	tb.useFrame(view)
}

var chatgpt = bridge{
	name: "chatgpt",
	open: func(tb *tab, w Widget, theme string) { openChatGPT(tb, w, theme, "full", "") },
	openAs: func(tb *tab, w Widget, theme, token string) {
		openChatGPT(tb, w, theme, token, "")
	},
	result: func(tb *tab, data any) {
		tb.hostEval(`window.__host.setGlobals({toolOutput: ` + mustJSONString(tb, data) + `})`)
	},
	fail: func(tb *tab, msg string) {
		tb.hostEval(`window.__host.setGlobals({toolOutput: null, toolResponseMetadata: {"tollgate/error": ` + mustJSONString(tb, msg) + `}})`)
	},
	empty: func(tb *tab) {
		tb.hostEval(`window.__host.setGlobals({toolOutput: {}, toolResponseMetadata: {}})`)
	},
	theme: func(tb *tab, theme string) {
		tb.hostEval(`window.__host.setGlobals({theme: ` + mustJSONString(tb, theme) + `})`)
	},
}

var mcpApps = bridge{
	name: "mcpapps",
	open: func(tb *tab, w Widget, theme string) { openMCPApps(tb, w, theme, "full") },
	openAs: func(tb *tab, w Widget, theme, token string) {
		openMCPApps(tb, w, theme, token)
	},
	result: func(tb *tab, data any) {
		text := mustJSONString(tb, data)
		tb.hostEval(`window.__host.toolResult({content: [{type: "text", text: ` + mustJSONString(tb, text) + `}], structuredContent: ` + text + `})`)
	},
	fail: func(tb *tab, msg string) {
		tb.hostEval(`window.__host.toolResult({isError: true, content: [{type: "text", text: ` + mustJSONString(tb, msg) + `}]})`)
	},
	empty: func(tb *tab) {
		tb.hostEval(`window.__host.toolResult({content: [{type: "text", text: "done"}]})`)
	},
	theme: func(tb *tab, theme string) {
		tb.hostEval(`window.__host.setContext({theme: ` + mustJSONString(tb, theme) + `})`)
	},
}

// ---- the tests -------------------------------------------------------------

func TestCardsInBrowser(t *testing.T) {
	start := time.Now()
	env := newBrowserEnv(t)
	t.Cleanup(func() { t.Logf("browser suite took %s", time.Since(start).Round(time.Millisecond)) })

	for _, b := range []bridge{chatgpt, mcpApps} {
		for _, c := range cards(t) {
			prefix := b.name + "/" + c.widget.Name

			t.Run(prefix+"/renders-and-switches-theme", func(t *testing.T) {
				t.Parallel()
				tb := env.newTab(t)
				b.open(tb, c.widget, "light")
				s := tb.snap(c.selectors)
				if s.State != "waiting" || s.Busy != "true" || !strings.Contains(s.Note, "Waiting") {
					t.Errorf("before the result: state %q busy %q note %q, want a waiting note", s.State, s.Busy, s.Note)
				}

				b.result(tb, c.data)
				s = tb.waitCard(c.selectors, waitLimit, "the result", func(s snapshot) bool { return s.State == "ready" })
				checkFields(t, c, s)
				if s.Busy != "false" || !s.Landmark {
					t.Errorf("aria-busy %q, main landmark labelled: %v", s.Busy, s.Landmark)
				}
				if s.Theme != "light" || s.Bg != lightBackground {
					t.Errorf("light theme: data-theme %q background %s, want light and %s", s.Theme, s.Bg, lightBackground)
				}
				checkContrast(t, "light", s)
				tb.screenshot(b.name + "-" + c.widget.Name + "-light")

				// A phone-sized frame: the card reflows and nothing spills out.
				tb.do(chromedp.EmulateViewport(320, 760))
				s = tb.waitCard(c.selectors, waitLimit, "the narrow layout", func(s snapshot) bool { return !s.Overflow })
				checkFields(t, c, s)
				tb.screenshot(b.name + "-" + c.widget.Name + "-narrow")
				tb.do(chromedp.EmulateViewport(560, 760))

				b.theme(tb, "dark")
				s = tb.waitCard(c.selectors, waitLimit, "the dark theme", func(s snapshot) bool { return s.Theme == "dark" })
				if s.Bg != darkBackground {
					t.Errorf("dark theme: background %s, want %s", s.Bg, darkBackground)
				}
				checkFields(t, c, s)
				checkContrast(t, "dark", s)
				tb.screenshot(b.name + "-" + c.widget.Name + "-dark")

				b.theme(tb, "light")
				s = tb.waitCard(c.selectors, waitLimit, "the light theme again", func(s snapshot) bool { return s.Theme == "light" })
				if s.Bg != lightBackground {
					t.Errorf("back to light: background %s, want %s", s.Bg, lightBackground)
				}
			})

			t.Run(prefix+"/error-and-empty-states", func(t *testing.T) {
				t.Parallel()
				tb := env.newTab(t)
				b.open(tb, c.widget, "dark")

				msg := "capability-core is unavailable <b>retry</b> later"
				b.fail(tb, msg)
				s := tb.waitCard(c.selectors, waitLimit, "the error", func(s snapshot) bool { return s.State == "error" })
				if s.Alert != msg || s.AlertHead != "The tool call failed" || s.AlertRole != "alert" || s.Active != 0 {
					t.Errorf("error: %q / %q role %q active elements %d, want %q as text in role=alert", s.AlertHead, s.Alert, s.AlertRole, s.Active, msg)
				}
				checkContrast(t, "dark error", s)
				tb.screenshot(b.name + "-" + c.widget.Name + "-error")

				b.result(tb, c.invalid)
				s = tb.waitCard(c.selectors, waitLimit, "the invalid-data error", func(s snapshot) bool {
					return s.State == "error" && s.Alert == c.invalidIs
				})
				if s.AlertHead != "This result could not be shown" {
					t.Errorf("invalid data: title %q", s.AlertHead)
				}

				b.empty(tb)
				s = tb.waitCard(c.selectors, waitLimit, "the empty state", func(s snapshot) bool { return s.State == "empty" })
				if s.Note != "The tool returned no data to show." {
					t.Errorf("empty: note %q", s.Note)
				}
				tb.screenshot(b.name + "-" + c.widget.Name + "-empty")

				// A good result after a bad one draws normally.
				b.result(tb, c.data)
				s = tb.waitCard(c.selectors, waitLimit, "the result after the error", func(s snapshot) bool { return s.State == "ready" })
				checkFields(t, c, s)
			})
		}

		t.Run(b.name+"/profile-summary-card-v1/xss-payloads-stay-text", func(t *testing.T) {
			t.Parallel()
			profile := cards(t)[1]
			tb := env.newTab(t)
			b.open(tb, profile.widget, "light")
			data := map[string]any{"sub": "<i>sub</i>", "email_verified": false}
			for k, v := range xssPayloads {
				data[k] = v
			}
			b.result(tb, data)
			s := tb.waitCard(profile.selectors, waitLimit, "the result", func(s snapshot) bool { return s.State == "ready" })
			for field, want := range map[string]string{
				"name":     xssPayloads["name"],
				"handle":   "@" + xssPayloads["preferred_username"],
				"username": xssPayloads["preferred_username"],
				"email":    xssPayloads["email"],
				"sub":      "<i>sub</i>",
				"verified": "Not verified",
			} {
				if got := s.Fields[field]; got != want {
					t.Errorf("%s shows %q, want the literal %q", field, got, want)
				}
			}
			if s.Active != 0 {
				t.Errorf("the payloads made %d elements in the card", s.Active)
			}
			time.Sleep(200 * time.Millisecond) // onerror and onload run late
			if s = tb.snap(profile.selectors); s.XSS != "" {
				t.Error("a payload ran script")
			}
			tb.screenshot(b.name + "-profile-summary-card-v1-xss")
		})

		t.Run(b.name+"/profile-summary-card-v1/long-username-fits-narrow-frame", func(t *testing.T) {
			t.Parallel()
			profile := cards(t)[1]
			sel := map[string]string{"name": ".tg-name", "handle": ".tg-handle", "username": ".tg-username"}
			tb := env.newTab(t)
			tb.do(chromedp.EmulateViewport(320, 760))
			b.open(tb, profile.widget, "light")
			// Okta puts the user's email address in preferred_username.
			okta := "christopher.montgomery@enterprise-example.com"
			for _, c := range []struct{ name, username string }{
				{"Christopher Montgomery", okta},
				{strings.Repeat("Montgomery", 30), strings.Repeat("x", 300)},
			} {
				b.result(tb, map[string]any{"sub": "00u1a2b3c4d5e6f7g8h9", "name": c.name, "preferred_username": c.username,
					"email": okta, "email_verified": true})
				s := tb.waitCard(sel, waitLimit, "the profile", func(s snapshot) bool { return s.State == "ready" && s.Fields["username"] == c.username })
				width := hostValue[string](tb, `(function () { var f = document.querySelector("iframe"); return f ? String(f.clientWidth) : "no frame"; })()`)
				if s.Overflow {
					t.Errorf("%d-character username: the card scrolls sideways in a %s px frame", len(c.username), width)
				}
				if s.Fields["name"] != c.name || s.Fields["handle"] != "@"+c.username {
					t.Errorf("%d-character username: name %q handle %q, want the whole text (the handle ellipsizes by CSS only)",
						len(c.username), s.Fields["name"], s.Fields["handle"])
				}
				tb.screenshot(fmt.Sprintf("%s-profile-summary-card-v1-long-username-%d", b.name, len(c.username)))
			}
		})
	}

	interactionTests(t, env)

	t.Run("mcpapps/protocol", func(t *testing.T) {
		t.Parallel()
		tb := env.newTab(t)
		health := cards(t)[0]
		mcpApps.open(tb, health.widget, "light")

		type initParams struct {
			ProtocolVersion string `json:"protocolVersion"`
			AppInfo         struct {
				Name, Version string
			} `json:"appInfo"`
			AppCapabilities struct {
				AvailableDisplayModes []string `json:"availableDisplayModes"`
			} `json:"appCapabilities"`
		}
		p := hostValue[initParams](tb, `window.__host.initializeParams`)
		if p.ProtocolVersion != "2026-01-26" || p.AppInfo.Name != "tollgate-health-status-card-v1" || p.AppInfo.Version == "" ||
			len(p.AppCapabilities.AvailableDisplayModes) != 1 || p.AppCapabilities.AvailableDisplayModes[0] != "inline" {
			t.Errorf("ui/initialize params %+v", p)
		}
		if !hostValue[bool](tb, `window.__host.initializedAfterAnswer`) {
			t.Error("ui/notifications/initialized came before the host answered ui/initialize")
		}

		mcpApps.result(tb, health.data)
		s := tb.waitCard(health.selectors, waitLimit, "the result", func(s snapshot) bool { return s.State == "ready" })
		// The host's fonts: the --font-sans variable and its @font-face rules.
		if !strings.HasPrefix(s.Font, `"Tollgate Test Sans"`) {
			t.Errorf("font %s, want the host's --font-sans", s.Font)
		}
		tb.waitHost(`window.__host.sizes.some(function (s) { return s.height > 150 && s.width > 0; })`)

		// Requests from the host get answers; unknown ones a JSON-RPC error.
		ping := hostValue[int](tb, `window.__host.request("ping", {})`)
		bogus := hostValue[int](tb, `window.__host.request("ui/bogus", {})`)
		teardown := hostValue[int](tb, `window.__host.request("ui/resource-teardown", {reason: "test"})`)
		tb.waitHost(fmt.Sprintf(`window.__host.responses[%d] && window.__host.responses[%d] && window.__host.responses[%d]`, ping, bogus, teardown))
		for id, want := range map[int]string{ping: `{"result":{}}`, teardown: `{"result":{}}`, bogus: `{"code":-32601}`} {
			got := hostValue[string](tb, fmt.Sprintf(`(function (r) { return JSON.stringify(r.error ? {code: r.error.code} : {result: r.result}); })(window.__host.responses[%d])`, id))
			if got != want {
				t.Errorf("answer to request %d: %s, want %s", id, got, want)
			}
		}

		// Partial context updates merge: display mode and host style variables.
		tb.hostEval(`window.__host.setContext({displayMode: "fullscreen", styles: {variables: {"--color-background-primary": "rgb(1, 2, 3)"}}})`)
		s = tb.waitCard(health.selectors, waitLimit, "the host context", func(s snapshot) bool { return s.Display == "fullscreen" })
		if s.Bg != "rgb(1, 2, 3)" || s.Theme != "light" {
			t.Errorf("after a partial context: background %s theme %q, want the host's variable and the light theme kept", s.Bg, s.Theme)
		}

		// A cancelled call shows as an error.
		tb.hostEval(`window.__host.send("ui/notifications/tool-cancelled", {reason: "user stopped it"})`)
		s = tb.waitCard(health.selectors, waitLimit, "the cancellation", func(s snapshot) bool { return s.State == "error" })
		if s.AlertHead != "The tool call was cancelled" || s.Alert != "Reason: user stopped it" {
			t.Errorf("cancelled: %q / %q", s.AlertHead, s.Alert)
		}

		// The console of the card's frame reaches this tab, so checkConsole
		// covers the card and not only the host page.
		if _, err := chromedp.Run(tb.ctx, chromedp.Evaluate[chromedp.Void](`console.warn("tollgate-console-probe")`, func(p *runtime.EvaluateParams) {
			p.ContextID = tb.world
		})); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(waitLimit)
		for !tb.sawConsole("tollgate-console-probe") {
			if time.Now().After(deadline) {
				t.Fatal("a console message of the card's frame never reached the tab")
			}
			time.Sleep(waitStep)
		}
	})

	t.Run("chatgpt/health-status-card-v1/globals-arrive-late", func(t *testing.T) {
		t.Parallel()
		tb := env.newTab(t)
		health := cards(t)[0]
		openChatGPT(tb, health.widget, "light", "full", "1")
		if hostValue[bool](tb, `window.__host.installedAtStart`) {
			t.Fatal("window.openai existed before the host installed it")
		}
		tb.hostEval(`window.__host.setGlobals({theme: "dark", toolOutput: ` + mustJSONString(tb, health.data) + `})`)
		s := tb.waitCard(health.selectors, waitLimit, "the late result", func(s snapshot) bool { return s.State == "ready" })
		checkFields(t, health, s)
		if s.Theme != "dark" {
			t.Errorf("theme %q, want dark", s.Theme)
		}
		tb.waitHost(`window.__host.heights.some(function (h) { return h > 150; })`)
	})

	for _, c := range cards(t) {
		t.Run("nohost/"+c.widget.Name+"/says-no-result-arrived", func(t *testing.T) {
			t.Parallel()
			tb := env.newTab(t)
			tb.do(chromedp.Navigate(env.origin + "/card/" + c.widget.Name + ".html"))
			tb.waitHost(`document.readyState === "complete"`)
			tb.useFrame(env.origin)
			s := tb.waitCard(c.selectors, noResultLimit, "the no-result state", func(s snapshot) bool { return s.State == "empty" })
			if s.Note != "No result arrived from the host." || s.Busy != "false" {
				t.Errorf("no host: note %q busy %q", s.Note, s.Busy)
			}
			tb.screenshot("nohost-" + c.widget.Name + "-empty")
		})
	}
}

func checkFields(t *testing.T, c card, s snapshot) {
	t.Helper()
	for _, word := range c.hidden {
		if strings.Contains(s.Text, word) {
			t.Errorf("%s shows %q to the end user: %q", c.widget.Name, word, s.Text)
		}
	}
	for k, want := range c.want {
		if got := s.Fields[k]; got != want {
			t.Errorf("%s: %s = %q, want %q", c.widget.Name, k, got, want)
		}
	}
	if _, ok := c.selectors["time"]; ok {
		if s.DateTime != c.data["timestamp"] || !strings.Contains(s.Fields["time"], "Nov 23, 2026") {
			t.Errorf("%s: time %q (datetime %q), want Nov 23, 2026 and the raw timestamp", c.widget.Name, s.Fields["time"], s.DateTime)
		}
	}
}

// checkContrast applies WCAG 2 AA (4.5:1) to every visible text element.
func checkContrast(t *testing.T, label string, s snapshot) {
	t.Helper()
	if len(s.Pairs) == 0 {
		t.Errorf("%s: no text to check contrast on", label)
	}
	for _, p := range s.Pairs {
		fg, ok1 := parseRGB(p[0])
		bg, ok2 := parseRGB(p[1])
		if !ok1 || !ok2 {
			t.Errorf("%s: cannot read colours %q on %q", label, p[0], p[1])
			continue
		}
		if r := contrast(fg, bg); r < 4.5 {
			t.Errorf("%s: text %s on %s has contrast %.2f, below 4.5", label, p[0], p[1], r)
		}
	}
}

var rgbRE = regexp.MustCompile(`^rgba?\((\d+), (\d+), (\d+)(?:, ([\d.]+))?\)$`)

func parseRGB(s string) ([3]float64, bool) {
	m := rgbRE.FindStringSubmatch(s)
	if m == nil || (m[4] != "" && m[4] != "1") {
		return [3]float64{}, false
	}
	var c [3]float64
	for i := range 3 {
		v, _ := strconv.Atoi(m[i+1])
		c[i] = float64(v) / 255
	}
	return c, true
}

func contrast(a, b [3]float64) float64 {
	lum := func(c [3]float64) float64 {
		var l [3]float64
		for i, v := range c {
			if v <= 0.04045 {
				l[i] = v / 12.92
			} else {
				l[i] = math.Pow((v+0.055)/1.055, 2.4)
			}
		}
		return 0.2126*l[0] + 0.7152*l[1] + 0.0722*l[2]
	}
	la, lb := lum(a), lum(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

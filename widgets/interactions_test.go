package widgets

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The interaction tests click through each card under both hosts: tool
// calls (through the host to the real gateway), follow-up messages, links
// and card state, and the refusals of each.

// callLimit bounds a wait that includes calls to the gateway: generous,
// because a test machine may be busy; it only limits how long a failing
// test hangs.
const callLimit = 30 * time.Second

// hostSide is what differs between the two hosts' records.
type hostSide struct {
	// failKey is the host method to refuse in window.__host.fail.
	failKey map[string]string
	// messages is a JS expression: the texts of follow-up messages.
	messages string
	// links is a JS expression: the URLs the card asked to open.
	links string
	// state is a JS expression: the last state the card saved, for the model.
	state string
}

var hostSides = map[string]hostSide{
	"chatgpt": {
		failKey:  map[string]string{"call": "callTool", "link": "openExternal", "message": "sendFollowUpMessage"},
		messages: `window.__host.followUps`,
		links:    `window.__host.links`,
		state:    `window.__host.widgetState`,
	},
	"mcpapps": {
		failKey: map[string]string{"call": "tools/call", "link": "ui/open-link", "message": "ui/message"},
		// SEP-1865 ui/message: role "user", content blocks.
		messages: `window.__host.messages.map(function (m) { return m.role === "user" && m.content[0].type === "text" ? m.content[0].text : "bad message: " + JSON.stringify(m); })`,
		links:    `window.__host.links`,
		state:    `(window.__host.contexts.length ? window.__host.contexts[window.__host.contexts.length - 1].structuredContent : null)`,
	},
}

// toolFor returns the name under which the gateway lists the tool that
// draws the card: tests, like cards, never write tool names down.
func (e *browserEnv) toolFor(t *testing.T, uri string) string {
	t.Helper()
	tools, err := e.fleet.listTools("full")
	if err != nil {
		t.Fatal(err)
	}
	for name, meta := range tools {
		ui, _ := meta["ui"].(map[string]any)
		if ui["resourceUri"] == uri && meta["openai/outputTemplate"] == uri {
			if strings.Contains(name, ".") {
				t.Errorf("tool %s: the test gateway should spell names with underscores (MCP_TOOL_NAME_STYLE)", name)
			}
			if meta["openai/widgetAccessible"] != true {
				t.Errorf("tool %s draws %s but a ChatGPT card may not call it (openai/widgetAccessible)", name, uri)
			}
			return name
		}
	}
	t.Fatalf("the gateway lists no tool that draws %s", uri)
	return ""
}

// click clicks the element in the card, as a user would (the handlers run
// in the card's own world).
func (tb *tab) click(sel string) {
	tb.t.Helper()
	js := fmt.Sprintf(`(function () { var e = document.querySelector(%q); if (!e) return "missing"; if (e.disabled) return "disabled"; e.click(); return ""; })()`, sel)
	got, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](js, func(p *runtime.EvaluateParams) { p.ContextID = tb.world }))
	if err != nil {
		tb.t.Fatalf("click %s: %v", sel, err)
	}
	if got != "" {
		tb.t.Fatalf("click %s: %s", sel, got)
	}
}

func jsString(t *testing.T, s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func interactionTests(t *testing.T, env *browserEnv) {
	all := cards(t)
	health, profile := all[0], all[1]
	connections, _ := Lookup("ui://widget/connections-card-v1.html")

	for _, b := range []bridge{chatgpt, mcpApps} {
		side := hostSides[b.name]

		t.Run(b.name+"/profile-summary-card-v1/step-up-then-reconnect", func(t *testing.T) {
			t.Parallel()
			name := env.toolFor(t, profile.widget.URI)
			sel := map[string]string{
				"title": ".tg-stepup__title", "scope1": ".tg-stepup__scope:nth-child(1)", "scope2": ".tg-stepup__scope:nth-child(2)",
				"reconnect": ".tg-stepup__reconnect", "status": ".tg-stepup__status", "name": ".tg-name", "email": ".tg-email__address",
			}
			tb := env.newTab(t)
			b.openAs(tb, profile.widget, "light", "weak")
			// The model calls the card's tool with an openid-only token: the
			// template loads and the result is a step-up refusal.
			tb.hostEval(`window.__host.runTool(` + jsString(t, name) + `, {})`)
			s := tb.waitCard(sel, callLimit, "the step-up state", func(s snapshot) bool { return s.State == "step-up" })
			for k, want := range map[string]string{"title": "More access needed", "scope1": "Your name and username",
				"scope2": "Your email address", "reconnect": "Reconnect"} {
				if s.Fields[k] != want {
					t.Errorf("step-up %s: %q, want %q", k, s.Fields[k], want)
				}
			}
			if strings.Contains(s.Text, "insufficient_scope") {
				t.Errorf("the step-up state shows protocol words: %q", s.Text)
			}
			checkContrast(t, "step-up", s)
			tb.screenshot(b.name + "-profile-summary-card-v1-stepup")

			// Reconnect, and the user does not approve: still refused, and
			// the card offers to ask the assistant for help.
			tb.click(".tg-stepup__reconnect")
			s = tb.waitCard(sel, callLimit, "the still-missing note", func(s snapshot) bool {
				return strings.HasPrefix(s.Fields["status"], "Access is still missing.")
			})
			tb.waitHost(`window.__host.calls.length === 2 && window.__host.calls[1].name === ` + jsString(t, name))
			tb.click(".tg-stepup__help")
			tb.waitHost(side.messages + `.length === 1`)
			msg := hostValue[string](tb, side.messages+`[0]`)
			if msg != "Help me reconnect this app so that it can use: Your name and username; Your email address." {
				t.Errorf("follow-up message %q", msg)
			}
			tb.waitCard(sel, callLimit, "the sent note", func(s snapshot) bool { return s.Fields["status"] == "Asked the assistant for help." })

			// Reconnect, and the user approves: the host authorizes again and
			// the card draws the profile from the real gateway.
			tb.hostEval(`window.__host.reauthorize = true`)
			tb.click(".tg-stepup__reconnect")
			s = tb.waitCard(sel, callLimit, "the profile after reconnecting", func(s snapshot) bool { return s.State == "ready" })
			if s.Fields["name"] != "Ada Lovelace" || s.Fields["email"] != "ada@example.com" {
				t.Errorf("after reconnecting: %v", s.Fields)
			}
			if n := hostValue[int](tb, `window.__host.reauthorized`); n != 1 {
				t.Errorf("the host authorized %d times, want 1", n)
			}
			tb.screenshot(b.name + "-profile-summary-card-v1-reconnected")
		})

		t.Run(b.name+"/profile-summary-card-v1/step-up-host-refuses", func(t *testing.T) {
			t.Parallel()
			name := env.toolFor(t, profile.widget.URI)
			sel := map[string]string{"status": ".tg-stepup__status"}
			tb := env.newTab(t)
			b.openAs(tb, profile.widget, "dark", "weak")
			tb.hostEval(`window.__host.runTool(` + jsString(t, name) + `, {})`)
			tb.waitCard(sel, callLimit, "the step-up state", func(s snapshot) bool { return s.State == "step-up" })
			tb.hostEval(fmt.Sprintf(`window.__host.fail[%q] = "The user declined the call"; window.__host.fail[%q] = "Message sending denied"`,
				side.failKey["call"], side.failKey["message"]))
			tb.click(".tg-stepup__reconnect")
			tb.waitCard(sel, callLimit, "the refusal", func(s snapshot) bool { return s.Fields["status"] == "The user declined the call" })
			tb.click(".tg-stepup__help")
			s := tb.waitCard(sel, callLimit, "the refused message", func(s snapshot) bool { return s.Fields["status"] == "Message sending denied" })
			if s.State != "step-up" {
				t.Errorf("state %q after refusals, want step-up", s.State)
			}
			checkContrast(t, "dark step-up", s)
			tb.screenshot(b.name + "-profile-summary-card-v1-stepup-refused")
		})

		t.Run(b.name+"/health-status-card-v1/check-again", func(t *testing.T) {
			t.Parallel()
			name := env.toolFor(t, health.widget.URI)
			sel := map[string]string{"status": ".tg-status-label", "error": ".tg-inline-error", "again": ".tg-recheck"}
			tb := env.newTab(t)
			b.open(tb, health.widget, "dark")
			tb.hostEval(`window.__host.runTool(` + jsString(t, name) + `, {})`)
			s := tb.waitCard(sel, callLimit, "the real health result", func(s snapshot) bool { return s.State == "ready" })
			if s.Fields["again"] != "Check again" || !strings.Contains("Working normally|Partly working|Not available", s.Fields["status"]) {
				t.Errorf("health card: %v", s.Fields)
			}
			for _, word := range []string{"capability-core", "mcp-gateway", "redis", "Version"} {
				if strings.Contains(s.Text, word) {
					t.Errorf("the health card shows %q to the end user: %q", word, s.Text)
				}
			}
			tb.click(".tg-recheck")
			tb.waitHost(`window.__host.calls.length === 2 && window.__host.calls[1].name === ` + jsString(t, name))
			tb.waitCard(sel, callLimit, "the card after checking again", func(s snapshot) bool { return s.State == "ready" && s.Fields["again"] == "Check again" })
			tb.screenshot(b.name + "-health-status-card-v1-checked-again")

			// The host refuses the call: the card says so and stays usable.
			tb.hostEval(fmt.Sprintf(`window.__host.fail[%q] = "Tool calls from cards are turned off"`, side.failKey["call"]))
			tb.click(".tg-recheck")
			s = tb.waitCard(sel, callLimit, "the refusal", func(s snapshot) bool { return s.Fields["error"] == "Tool calls from cards are turned off" })
			if s.State != "ready" {
				t.Errorf("state %q after a refused call, want ready", s.State)
			}
		})

		t.Run(b.name+"/connections-card-v1/revoke-then-refreshed-list", func(t *testing.T) {
			t.Parallel()
			sel := map[string]string{
				"count": ".tg-connections", "name2": ".tg-connection:nth-child(2) .tg-connection__name",
				"scope1":  ".tg-connection:nth-child(1) .tg-connection__scope:nth-child(2)",
				"confirm": ".tg-connection__confirm", "notice": ".tg-notice", "error2": ".tg-connection:nth-child(2) .tg-inline-error",
			}
			tb := env.newTab(t)
			b.open(tb, connections, "light")
			tb.hostEval(connectionsStandIn)
			tb.hostEval(`window.__host.runTool("stand-in.connections_card", {})`)
			count := func(s snapshot) int {
				return strings.Count(s.Text, "Last used") + strings.Count(s.Text, "Not used yet")
			}
			s := tb.waitCard(sel, callLimit, "the list", func(s snapshot) bool { return s.State == "ready" })
			if count(s) != 3 || s.Fields["scope1"] != "Your name and username" || s.Fields["name2"] != "Claude" {
				t.Errorf("list: %d items, %v", count(s), s.Fields)
			}
			checkContrast(t, "connections", s)
			tb.screenshot(b.name + "-connections-card-v1-list")
			b.theme(tb, "dark")
			s = tb.waitCard(sel, callLimit, "the dark theme", func(s snapshot) bool { return s.Theme == "dark" })
			checkContrast(t, "dark connections", s)
			tb.screenshot(b.name + "-connections-card-v1-list-dark")
			b.theme(tb, "light")

			// Revoke asks first; Cancel calls nothing.
			tb.click(".tg-connection:nth-child(2) .tg-revoke")
			s = tb.waitCard(sel, callLimit, "the confirmation", func(s snapshot) bool { return s.Fields["confirm"] != "" })
			if s.Fields["confirm"] != "Revoke access for Claude? It stops working until you connect it again." {
				t.Errorf("confirmation %q", s.Fields["confirm"])
			}
			tb.screenshot(b.name + "-connections-card-v1-confirm")
			tb.click(".tg-connection:nth-child(2) .tg-revoke-cancel")
			tb.waitCard(sel, callLimit, "the cancelled confirmation", func(s snapshot) bool { return s.Fields["confirm"] == "" })
			if n := hostValue[int](tb, `window.__host.calls.length`); n != 1 {
				t.Errorf("cancel made %d calls", n-1)
			}

			// Revoke: the revoke tool, then reload, and the fresh list.
			tb.click(".tg-connection:nth-child(2) .tg-revoke")
			tb.click(".tg-connection:nth-child(2) .tg-revoke-confirm")
			s = tb.waitCard(sel, callLimit, "the refreshed list", func(s snapshot) bool { return s.Fields["notice"] != "" })
			if s.Fields["notice"] != "Access revoked for Claude." || count(s) != 2 || s.Fields["name2"] != "nightly-script" {
				t.Errorf("after revoking: notice %q, %d items, %v", s.Fields["notice"], count(s), s.Fields)
			}
			calls := hostValue[string](tb, `JSON.stringify(window.__host.calls.slice(1))`)
			if calls != `[{"name":"stand-in.connections_revoke","arguments":{"grant_id":"g-2"}},{"name":"stand-in.connections_card","arguments":{}}]` {
				t.Errorf("calls %s", calls)
			}
			if got := hostValue[string](tb, `(function (s) { return s && s.revoked ? s.revoked.name + "/" + s.revoked.grant_id : ""; })(`+side.state+`)`); got != "Claude/g-2" {
				t.Errorf("card state for the model: %q", got)
			}
			tb.screenshot(b.name + "-connections-card-v1-revoked")

			// A refused revoke shows the tool's message and keeps the row.
			tb.click(".tg-connection:nth-child(2) .tg-revoke")
			tb.click(".tg-connection:nth-child(2) .tg-revoke-confirm")
			s = tb.waitCard(sel, callLimit, "the refusal", func(s snapshot) bool { return s.Fields["error2"] != "" })
			if s.Fields["error2"] != "The grant could not be revoked: try again later." || count(s) != 2 {
				t.Errorf("refused revoke: %q, %d items", s.Fields["error2"], count(s))
			}

			// Revoking the app in use: a stronger warning, and no reload (the
			// host's own access is gone).
			before := hostValue[int](tb, `window.__host.calls.length`)
			tb.click(".tg-connection:nth-child(1) .tg-revoke")
			s = tb.waitCard(sel, callLimit, "the confirmation", func(s snapshot) bool { return s.Fields["confirm"] != "" })
			if !strings.Contains(s.Fields["confirm"], "This is the app you are using now") {
				t.Errorf("confirmation for the app in use: %q", s.Fields["confirm"])
			}
			tb.click(".tg-connection:nth-child(1) .tg-revoke-confirm")
			s = tb.waitCard(sel, callLimit, "the list without the app in use", func(s snapshot) bool { return count(s) == 1 })
			if s.Fields["notice"] != "Access revoked for ChatGPT." {
				t.Errorf("notice %q", s.Fields["notice"])
			}
			if n := hostValue[int](tb, `window.__host.calls.length`); n != before+1 {
				t.Errorf("revoking the app in use made %d calls, want 1 (no reload)", n-before)
			}
		})

		t.Run(b.name+"/connections-card-v1/revoke-step-up-then-reconnect", func(t *testing.T) {
			t.Parallel()
			row := ".tg-connection:nth-child(2) "
			sel := map[string]string{
				"title": row + ".tg-stepup__title", "lead": row + ".tg-stepup__lead", "scope1": row + ".tg-stepup__scope",
				"reconnect": row + ".tg-stepup__reconnect", "status": row + ".tg-stepup__status", "revoke": row + ".tg-revoke",
				"error2": row + ".tg-inline-error", "notice": ".tg-notice",
			}
			tb := env.newTab(t)
			// The user linked with the scopes ChatGPT asks for at first
			// (connect-chatgpt-apps.md): connections.revoke is not among them.
			b.openAs(tb, connections, "light", "weak")
			tb.hostEval(connectionsStandIn)
			tb.hostEval(revokeNeedsScope)
			tb.hostEval(`window.__host.runTool("stand-in.connections_card", {})`)
			tb.waitCard(sel, callLimit, "the list", func(s snapshot) bool { return s.State == "ready" })

			tb.click(row + ".tg-revoke")
			tb.click(row + ".tg-revoke-confirm")
			s := tb.waitCard(sel, callLimit, "the step-up state in the row", func(s snapshot) bool { return s.Fields["title"] != "" })
			for k, want := range map[string]string{"title": "More access needed", "lead": "To revoke access for Claude, this app needs your permission for:",
				"scope1": "Disconnect apps from your account", "reconnect": "Reconnect", "error2": "", "revoke": ""} {
				if s.Fields[k] != want {
					t.Errorf("step-up %s: %q, want %q", k, s.Fields[k], want)
				}
			}
			if strings.Contains(s.Text, "This tool needs the scopes") || strings.Contains(s.Text, "connections.revoke") {
				t.Errorf("the card shows the gateway's developer text or a scope token: %q", s.Text)
			}
			if s.State != "ready" {
				t.Errorf("card state %q, want ready: the list stays", s.State)
			}
			checkContrast(t, "revoke step-up", s)
			tb.screenshot(b.name + "-connections-card-v1-revoke-stepup")

			// Cancel: the row as it was, nothing called.
			tb.click(row + ".tg-stepup__cancel")
			s = tb.waitCard(sel, callLimit, "the row after cancelling", func(s snapshot) bool { return s.Fields["title"] == "" && s.Fields["revoke"] != "" })
			if n := hostValue[int](tb, `window.__host.calls.length`); n != 2 {
				t.Errorf("%d calls after cancelling, want 2 (list, revoke)", n)
			}

			// Reconnect, and the user does not approve: still refused; the
			// card offers to ask the assistant for help.
			tb.click(row + ".tg-revoke")
			tb.click(row + ".tg-revoke-confirm")
			tb.waitCard(sel, callLimit, "the step-up state again", func(s snapshot) bool { return s.Fields["title"] != "" })
			tb.click(row + ".tg-stepup__reconnect")
			tb.waitCard(sel, callLimit, "the still-missing note", func(s snapshot) bool {
				return strings.HasPrefix(s.Fields["status"], "Access is still missing.")
			})
			tb.click(row + ".tg-stepup__help")
			tb.waitHost(side.messages + `.length === 1`)
			if msg := hostValue[string](tb, side.messages+`[0]`); msg != "Help me reconnect this app so that it can use: Disconnect apps from your account." {
				t.Errorf("follow-up message %q", msg)
			}
			tb.waitCard(sel, callLimit, "the sent note", func(s snapshot) bool { return s.Fields["status"] == "Asked the assistant for help." })

			// Reconnect, and the user approves: the host authorizes again,
			// the revoke goes through and the list is the server's again.
			tb.hostEval(`window.__host.reauthorize = true`)
			tb.click(row + ".tg-stepup__reconnect")
			s = tb.waitCard(sel, callLimit, "the refreshed list", func(s snapshot) bool { return s.Fields["notice"] != "" })
			if s.Fields["notice"] != "Access revoked for Claude." || s.Fields["title"] != "" || strings.Count(s.Text, "Last used")+strings.Count(s.Text, "Not used yet") != 2 {
				t.Errorf("after reconnecting: notice %q, step-up %q, text %q", s.Fields["notice"], s.Fields["title"], s.Text)
			}
			if n := hostValue[int](tb, `window.__host.reauthorized`); n != 1 {
				t.Errorf("the host authorized %d times, want 1", n)
			}
			calls := hostValue[string](tb, `JSON.stringify(window.__host.calls.map(function (c) { return c.name.replace("stand-in.connections_", ""); }))`)
			if calls != `["card","revoke","revoke","revoke","revoke","card"]` {
				t.Errorf("calls %s", calls)
			}
			tb.screenshot(b.name + "-connections-card-v1-revoke-reconnected")
		})

		t.Run(b.name+"/connections-card-v1/links-and-long-values", func(t *testing.T) {
			t.Parallel()
			long := strings.Repeat("verylongclientname", 8)
			data := map[string]any{"connections": []any{
				map[string]any{"grant_id": "g-1", "client_id": "chatgpt", "client_name": "ChatGPT", "client_uri": "https://app.example.com/about",
					"scopes": []any{"openid", "profile"}, "created_at": "2026-11-23T18:00:00Z", "last_used_at": "2026-11-24T09:00:00Z", "current": true},
				map[string]any{"grant_id": "g-2", "client_id": long, "client_uri": "javascript:alert(1)", "scopes": []any{}},
			}}
			sel := map[string]string{
				"name1": ".tg-connection:nth-child(1) .tg-connection__name", "current": ".tg-connection__current",
				"name2":  ".tg-connection:nth-child(2) .tg-connection__name",
				"error1": ".tg-connection:nth-child(1) .tg-inline-error", "scope1": ".tg-connection__scope",
			}
			tb := env.newTab(t)
			b.open(tb, connections, "light")
			b.result(tb, data)
			s := tb.waitCard(sel, callLimit, "the list", func(s snapshot) bool { return s.State == "ready" })
			if s.Fields["name1"] != "ChatGPT" || s.Fields["current"] != "This app" || s.Fields["name2"] != long || s.Fields["scope1"] != "openid" {
				t.Errorf("list: %v", s.Fields)
			}
			if s.Active != 0 {
				t.Errorf("%d active elements (links, images...) in the card; links go through the host", s.Active)
			}
			checkContrast(t, "connections", s)

			tb.click(".tg-connection:nth-child(1) .tg-website")
			tb.waitHost(side.links + `.length === 1`)
			if got := hostValue[string](tb, side.links+`[0]`); got != "https://app.example.com/about" {
				t.Errorf("opened %q", got)
			}
			// Not a web link: no button for it.
			if s := tb.snap(map[string]string{"website2": ".tg-connection:nth-child(2) .tg-website"}); s.Fields["website2"] != "" {
				t.Errorf("a javascript: client_uri got a website button")
			}
			// The host refuses.
			tb.hostEval(fmt.Sprintf(`window.__host.fail[%q] = "Link opening denied by user"`, side.failKey["link"]))
			tb.click(".tg-connection:nth-child(1) .tg-website")
			tb.waitCard(sel, callLimit, "the host's refusal", func(s snapshot) bool { return s.Fields["error1"] == "Link opening denied by user" })
			if n := hostValue[int](tb, side.links+`.length`); n != 1 {
				t.Errorf("the host opened %d links, want 1", n)
			}

			// Long values wrap: nothing spills out of a phone-sized frame.
			tb.do(chromedp.EmulateViewport(320, 760))
			tb.waitCard(sel, callLimit, "the narrow layout", func(s snapshot) bool { return !s.Overflow })
			tb.screenshot(b.name + "-connections-card-v1-narrow")
		})
	}
}

// connectionsStandIn answers the connections tools in the host page, so
// every state of the card (a refused revoke included) can be shown without
// an auth-server: a list of three grants, revoke of g-3 refused, the others
// removed. TestConnectedAppsCardInBrowser (e2e) drives the card with the
// real connections capability and GrantsService. The
// card's actions name the stand-in tools exactly as the gateway would name
// real ones, in the result's _meta.
const connectionsStandIn = `(function (h) {
  var list = [
    {grant_id: "g-1", client_id: "chatgpt", client_name: "ChatGPT", scopes: ["openid", "profile"], audiences: ["http://localhost:4000/mcp"],
     created_at: "2026-11-20T10:00:00Z", last_used_at: "2026-11-24T09:00:00Z", current: true},
    {grant_id: "g-2", client_id: "claude", client_name: "Claude", scopes: ["openid", "email"], audiences: ["http://localhost:4000/mcp"],
     created_at: "2026-11-21T10:00:00Z", last_used_at: "2026-11-23T09:00:00Z", current: false},
    {grant_id: "g-3", client_id: "nightly-script", client_name: "", scopes: ["openid"], audiences: ["http://localhost:4000/actions"],
     created_at: "2026-11-22T10:00:00Z", last_used_at: "", current: false}
  ];
  var meta = {
    "tollgate/actions": {reload: "stand-in.connections_card", revoke: "stand-in.connections_revoke"},
    "tollgate/scopes": {openid: "Know who you are (your account identifier)", profile: "Your name and username", email: "Your email address"}
  };
  h.fixtures["stand-in.connections_card"] = function () {
    var sc = {connections: list.slice()};
    return {content: [{type: "text", text: JSON.stringify(sc)}], structuredContent: sc, _meta: meta};
  };
  h.fixtures["stand-in.connections_revoke"] = function (args) {
    if (args.grant_id === "g-3") {
      var msg = "The grant could not be revoked: try again later.";
      return {isError: true, content: [{type: "text", text: msg}], _meta: {"tollgate/error": msg}};
    }
    list = list.filter(function (c) { return c.grant_id !== args.grant_id; });
    return {content: [{type: "text", text: "{}"}], structuredContent: {}, _meta: {}};
  };
})(window.__host)`

// revokeNeedsScope makes the stand-in revoke answer as the gateway does for
// a token without connections.revoke (tools.go, the step-up refusal) until
// the host holds the full token: isError with the developer text,
// tollgate/error, the challenge in mcp/www_authenticate and
// tollgate/stepUp.
const revokeNeedsScope = `(function (h) {
  var revoke = h.fixtures["stand-in.connections_revoke"];
  h.fixtures["stand-in.connections_revoke"] = function (args, host) {
    if (host.token === "full") {
      return revoke(args);
    }
    var msg = "This tool needs the scopes \"openid connections.revoke\"; the current authorization lacks \"connections.revoke\". Reconnect the app to grant them.";
    return {isError: true, content: [{type: "text", text: msg}], _meta: {
      "tollgate/error": msg,
      "mcp/www_authenticate": ["Bearer error=\"insufficient_scope\", scope=\"openid connections.revoke\", error_description=\"" + msg.replace(/"/g, "'") + "\""],
      "tollgate/stepUp": {missing: [{scope: "connections.revoke", description: "Disconnect apps from your account"}]}
    }};
  };
})(window.__host)`

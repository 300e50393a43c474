package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	capabilityv1 "github.com/tollgate/tollgate/proto/gen/tollgate/capability/v1"
	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/widgets"
)

// loadRegistry is the registry of what this suite's backends serve:
// capability-core's services (tollgate.capability.v1). The connected-apps
// tools are the auth-server's; this suite runs a key-set stand-in without
// reflection in its place, so the gateway discovers none of them (they
// are exercised against the real auth-server in e2e/connections_test.go
// and the auth-server's TestConnectedApps).
func loadRegistry(t testing.TB) *registry.Registry {
	t.Helper()
	_ = capabilityv1.File_tollgate_capability_v1_health_proto
	var services []protoreflect.ServiceDescriptor
	protoregistry.GlobalFiles.RangeFilesByPackage("tollgate.capability.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			services = append(services, fd.Services().Get(i))
		}
		return true
	})
	reg, err := registry.New(services...)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// coreTools are the tools capability-core serves.
func coreTools(t testing.TB) []*registry.Tool {
	t.Helper()
	return loadRegistry(t).Tools()
}

type listedTool struct {
	Name         string         `json:"name"`
	Title        string         `json:"title"`
	Description  string         `json:"description"`
	InputSchema  map[string]any `json:"inputSchema"`
	OutputSchema map[string]any `json:"outputSchema"`
	Annotations  map[string]any `json:"annotations"`
	Meta         map[string]any `json:"_meta"`
}

// The gateway lists exactly the registry's tools, each with every
// descriptor field set explicitly.
func TestToolsListIsTheRegistry(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)

	var list struct {
		Tools []listedTool `json:"tools"`
	}
	g.rpc(t, tok, sid, "tools/list", nil, &list)
	reg := loadRegistry(t)
	if len(list.Tools) != len(reg.Tools()) {
		t.Fatalf("listed %d tools, registry has %d", len(list.Tools), len(reg.Tools()))
	}
	byName := map[string]listedTool{}
	for _, lt := range list.Tools {
		byName[lt.Name] = lt
	}
	for _, rt := range reg.Tools() {
		lt, ok := byName[rt.Name]
		if !ok {
			t.Errorf("tool %s not listed", rt.Name)
			continue
		}
		if lt.Title != rt.Title || lt.Description != rt.Description {
			t.Errorf("%s: title/description %q/%q", rt.Name, lt.Title, lt.Description)
		}
		// The fleet's tools declare every hint: each is listed.
		for hint, want := range map[string]bool{"readOnlyHint": rt.Annotations.ReadOnly(), "destructiveHint": rt.Annotations.Destructive(),
			"idempotentHint": rt.Annotations.Idempotent(), "openWorldHint": rt.Annotations.OpenWorld()} {
			if got, ok := lt.Annotations[hint].(bool); !ok || got != want {
				t.Errorf("%s: annotation %s = %v, want explicit %v", rt.Name, hint, lt.Annotations[hint], want)
			}
		}
		if lt.InputSchema["type"] != "object" || lt.OutputSchema["type"] != "object" {
			t.Errorf("%s: schemas %v / %v", rt.Name, lt.InputSchema, lt.OutputSchema)
		}
		schemes, _ := lt.Meta["securitySchemes"].([]any)
		if len(schemes) != 1 {
			t.Errorf("%s: securitySchemes %v", rt.Name, lt.Meta["securitySchemes"])
		} else {
			s := schemes[0].(map[string]any)
			scopes := fmt.Sprint(s["scopes"])
			if s["type"] != "oauth2" || scopes != fmt.Sprint(toAny(rt.RequiredScopes)) {
				t.Errorf("%s: security scheme %v, want oauth2 with %v", rt.Name, s, rt.RequiredScopes)
			}
		}
		// (absent for a tool without them: they are optional)
		invoking, _ := lt.Meta["openai/toolInvocation/invoking"].(string)
		invoked, _ := lt.Meta["openai/toolInvocation/invoked"].(string)
		if invoking != rt.InvokingMessage || invoked != rt.InvokedMessage {
			t.Errorf("%s: invocation messages %v", rt.Name, lt.Meta)
		}
		if rt.WidgetURI != "" {
			ui, _ := lt.Meta["ui"].(map[string]any)
			if lt.Meta["openai/outputTemplate"] != rt.WidgetURI || ui["resourceUri"] != rt.WidgetURI {
				t.Errorf("%s: widget meta %v, want both flavours of %s", rt.Name, lt.Meta, rt.WidgetURI)
			}
			// The card reloads through its own tool, so ChatGPT must let it.
			if lt.Meta["openai/widgetAccessible"] != true {
				t.Errorf("%s: draws a card but is not openai/widgetAccessible: %v", rt.Name, lt.Meta)
			}
		} else if _, has := lt.Meta["openai/outputTemplate"]; has {
			t.Errorf("%s: has an output template but no widget", rt.Name)
		}
	}
	for _, name := range []string{"health.check", "health.status_card", "identity.profile", "identity.profile_card", "auth.session"} {
		if _, ok := byName[name]; !ok {
			t.Errorf("reference tool %s missing", name)
		}
	}

	var init struct {
		Instructions string `json:"instructions"`
	}
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: call("initialize", map[string]any{
		"protocolVersion": version, "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "x", "version": "1"}})})
	if err := json.Unmarshal(r.rpc(t).Result, &init); err != nil {
		t.Fatal(err)
	}
	for _, rt := range reg.Tools() {
		if !strings.Contains(init.Instructions, rt.Name) {
			t.Errorf("server instructions do not describe %s:\n%s", rt.Name, init.Instructions)
		}
	}
}

func toAny(s []string) []any {
	out := []any{}
	for _, x := range s {
		out = append(out, x)
	}
	return out
}

// Every tool reaches the real capability-core with the caller's token and
// returns structured content plus the same JSON as text.
func TestEveryToolCallsCapabilityCore(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-42", allScopes)
	sid := g.initialize(t, tok)
	for _, rt := range coreTools(t) {
		t.Run(rt.Name, func(t *testing.T) {
			var res toolResult
			g.rpc(t, tok, sid, "tools/call", map[string]any{"name": rt.Name, "arguments": map[string]any{}}, &res)
			if res.IsError {
				t.Fatalf("error result: %+v", res)
			}
			if len(res.Content) != 1 || res.Content[0].Type != "text" {
				t.Fatalf("content %+v", res.Content)
			}
			var text map[string]any
			if err := json.Unmarshal([]byte(res.Content[0].Text), &text); err != nil || fmt.Sprint(text) != fmt.Sprint(res.StructuredContent) {
				t.Errorf("text content %q is not the structured content %v", res.Content[0].Text, res.StructuredContent)
			}
			for field := range rt.Capability.OutputSchema()["properties"].(map[string]any) {
				if _, ok := res.StructuredContent[field]; !ok {
					t.Errorf("structuredContent lacks %s: %v", field, res.StructuredContent)
				}
			}
		})
	}
	var prof toolResult
	g.rpc(t, tok, sid, "tools/call", map[string]any{"name": "identity.profile"}, &prof)
	if prof.StructuredContent["sub"] != "user-42" || prof.StructuredContent["email"] != "ada@example.com" {
		t.Errorf("profile is not the caller's: %v", prof.StructuredContent)
	}
	var sess toolResult
	g.rpc(t, tok, sid, "tools/call", map[string]any{"name": "auth.session"}, &sess)
	if sess.StructuredContent["subject"] != "user-42" && sess.StructuredContent["sub"] != "user-42" {
		t.Errorf("session is not the caller's: %v", sess.StructuredContent)
	}
	var health toolResult
	g.rpc(t, tok, sid, "tools/call", map[string]any{"name": "health.check"}, &health)
	if health.StructuredContent["service"] != "capability-core" {
		t.Errorf("health did not come from capability-core: %v", health.StructuredContent)
	}

	// Bad arguments are the tool's error, with the decoder's message.
	var bad toolResult
	g.rpc(t, tok, sid, "tools/call", map[string]any{"name": "health.check", "arguments": map[string]any{"nope": 1}}, &bad)
	if !bad.IsError || !strings.Contains(bad.Content[0].Text, "nope") {
		t.Errorf("unknown argument: %+v", bad)
	}
	// An unknown tool is a JSON-RPC error from mcp-go.
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: call("tools/call", map[string]any{"name": "no.such_tool"})})
	if m := r.rpc(t); m.Error == nil {
		t.Errorf("unknown tool answered %s", m.Result)
	}
	if v := g.metric(t, `tollgate_mcp_tool_calls_total{result="ok",tool="identity.profile"}`); v < 1 {
		t.Errorf("tool call metric = %v", v)
	}
}

// A tool called by ChatGPT without its scopes answers a tool error
// carrying an insufficient_scope challenge in _meta and in
// WWW-Authenticate (other clients get 403: TestScopeChallengeForms).
func TestInsufficientScopeStepUp(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", "openid")
	sid := g.initialize(t, tok)
	for _, name := range []string{"identity.profile", "identity.profile_card"} {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Header: chatGPT, Body: call("tools/call", map[string]any{"name": name})})
		if r.Status != 200 {
			t.Fatalf("%s: HTTP %d", name, r.Status)
		}
		var res toolResult
		if err := json.Unmarshal(r.rpc(t).Result, &res); err != nil {
			t.Fatal(err)
		}
		if !res.IsError {
			t.Fatalf("%s without scopes succeeded: %+v", name, res)
		}
		challenges, _ := res.Meta["mcp/www_authenticate"].([]any)
		if len(challenges) != 1 {
			t.Fatalf("%s: _meta %v", name, res.Meta)
		}
		c := challenges[0].(string)
		for _, want := range []string{`error="insufficient_scope"`, `scope="openid profile email"`, `resource_metadata="` + metadataURL + `"`} {
			if !strings.Contains(c, want) {
				t.Errorf("%s: challenge %s lacks %s", name, c, want)
			}
		}
		if got := r.Header.Get("WWW-Authenticate"); got != c {
			t.Errorf("%s: WWW-Authenticate %q, want %q", name, got, c)
		}
		// The card's step-up state names the missing scopes in words.
		stepUp, _ := json.Marshal(res.Meta["tollgate/stepUp"])
		if want := `{"missing":[{"description":"Your name and username","scope":"profile"},{"description":"Your email address","scope":"email"}]}`; string(stepUp) != want {
			t.Errorf("%s: tollgate/stepUp %s, want %s", name, stepUp, want)
		}
		// Only a card's result carries its actions: reload is the tool itself.
		actions, _ := json.Marshal(res.Meta["tollgate/actions"])
		if want := map[string]string{"identity.profile": "null", "identity.profile_card": `{"reload":"identity.profile_card"}`}[name]; string(actions) != want {
			t.Errorf("%s: tollgate/actions %s, want %s", name, actions, want)
		}
		if scopes, _ := res.Meta["tollgate/scopes"].(map[string]any); name == "identity.profile_card" && scopes["email"] != "Your email address" {
			t.Errorf("%s: tollgate/scopes %v", name, res.Meta["tollgate/scopes"])
		}
	}
	// A tool needing only openid works with the same token, without a challenge.
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: call("tools/call", map[string]any{"name": "auth.session"})})
	var res toolResult
	_ = json.Unmarshal(r.rpc(t).Result, &res)
	if res.IsError || r.Header.Get("WWW-Authenticate") != "" {
		t.Errorf("auth.session with openid: %+v %q", res, r.Header.Get("WWW-Authenticate"))
	}
}

type listedResource struct {
	URI      string         `json:"uri"`
	Name     string         `json:"name"`
	MIMEType string         `json:"mimeType"`
	Meta     map[string]any `json:"_meta"`
}

// Widget templates are MCP Apps resources with metadata for both hosts.
// Any valid MCP token reads them: a template holds no user data, and the
// profile card must load for a caller with only openid to show its
// step-up state.
func TestWidgetResources(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	var list struct {
		Resources []listedResource `json:"resources"`
	}
	g.rpc(t, tok, sid, "resources/list", nil, &list)
	// Exactly the registered widgets: a card added to widgets.All() is
	// listed with no change here (docs/guides/add-a-widget.md §3).
	want := map[string]bool{}
	for _, w := range widgets.All() {
		want[w.URI] = true
	}
	if len(want) == 0 {
		t.Fatal("widgets.All() is empty")
	}
	if len(list.Resources) != len(want) {
		t.Fatalf("resources %+v", list.Resources)
	}
	for _, r := range list.Resources {
		if !want[r.URI] || r.MIMEType != "text/html;profile=mcp-app" {
			t.Errorf("resource %+v", r)
		}
		ui, _ := r.Meta["ui"].(map[string]any)
		// No ui.domain unless MCP_UI_DOMAIN sets it (TestWidgetResourcesUIDomain).
		if _, has := ui["domain"]; has || ui["csp"] == nil || ui["prefersBorder"] == nil {
			t.Errorf("%s: ui meta %v", r.URI, ui)
		}
		for _, k := range []string{"openai/widgetCSP", "openai/widgetDomain", "openai/widgetPrefersBorder", "openai/widgetDescription"} {
			if _, ok := r.Meta[k]; !ok {
				t.Errorf("%s: _meta lacks %s", r.URI, k)
			}
		}
		var read struct {
			Contents []struct {
				URI      string         `json:"uri"`
				MIMEType string         `json:"mimeType"`
				Text     string         `json:"text"`
				Meta     map[string]any `json:"_meta"`
			} `json:"contents"`
		}
		g.rpc(t, tok, sid, "resources/read", map[string]any{"uri": r.URI}, &read)
		if len(read.Contents) != 1 || !strings.Contains(read.Contents[0].Text, "http://localhost:4000/app-ui/") ||
			read.Contents[0].MIMEType != "text/html;profile=mcp-app" || read.Contents[0].Meta["openai/widgetDomain"] == nil {
			t.Errorf("read %s: %+v", r.URI, read)
		}
	}
	// With only openid every template is readable, without a challenge.
	weak := f.Token("user-1", "openid")
	wsid := g.initialize(t, weak)
	for uri := range want {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: weak, Session: wsid, Version: version,
			Body: call("resources/read", map[string]any{"uri": uri})})
		var read struct {
			Contents []struct {
				Text string `json:"text"`
			} `json:"contents"`
		}
		m := r.rpc(t)
		if m.Error != nil || json.Unmarshal(m.Result, &read) != nil || len(read.Contents) != 1 || !strings.Contains(read.Contents[0].Text, "<html") {
			t.Errorf("%s with openid only: %s %+v", uri, m.Result, m.Error)
		}
		if h := r.Header.Get("WWW-Authenticate"); h != "" {
			t.Errorf("%s with openid only: challenge %q", uri, h)
		}
	}
	// Without a token, nothing.
	r := g.do(t, req{Method: "POST", Path: "/mcp", Session: wsid, Version: version,
		Body: call("resources/read", map[string]any{"uri": "ui://widget/profile-summary-card-v1.html"})})
	if r.Status != http.StatusUnauthorized {
		t.Errorf("resources/read without a token: HTTP %d", r.Status)
	}
}

// The gateway serves the widget assets with their types and headers.
func TestAppUIAssets(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	for path, ctype := range map[string]string{
		"/app-ui/tool-result-card-base-v1.css": "text/css; charset=utf-8",
		"/app-ui/mcp-widget-bridge-v1.js":      "text/javascript; charset=utf-8",
	} {
		r := g.do(t, req{Method: "GET", Path: path})
		if r.Status != 200 || r.Header.Get("Content-Type") != ctype || r.Header.Get("X-Content-Type-Options") != "nosniff" ||
			r.Header.Get("Access-Control-Allow-Origin") != "*" || r.Header.Get("Cache-Control") == "" || len(r.Body) == 0 {
			t.Errorf("%s: %d %v", path, r.Status, r.Header)
		}
	}
	// Refusals are the gateway's JSON errors, not net/http's plain text;
	// a 405 names the methods (RFC 9110 §15.5.6).
	for _, c := range []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{"GET", "/app-ui/nope.js", http.StatusNotFound, "not_found", ""},
		{"GET", "/app-ui/../go.mod", http.StatusNotFound, "not_found", ""},
		{"GET", "/app-ui/", http.StatusNotFound, "not_found", ""},
		{"POST", "/app-ui/mcp-widget-bridge-v1.js", http.StatusMethodNotAllowed, "method_not_allowed", "GET, HEAD"},
		{"PUT", "/app-ui/nope.js", http.StatusMethodNotAllowed, "method_not_allowed", "GET, HEAD"},
	} {
		r := g.do(t, req{Method: c.method, Path: c.path})
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if r.Status != c.status || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Allow") != c.allow ||
			json.Unmarshal(r.Body, &e) != nil || e.Error != c.code || e.Description == "" {
			t.Errorf("%s %s: %d %v %s, want a JSON %d %q", c.method, c.path, r.Status, r.Header, r.Body, c.status, c.code)
		}
	}
}

// RFC 9728 metadata at the path-suffixed and the root well-known URL.
func TestProtectedResourceMetadata(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	for path, want := range map[string]string{
		"/.well-known/oauth-protected-resource/mcp": resource,
		"/.well-known/oauth-protected-resource":     resource,
		// RFC 9728 §3.1/§3.3: the legacy endpoint's own identifier.
		"/.well-known/oauth-protected-resource/sse": sseResource,
	} {
		r := g.do(t, req{Method: "GET", Path: path})
		var prm struct {
			Resource               string   `json:"resource"`
			AuthorizationServers   []string `json:"authorization_servers"`
			ScopesSupported        []string `json:"scopes_supported"`
			BearerMethodsSupported []string `json:"bearer_methods_supported"`
		}
		if err := json.Unmarshal(r.Body, &prm); err != nil || r.Status != 200 {
			t.Fatalf("%s: %d %s", path, r.Status, r.Body)
		}
		if prm.Resource != want || fmt.Sprint(prm.AuthorizationServers) != "["+issuerURL+"]" ||
			strings.Join(prm.ScopesSupported, " ") != supportedScopes || fmt.Sprint(prm.BearerMethodsSupported) != "[header]" {
			t.Errorf("%s: %+v", path, prm)
		}
	}
	// Other well-known paths (the Actions resource's metadata is served
	// by the actions-api) are JSON 404s.
	for _, path := range []string{"/.well-known/oauth-protected-resource/actions", "/.well-known/oauth-protected-resource/mcp/x", "/.well-known/unknown"} {
		r := g.do(t, req{Method: "GET", Path: path})
		var e struct {
			Error string `json:"error"`
		}
		if r.Status != http.StatusNotFound || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") ||
			json.Unmarshal(r.Body, &e) != nil || e.Error != "not_found" {
			t.Errorf("%s: %d %v %s, want a JSON 404", path, r.Status, r.Header, r.Body)
		}
	}
}

package gateway_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// clashService declares a tool "notes_list", published as notes.list is
// in the underscore style, beside its own clash.ping.
func clashService() registrytest.Service {
	return registrytest.Service{
		Package: "clash", Name: "ClashService",
		Scopes: []*optionsv1.Scope{{Name: "clash.read", Description: "Read clashes"}},
		Methods: []registrytest.Method{
			{Name: "Ping", Tool: &optionsv1.McpTool{Name: "clash.ping", Title: "Ping", Description: "Pings.",
				RequiredScopes: []string{"clash.read"}, Annotations: &optionsv1.ToolAnnotations{ReadOnly: proto.Bool(true)}}},
			{Name: "List", Tool: &optionsv1.McpTool{Name: "notes_list", Title: "List", Description: "Lists.",
				RequiredScopes: []string{"clash.read"}, Annotations: &optionsv1.ToolAnnotations{ReadOnly: proto.Bool(true)}}},
		},
	}
}

// TestUnderscoreNameClashAtStartRefusesOnlyThatService: with
// MCP_TOOL_NAME_STYLE=underscore, a backend declaring "notes_list" beside
// another's "notes.list" (one published name for two tools) stopped the
// gateway at start ("tools notes.list and notes_list are both
// \"notes_list\""). Now the later backend's service is refused, logged
// and counted as a conflict, and every other tool is served, each call
// reaching its own backend.
func TestUnderscoreNameClashAtStartRefusesOnlyThatService(t *testing.T) {
	f := newFleet(t)
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	clash := registrytest.Start(t, "clash", []registrytest.Service{clashService()})
	g := f.Gateway("CAPABILITY_BACKENDS", "capability-core="+f.CoreAddr+",notes="+notes.Addr+",clash="+clash.Addr,
		"MCP_TOOL_NAME_STYLE", "underscore")
	tok := f.Token("user-1", "openid notes.read clash.read")
	sid := g.initialize(t, tok)
	got := " " + g.toolNames(t, tok, sid) + " "
	if !strings.Contains(got, " notes_list ") || !strings.Contains(got, " notes_add ") || !strings.Contains(got, " health_check ") ||
		strings.Contains(got, "clash_ping") || strings.Count(got, " notes_list ") != 1 {
		t.Errorf("tools = %q, want notes_list and notes_add of notes, without the clash service", got)
	}
	var res toolResult
	g.rpc(t, tok, sid, "tools/call", map[string]any{"name": "notes_list", "arguments": map[string]any{"text": "hi"}}, &res)
	if res.IsError || res.StructuredContent["backend"] != "notes" {
		t.Errorf("notes_list: %+v, want the notes backend's answer", res)
	}
	if c := clash.Calls(); len(c) != 0 {
		t.Errorf("the refused backend was called: %+v", c)
	}
	logs := g.Logs.String()
	for _, want := range []string{`msg="capability service refused"`, `backend=clash service=clash.ClashService`,
		`clash.ClashService.List: tool \"notes_list\" is published as \"notes_list\", the name of tool \"notes.list\" already declared by notes.NotesService.ListNotes`,
		`winner=notes`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	if n := g.metric(t, `tollgate_capability_conflicts_total{backend="clash"}`); n != 1 {
		t.Errorf("conflicts of clash = %v, want 1", n)
	}
}

// TestUnderscoreNameClashAtRefreshFreezesNoOtherBackend: a backend that
// started declaring a clashing tool while the gateway ran made every new
// registry "not served: the gateway keeps the previous tools": every
// other backend's new and removed tools were frozen. Now only its service
// is refused, the others follow; when the clash goes, the refusal lifts.
func TestUnderscoreNameClashAtRefreshFreezesNoOtherBackend(t *testing.T) {
	f := newFleet(t)
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	other := registrytest.Start(t, "other", []registrytest.Service{notesService("misc")})
	g := f.Gateway("CAPABILITY_BACKENDS", "capability-core="+f.CoreAddr+",notes="+notes.Addr+",other="+other.Addr,
		"MCP_TOOL_NAME_STYLE", "underscore", "CAPABILITY_REFRESH_INTERVAL", "1s",
		// tools/list is asked until the refresh shows.
		"RATE_LIMIT_PER_MINUTE", "100000")
	tok := f.Token("user-1", "openid notes.read todo.read misc.read clash.read")
	sid := g.initialize(t, tok)
	// Another team's backend ships the clashing service; then the notes
	// team adds its todo tools.
	other.Serve(t, notesService("misc"), clashService())
	notes.Serve(t, notesService("notes"), notesService("todo"))
	testharness.Eventually(t, 30*time.Second, "the notes backend's new tools served", func() (bool, string) {
		got := g.toolNames(t, tok, sid)
		return strings.Contains(got, "todo_list"), got
	})
	got := " " + g.toolNames(t, tok, sid) + " "
	if strings.Contains(got, "clash_ping") || !strings.Contains(got, " misc_list ") || !strings.Contains(got, " notes_list ") {
		t.Errorf("tools = %q, want misc_*, notes_*, todo_* and no clash_*", got)
	}
	if !strings.Contains(g.Logs.String(), `clash.ClashService.List: tool \"notes_list\" is published as \"notes_list\"`) {
		t.Errorf("logs lack the refusal:\n%s", g.Logs)
	}
	var res toolResult
	g.rpc(t, tok, sid, "tools/call", map[string]any{"name": "notes_list", "arguments": map[string]any{"text": "x"}}, &res)
	if res.IsError || res.StructuredContent["backend"] != "notes" {
		t.Errorf("notes_list: %+v, want the notes backend's answer", res)
	}
	// The clashing tool renamed, the service is served.
	fixed := clashService()
	fixed.Methods[1].Tool.Name = "clash.list"
	other.Serve(t, notesService("misc"), fixed)
	testharness.Eventually(t, 30*time.Second, "the fixed service served", func() (bool, string) {
		got := g.toolNames(t, tok, sid)
		return strings.Contains(got, "clash_list") && strings.Contains(got, "clash_ping"), got
	})
	res = toolResult{}
	g.rpc(t, tok, sid, "tools/call", map[string]any{"name": "clash_list", "arguments": map[string]any{"text": "y"}}, &res)
	if res.IsError || res.StructuredContent["backend"] != "other" {
		t.Errorf("clash_list: %+v, want the other backend's answer", res)
	}
}

// TestUnderscoreNameClashWithinOneService: one service declaring both
// notes.list and notes_list is refused (its own two tools would be one);
// with the default style both are served.
func TestUnderscoreNameClashWithinOneService(t *testing.T) {
	f := newFleet(t)
	svc := notesService("notes")
	svc.Methods = append(svc.Methods, registrytest.Method{Name: "ListAgain", Tool: &optionsv1.McpTool{Name: "notes_list", Title: "List", Description: "Lists.",
		RequiredScopes: []string{"notes.read"}, Annotations: &optionsv1.ToolAnnotations{ReadOnly: proto.Bool(true)}}})
	notes := registrytest.Start(t, "notes", []registrytest.Service{svc})
	misc := registrytest.Start(t, "misc", []registrytest.Service{notesService("misc")})
	backends := "capability-core=" + f.CoreAddr + ",notes=" + notes.Addr + ",misc=" + misc.Addr
	tok := f.Token("user-1", "openid notes.read misc.read")

	g := f.Gateway("CAPABILITY_BACKENDS", backends, "MCP_TOOL_NAME_STYLE", "underscore")
	got := g.toolNames(t, tok, g.initialize(t, tok))
	if strings.Contains(got, "notes_") || !strings.Contains(got, "misc_list") || !strings.Contains(got, "health_check") {
		t.Errorf("underscore style: tools = %q, want misc's and core's, none of notes'", got)
	}
	if want := `notes.NotesService.ListAgain: tool \"notes_list\" is published as \"notes_list\", the name of tool \"notes.list\" already declared by notes.NotesService.ListNotes`; !strings.Contains(g.Logs.String(), want) {
		t.Errorf("logs lack %s:\n%s", want, g.Logs)
	}
	// Not a conflict with another backend: not counted as one.
	if n := g.metric(t, `tollgate_capability_conflicts_total{backend="notes"}`); n != 0 {
		t.Errorf("conflicts of notes = %v, want 0", n)
	}

	// The default style publishes the registry's names: no clash.
	d := f.Gateway("CAPABILITY_BACKENDS", backends)
	sid := d.initialize(t, tok)
	got = " " + d.toolNames(t, tok, sid) + " "
	if !strings.Contains(got, " notes.list ") || !strings.Contains(got, " notes_list ") || !strings.Contains(got, " misc.list ") {
		t.Errorf("default style: tools = %q, want notes.list and notes_list", got)
	}
	if strings.Contains(d.Logs.String(), "capability service refused") {
		t.Errorf("default style refused a service:\n%s", d.Logs)
	}
	var res toolResult
	d.rpc(t, tok, sid, "tools/call", map[string]any{"name": "notes_list", "arguments": map[string]any{"text": "z"}}, &res)
	if res.IsError || res.StructuredContent["backend"] != "notes" {
		t.Errorf("notes_list in the default style: %+v", res)
	}
	if c := notes.Calls(); len(c) != 1 || !strings.HasSuffix(c[0].Method, "/ListAgain") {
		t.Errorf("notes backend calls: %+v, want one of ListAgain", c)
	}
}

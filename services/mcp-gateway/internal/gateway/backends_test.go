package gateway_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
	"github.com/tollgate/tollgate/services/platform/fault"
	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
)

func notesService(pkg string) registrytest.Service {
	return registrytest.Service{
		Package: pkg, Name: "NotesService",
		Scopes: []*optionsv1.Scope{{Name: pkg + ".read", Description: "Read your notes"}, {Name: pkg + ".write", Description: "Change your notes"}},
		Methods: []registrytest.Method{
			{Name: "ListNotes", Tool: &optionsv1.McpTool{Name: pkg + ".list", Title: "List notes", Description: "Lists notes.",
				RequiredScopes: []string{pkg + ".read"}, Annotations: &optionsv1.ToolAnnotations{ReadOnly: proto.Bool(true)}}},
			// Declared: a write that destroys nothing (leaving
			// destructive out would make it destructive, MCP's default).
			{Name: "AddNote", Tool: &optionsv1.McpTool{Name: pkg + ".add", Title: "Add a note", Description: "Adds a note.",
				RequiredScopes: []string{pkg + ".write"}, Annotations: &optionsv1.ToolAnnotations{Destructive: proto.Bool(false)}}},
		},
	}
}

func (g *gw) toolNames(t *testing.T, tok, sid string) string {
	t.Helper()
	var list struct {
		Tools []listedTool `json:"tools"`
	}
	g.rpc(t, tok, sid, "tools/list", nil, &list)
	var names []string
	for _, lt := range list.Tools {
		names = append(names, lt.Name)
	}
	return strings.Join(names, " ")
}

// A backend's tools appear, change and go while a session is live: the
// session's stream gets notifications/tools/list_changed each time, and
// tools/list and tools/call follow.
func TestBackendToolsFollowedInALiveSession(t *testing.T) {
	f := newFleet(t)
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	late := registrytest.Start(t, "late", []registrytest.Service{notesService("todo")})
	late.Stop()
	g := f.Gateway("CAPABILITY_BACKENDS", "capability-core="+f.CoreAddr+",notes="+notes.Addr+",late="+late.Addr,
		"CAPABILITY_REFRESH_INTERVAL", "1s",
		// The call held in flight below outlives a refresh or two.
		"CORE_CALL_TIMEOUT", "30s")
	tok := f.Token("user-1", "openid notes.read todo.read")
	sid := g.initialize(t, tok)
	core := len(coreTools(t))
	if got := g.toolNames(t, tok, sid); !strings.Contains(got, "notes.add notes.list") || strings.Contains(got, "todo.") || len(strings.Fields(got)) != core+2 {
		t.Fatalf("tools at start = %q", got)
	}
	var res toolResult
	g.rpc(t, tok, sid, "tools/call", map[string]any{"name": "notes.list", "arguments": map[string]any{"text": "hi"}}, &res)
	if res.IsError || res.StructuredContent["backend"] != "notes" || res.StructuredContent["text"] != "hi" {
		t.Fatalf("notes.list: %+v", res)
	}
	if c := notes.Calls(); len(c) != 1 || c[0].MD.Get("authorization")[0] != "Bearer "+tok {
		t.Errorf("backend calls: %+v", c)
	}
	res = toolResult{}
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Header: chatGPT, Body: call("tools/call", map[string]any{"name": "notes.add"})})
	if err := json.Unmarshal(r.rpc(t).Result, &res); err != nil {
		t.Fatalf("notes.add: %d %s", r.Status, r.Body)
	}
	if !res.IsError || !strings.Contains(res.Content[0].Text, "notes.write") {
		t.Errorf("notes.add without its scope: %+v", res)
	}

	listChanged := func(e sseEvent) bool { return strings.Contains(e.Data, `"notifications/tools/list_changed"`) }
	s := g.openStream(t, "/mcp", tok, map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": version})

	// The backend down at start comes up.
	late.Restart(t)
	s.next(listChanged)
	if got := g.toolNames(t, tok, sid); !strings.Contains(got, "todo.add todo.list") {
		t.Fatalf("tools after late came up = %q", got)
	}
	res = toolResult{}
	g.rpc(t, tok, sid, "tools/call", map[string]any{"name": "todo.list"}, &res)
	if res.IsError || res.StructuredContent["backend"] != "late" {
		t.Errorf("todo.list: %+v", res)
	}

	// notes drops ListNotes while a call to it is in flight: the tool
	// goes, the call finishes.
	entered, release := notes.Hold()
	done := make(chan toolResult, 1)
	go func() {
		var r toolResult
		g.rpc(t, tok, sid, "tools/call", map[string]any{"name": "notes.list", "arguments": map[string]any{"text": "in flight"}}, &r)
		done <- r
	}()
	<-entered
	dropped := notesService("notes")
	dropped.Methods = dropped.Methods[1:]
	notes.Serve(t, dropped)
	s.next(listChanged)
	if got := g.toolNames(t, tok, sid); strings.Contains(got, "notes.list") || !strings.Contains(got, "notes.add") {
		t.Errorf("tools after ListNotes was removed = %q", got)
	}
	release()
	if r := <-done; r.IsError || r.StructuredContent["text"] != "in flight" {
		t.Errorf("the call in flight: %+v", r)
	}
	r = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: call("tools/call", map[string]any{"name": "notes.list"})})
	if m := r.rpc(t); m.Error == nil || !strings.Contains(m.Error.Message, "notes.list") {
		t.Errorf("a removed tool: %s", r.Body)
	}
}

// A backend's tool that the gateway cannot draw (a widget it does not
// have) is left out and logged; the backend's other tools, and everyone
// else's, are served.
func TestToolWithUnknownWidgetIsLeftOut(t *testing.T) {
	f := newFleet(t)
	svc := notesService("notes")
	svc.Methods[0].Tool.WidgetUri = "ui://widget/not-in-the-widgets-module.html"
	notes := registrytest.Start(t, "notes", []registrytest.Service{svc})
	g := f.Gateway("CAPABILITY_BACKENDS", "capability-core="+f.CoreAddr+",notes="+notes.Addr)
	tok := f.Token("user-1", "openid notes.read")
	sid := g.initialize(t, tok)
	got := g.toolNames(t, tok, sid)
	if strings.Contains(got, "notes.list") || !strings.Contains(got, "notes.add") || !strings.Contains(got, "health.check") {
		t.Errorf("tools = %q", got)
	}
	if !strings.Contains(g.Logs.String(), `msg="tool not served" service=mcp-gateway tool=notes.list backend=notes`) {
		t.Errorf("log:\n%s", g.Logs)
	}
	// A call of it, even without its scopes, is a call of an unknown
	// tool: not a 403 naming scopes for a tool that is not there.
	weak := f.Token("user-1", "openid")
	wsid := g.initialize(t, weak)
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: weak, Session: wsid, Version: version, Body: call("tools/call", map[string]any{"name": "notes.list"})})
	if r.Status != 200 {
		t.Fatalf("the unserved notes.list without its scope: %d %q %s, want a JSON-RPC error", r.Status, r.Header.Get("WWW-Authenticate"), r.Body)
	}
	if m := r.rpc(t); m.Error == nil || !strings.Contains(m.Error.Message, "notes.list") {
		t.Errorf("the unserved notes.list without its scope: %s", r.Body)
	}
}

// Every gRPC code a backend answers maps by fault.AnswerFor, the table
// the actions-api shares (docs/reference/mcp.md, "Tool call failures"):
// a caller error is a tool result with isError and the backend's message
// (cut to 1 KiB: a backend's 100 KiB message is not passed on whole), a
// server fault one with a fixed text; never a JSON-RPC or HTTP error.
func TestBackendStatusCodesMapToToolErrors(t *testing.T) {
	f := newFleet(t)
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	// The deadline is not what this test is about: the harness's 2 s cut
	// the 105,000-byte case short (DeadlineExceeded: "unavailable") on a
	// machine at load ~50.
	g := f.Gateway("CAPABILITY_BACKENDS", "capability-core="+f.CoreAddr+",notes="+notes.Addr, "CORE_CALL_TIMEOUT", "30s")
	tok := f.Token("user-1", "openid notes.read")
	sid := g.initialize(t, tok)
	const unavailable = "The service is temporarily unavailable; try again in a moment."
	for _, c := range []struct {
		code   codes.Code
		msg    string
		result string
	}{
		{codes.InvalidArgument, "limit must be 0 to 100", "invalid_arguments"},
		{codes.OutOfRange, "page 9 is past the last page", "invalid_arguments"},
		{codes.FailedPrecondition, "the note is locked", "failed_precondition"},
		{codes.NotFound, `no note "n1"`, "not_found"},
		{codes.AlreadyExists, "a note with this text exists", "conflict"},
		{codes.PermissionDenied, "the token lacks notes.admin", "forbidden"},
		{codes.ResourceExhausted, "the notes store is full", "rate_limited"},
		{codes.Unauthenticated, "token revoked", "unauthenticated"},
		{codes.Unavailable, "database down at 10.0.0.7", "unavailable"},
		{codes.DeadlineExceeded, "query took too long", "unavailable"},
		{codes.Internal, "nil pointer in handler", "error"},
		{codes.Aborted, "transaction aborted", "error"},
		{codes.Unimplemented, "not yet", "error"},
		{codes.Canceled, "the backend gave up", "unavailable"},
		{codes.Unknown, "panic: runtime error at /srv/notes/store.go:42", "error"},
		{codes.DataLoss, "page 7 of notes.db is corrupt", "error"},
		// 105,000 bytes: shown as its first 1,008 bytes (336 whole
		// three-byte runes) and the marker, 1,023 bytes in all.
		{codes.InvalidArgument, strings.Repeat("€", 35000), "invalid_arguments"},
	} {
		t.Run(c.code.String(), func(t *testing.T) {
			want := c.msg
			switch a := fault.AnswerFor(c.code); {
			case len(c.msg) > 1024:
				want = strings.Repeat("€", 336) + "... (truncated)"
			case c.code == codes.Unauthenticated:
				want = "The service did not accept the authorization; reconnect the app."
			case c.code == codes.ResourceExhausted:
				want = c.msg + " (try again in 5s)" // no RetryInfo: fault.DefaultRetryAfter
			case a.Transient():
				want = unavailable
			case !a.CallerError:
				want = "The service failed to answer."
			}
			series := fmt.Sprintf(`tollgate_mcp_tool_calls_total{result=%q,tool="notes.list"}`, c.result)
			before := g.metric(t, series)
			r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version,
				Body: call("tools/call", map[string]any{"name": "notes.list", "arguments": map[string]any{"text": registrytest.FailText(c.code, c.msg)}})})
			if r.Status != 200 {
				t.Fatalf("HTTP %d: %s", r.Status, r.Body)
			}
			m := r.rpc(t)
			if m.Error != nil {
				t.Fatalf("a JSON-RPC error: %s", r.Body)
			}
			var res toolResult
			if err := json.Unmarshal(m.Result, &res); err != nil {
				t.Fatal(err)
			}
			if !res.IsError || len(res.Content) != 1 || res.Content[0].Text != want || res.Meta["tollgate/error"] != want {
				t.Errorf("result = %+v, want isError with %q", res, want)
			}
			if got := g.metric(t, series); got != before+1 {
				t.Errorf("%s = %v, want %v", series, got, before+1)
			}
		})
	}
}

// The default challenge (401 without a token, or with a refused one) asks
// for openid and the scopes of every tool not annotated destructive: a
// destructive tool's own scope comes by its step-up challenge. A scope a
// tool that is not destructive needs too is asked for; the metadata's
// scopes_supported lists every scope.
func TestDefaultChallengeLeavesOutDestructiveToolsScopes(t *testing.T) {
	f := newFleet(t)
	svc := notesService("notes")
	svc.Scopes = append(svc.Scopes, &optionsv1.Scope{Name: "notes.admin", Description: "Erase all your notes"})
	svc.Methods = append(svc.Methods,
		registrytest.Method{Name: "PurgeNotes", Tool: &optionsv1.McpTool{Name: "notes.purge", Title: "Erase all notes", Description: "Erases every note.",
			RequiredScopes: []string{"notes.admin"}, Annotations: &optionsv1.ToolAnnotations{Destructive: proto.Bool(true)}}},
		registrytest.Method{Name: "DeleteNote", Tool: &optionsv1.McpTool{Name: "notes.delete", Title: "Delete a note", Description: "Deletes a note.",
			RequiredScopes: []string{"notes.write"}, Annotations: &optionsv1.ToolAnnotations{Destructive: proto.Bool(true)}}})
	notes := registrytest.Start(t, "notes", []registrytest.Service{svc})
	g := f.Gateway("CAPABILITY_BACKENDS", "capability-core="+f.CoreAddr+",notes="+notes.Addr)

	// The scopes come in tool order (notes.add, notes.delete, notes.list,
	// notes.purge), and capability-core's fall before or after the notes
	// backend's by their tools' names (a capability of its own named
	// orders.* comes after): compared as sets.
	ask := allScopes + " notes.write notes.read"
	sameScopes := func(got, want string) bool {
		g, w := strings.Fields(got), strings.Fields(want)
		slices.Sort(g)
		slices.Sort(w)
		return slices.Equal(g, w)
	}
	challenged := func(h, prefix string) bool {
		rest, ok := strings.CutPrefix(h, prefix+`scope="`)
		scopes, _, _ := strings.Cut(rest, `"`)
		return ok && sameScopes(scopes, ask)
	}
	r := g.do(t, req{Method: "POST", Path: "/mcp", Body: call("ping", nil)})
	if h := r.Header.Get("WWW-Authenticate"); r.Status != 401 || !challenged(h, `Bearer resource_metadata="`+metadataURL+`", `) || strings.Contains(h, "error") {
		t.Errorf("no token: %d %q, want the scopes %q", r.Status, h, ask)
	}
	r = g.do(t, req{Method: "POST", Path: "/mcp", Token: "not-a-token", Body: call("ping", nil)})
	if h := r.Header.Get("WWW-Authenticate"); r.Status != 401 || !challenged(h, `Bearer error="invalid_token", resource_metadata="`+metadataURL+`", `) || !strings.Contains(h, `", error_description=`) {
		t.Errorf("refused token: %d %q, want invalid_token with the scopes %q", r.Status, h, ask)
	}
	// The legacy endpoint's challenge and both metadata documents agree.
	r = g.do(t, req{Method: "GET", Path: "/sse"})
	if h := r.Header.Get("WWW-Authenticate"); r.Status != 401 || !challenged(h, `Bearer resource_metadata="`+sseMetadataURL+`", `) || strings.Contains(h, "error") {
		t.Errorf("/sse, no token: %d %q, want the scopes %q", r.Status, h, ask)
	}
	for _, path := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource/sse"} {
		r = g.do(t, req{Method: "GET", Path: path})
		var prm struct {
			ScopesSupported []string `json:"scopes_supported"`
		}
		if err := json.Unmarshal(r.Body, &prm); err != nil || !sameScopes(strings.Join(prm.ScopesSupported, " "), supportedScopes+" notes.write notes.read notes.admin") {
			t.Errorf("%s scopes_supported: %s", path, r.Body)
		}
	}

	// The destructive tool asks for its scope when it is called.
	tok := f.Token("user-1", "openid notes.read notes.write")
	sid := g.initialize(t, tok)
	var res toolResult
	r = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Header: chatGPT, Body: call("tools/call", map[string]any{"name": "notes.purge"})})
	if err := json.Unmarshal(r.rpc(t).Result, &res); err != nil {
		t.Fatalf("notes.purge: %d %s", r.Status, r.Body)
	}
	ch, _ := res.Meta["mcp/www_authenticate"].([]any)
	if !res.IsError || len(ch) != 1 || !strings.Contains(ch[0].(string), `scope="openid notes.read notes.write notes.admin"`) {
		t.Errorf("notes.purge without notes.admin: %+v", res)
	}
}

// toolError calls tool with text and returns its tool error's text (and
// fails unless the call is a tool result with isError whose _meta
// tollgate/error says the same).
func (g *gw) toolError(t *testing.T, tok, sid, tool, text string) string {
	t.Helper()
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version,
		Body: call("tools/call", map[string]any{"name": tool, "arguments": map[string]any{"text": text}})})
	if r.Status != 200 {
		t.Fatalf("%s: HTTP %d: %s", tool, r.Status, r.Body)
	}
	m := r.rpc(t)
	var res toolResult
	if m.Error != nil || json.Unmarshal(m.Result, &res) != nil || !res.IsError || len(res.Content) != 1 || res.Meta["tollgate/error"] != res.Content[0].Text {
		t.Fatalf("%s: %s, want a tool error result", tool, r.Body)
	}
	return res.Content[0].Text
}

// TestBackendRateLimitToolErrorSaysWhenToRetry: a backend's own
// ResourceExhausted is a tool error with its message and when to try
// again — the backend's google.rpc.RetryInfo delay rounded up to whole
// seconds, else fault.DefaultRetryAfter — the same delay the
// actions-api sends as Retry-After.
func TestBackendRateLimitToolErrorSaysWhenToRetry(t *testing.T) {
	f := newFleet(t)
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	g := f.Gateway("CAPABILITY_BACKENDS", "capability-core="+f.CoreAddr+",notes="+notes.Addr)
	tok := f.Token("user-1", "openid notes.read")
	sid := g.initialize(t, tok)
	const msg = "the notes store takes 10 writes a minute"
	for _, c := range []struct{ text, want string }{
		{registrytest.FailTextRetry(codes.ResourceExhausted, msg, 2100*time.Millisecond), msg + " (try again in 3s)"},
		{registrytest.FailTextRetry(codes.ResourceExhausted, msg, 250*time.Millisecond), msg + " (try again in 1s)"},
		{registrytest.FailText(codes.ResourceExhausted, msg), msg + " (try again in 5s)"},
	} {
		if got := g.toolError(t, tok, sid, "notes.list", c.text); got != c.want {
			t.Errorf("%q: %q, want %q", c.text, got, c.want)
		}
	}
}

// TestReplyOverReceiveLimitToolErrorIsNotRetryable: a backend's reply
// over the gRPC client's receive limit (4 MiB, the default) fails in the
// client with ResourceExhausted "grpc: received message larger than max",
// no rate limit: the tool error says a retry will not help (it said "try
// again in 5s"). The call may take its time to send 4 MiB on a loaded
// machine: CORE_CALL_TIMEOUT is the longest allowed, so the error is the
// size's, not the default 5 s deadline's ("try again in a moment").
func TestReplyOverReceiveLimitToolErrorIsNotRetryable(t *testing.T) {
	f := newFleet(t)
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	g := f.Gateway("CAPABILITY_BACKENDS", "capability-core="+f.CoreAddr+",notes="+notes.Addr, "CORE_CALL_TIMEOUT", "1m")
	tok := f.Token("user-1", "openid notes.read")
	sid := g.initialize(t, tok)
	const want = "The service's request or reply is over the gRPC message size limit; repeating the call will not help."
	if got := g.toolError(t, tok, sid, "notes.list", registrytest.BigReplyText(4<<20+1)); got != want {
		t.Errorf("%q, want %q", got, want)
	}
}

// TestTimedOutWriteToolIsNotSaidRetryable: a call that outlives
// CORE_CALL_TIMEOUT reached the backend, which may finish it. For a
// read-only tool the error says "try again in a moment"; for a tool that
// is neither read-only, idempotent nor idempotency_level IDEMPOTENT /
// NO_SIDE_EFFECTS (notes.add) it says the change may have been made, as
// the actions-api's 503 does, instead of inviting the model to add the
// note a second time.
func TestTimedOutWriteToolIsNotSaidRetryable(t *testing.T) {
	f := newFleet(t)
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	g := f.Gateway("CAPABILITY_BACKENDS", "capability-core="+f.CoreAddr+",notes="+notes.Addr, "CORE_CALL_TIMEOUT", "300ms")
	tok := f.Token("user-1", "openid notes.read notes.write")
	sid := g.initialize(t, tok)
	_, release := notes.Hold()
	defer release()
	for _, c := range []struct{ tool, want string }{
		{"notes.add", "The service did not answer in time; the change may have been made: check before repeating it."},
		{"notes.list", "The service is temporarily unavailable; try again in a moment."},
	} {
		if got := g.toolError(t, tok, sid, c.tool, "buy milk"); got != c.want {
			t.Errorf("%s timed out: %q, want %q", c.tool, got, c.want)
		}
	}
	if calls := notes.Calls(); len(calls) != 2 || calls[0].Text != "buy milk" || !strings.HasSuffix(calls[0].Method, "/AddNote") {
		t.Errorf("the backend's calls: %+v, want the held write and read", calls)
	}
	if !strings.Contains(g.Logs.String(), "grpc_code=DeadlineExceeded") {
		t.Errorf("no call ended at the gateway's deadline:\n%s", g.Logs)
	}
}

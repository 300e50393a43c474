package gateway_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/mcp-gateway/internal/session"
	"github.com/tollgate/tollgate/services/platform/redisx"
)

// A request's id and its params._meta.progressToken are echoed (in the
// answer, in every progress notification) and recorded with a Streamable
// HTTP stream's events in Redis; JSON-RPC and MCP put no size on them, so
// a 1 MB token made every tools/call a 1 MB stream. Each is capped at 256
// bytes of raw JSON: a longer id is -32600 with id null, a longer token
// -32602 with the request's id, on /mcp (initialize, in a session, in a
// 2025-03-26 batch) and /messages; 256 bytes are served.
func TestIDAndProgressTokenAreCapped(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	str := func(n int) string { return `"` + strings.Repeat("a", n-2) + `"` }
	refused := func(name string, r *resp, code int, id string) {
		t.Helper()
		m := r.rpc(t)
		if r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != code || string(m.ID) != id || !strings.Contains(m.Error.Message, "at most 256 bytes") {
			t.Errorf("%s: %d %.300s, want 400 %d with id %s naming the limit", name, r.Status, r.Body, code, id)
		}
	}
	ping := func(id string) string { return `{"jsonrpc":"2.0","id":` + id + `,"method":"ping"}` }
	for _, id := range []string{str(257), "1" + strings.Repeat("0", 256), str(1000000)} {
		refused("ping", g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: ping(id)}), -32600, "null")
		refused("legacy ping", g.do(t, req{Method: "POST", Path: "/messages?sessionId=x", Token: tok, Body: ping(id)}), -32600, "null")
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok,
			Body: `{"jsonrpc":"2.0","id":` + id + `,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`})
		refused("initialize", r, -32600, "null")
		if r.Header.Get("Mcp-Session-Id") != "" {
			t.Errorf("initialize with a long id created a session")
		}
	}
	for _, id := range []string{str(256), "1" + strings.Repeat("0", 255)} {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: ping(id)})
		if m := r.rpc(t); r.Status != http.StatusOK || m.Error != nil || string(m.ID) != id {
			t.Errorf("ping with a %d-byte id: %d %.300s", len(id), r.Status, r.Body)
		}
	}

	call := func(meta string) string {
		return `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"health.check","arguments":{},` + meta + `}}`
	}
	long := str(257)
	for _, meta := range []string{
		`"_meta":{"progressToken":` + long + `}`,
		`"_meta":{"progressToken":` + str(1000000) + `}`,
		`"_meta":{"progressToken":1` + strings.Repeat("0", 256) + `}`,
		`"_meta":{"progress\u0054oken":` + long + `}`,                // an escaped name is the same member
		`"\u005fmeta":{"progressToken":` + long + `}`,                // for _meta too
		`"_meta":{"progressToken":` + long + `,"progressToken":"p"}`, // whichever of two is read
		`"_meta":{"progressToken":"p","progressToken":` + long + `}`,
	} {
		refused("tools/call "+meta[:40], g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: call(meta)}), -32602, "7")
		refused("legacy tools/call "+meta[:40], g.do(t, req{Method: "POST", Path: "/messages?sessionId=x", Token: tok, Body: call(meta)}), -32602, "7")
	}
	// 256 bytes: the call is answered, its progress notification carries the token.
	ok := str(256)
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: call(`"_meta":{"progressToken":` + ok + `}`)})
	var events strings.Builder
	for _, e := range r.Events {
		events.WriteString(e.Data)
	}
	if m := r.rpc(t); r.Status != http.StatusOK || m.Result == nil || m.Error != nil || !strings.Contains(events.String(), `"progressToken":`+ok) {
		t.Errorf("tools/call with a 256-byte progressToken: %d %.300s", r.Status, events.String())
	}

	// A 2025-03-26 session's batch: each message is checked as one of its own.
	r = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"old","version":"1"}}}`})
	old := r.Header.Get("Mcp-Session-Id")
	r = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: old, Body: `[` + ping(long) + `,` + call(`"_meta":{"progressToken":`+long+`}`) + `,` + ping("2") + `]`})
	if r.Status != http.StatusOK || strings.Count(string(r.Body), "at most 256 bytes") != 2 || !strings.Contains(string(r.Body), `"id":null`) || !strings.Contains(string(r.Body), `"id":7`) || len(r.Body) > 2000 {
		t.Errorf("batch: %d %.600s", r.Status, r.Body)
	}
}

// initialize's clientInfo name, version and title are kept in the
// session's Redis record for as long as it lives; uncapped, a 560 KB
// clientInfo made each session a 560 KB record, and one over ~250 KB
// failed the record's write: 503 for the client's own input. Each is
// capped at 256 bytes of raw JSON: longer is -32602 naming the member (no
// session), and a record at the caps stays a few KiB in Redis.
func TestClientInfoIsCapped(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	str := func(c string, n int) string { return `"` + strings.Repeat(c, n-2) + `"` }
	initialize := func(name, ver, title string) *resp {
		return g.do(t, req{Method: "POST", Path: "/mcp", Token: tok,
			Body: `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":` + name + `,"version":` + ver + `,"title":` + title + `}}}`})
	}
	for _, c := range []struct{ member, name, ver, title string }{
		{"name", str("n", 257), `"1"`, `"t"`},
		{"version", `"n"`, str("1", 257), `"t"`},
		{"title", `"n"`, `"1"`, str("t", 257)},
		{"title", `"n"`, `"1"`, str("t", 400000)}, // the 503 before
	} {
		r := initialize(c.name, c.ver, c.title)
		m := r.rpc(t)
		if r.Status != http.StatusOK || m.Error == nil || m.Error.Code != -32602 || !strings.Contains(m.Error.Message, "params.clientInfo."+c.member+" is ") ||
			!strings.Contains(m.Error.Message, "at most 256 bytes") || r.Header.Get("Mcp-Session-Id") != "" {
			t.Errorf("clientInfo.%s of %d bytes: %d %v %.300s, want -32602 naming it and no session", c.member, max(len(c.name), len(c.ver), len(c.title)), r.Status, r.Header.Get("Mcp-Session-Id"), r.Body)
		}
		// A legacy initialize: refused on its POST, before the session is looked up.
		r = g.do(t, req{Method: "POST", Path: "/messages?sessionId=x", Token: tok,
			Body: `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":` + c.name + `,"version":` + c.ver + `,"title":` + c.title + `}}}`})
		if m := r.rpc(t); r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32602 || !strings.Contains(m.Error.Message, "params.clientInfo."+c.member+" is ") {
			t.Errorf("legacy: clientInfo.%s: %d %.300s, want 400 -32602 naming it", c.member, r.Status, r.Body)
		}
	}
	// At the caps, with characters encoding/json re-escapes six-fold
	// ("<" is stored as \u003c): served, and the record stays small.
	r := initialize(str("<", 256), str("<", 256), str("<", 256))
	sid := r.Header.Get("Mcp-Session-Id")
	if m := r.rpc(t); r.Status != http.StatusOK || m.Error != nil || sid == "" {
		t.Fatalf("initialize at the caps: %d %.300s", r.Status, r.Body)
	}
	rc := f.Redis.Client()
	keys, err := rc.Keys(t.Context(), "*mcp:session:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("session records: %v %v", keys, err)
	}
	used, err := rc.MemoryUsage(t.Context(), keys[0]).Result()
	if err != nil || used > 16<<10 {
		t.Errorf("session record at the caps: MEMORY USAGE %d bytes (%v), want at most 16 KiB", used, err)
	}
	t.Logf("session record at the caps: MEMORY USAGE %d bytes", used)
}

// Every tools/call that asks for progress is an answer stream recorded in
// Redis; a session records at most session.SessionStreams of them (here
// 4): the oldest are forgotten — Last-Event-ID of one is 400 "unknown
// Last-Event-ID" —, the newest resume.
func TestProgressStreamsPerSessionAreBounded(t *testing.T) {
	streams := session.SessionStreams
	session.SessionStreams = 4
	t.Cleanup(func() { session.SessionStreams = streams })
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	var first []string // each call's first event id
	for i := range 10 {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version,
			Body: fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"health.check","arguments":{},"_meta":{"progressToken":"p-%d"}}}`, i, i)})
		if r.Status != http.StatusOK || len(r.Events) < 2 || r.Events[0].ID == "" {
			t.Fatalf("call %d: %d %v %s", i, r.Status, r.Events, r.Body)
		}
		first = append(first, r.Events[0].ID)
	}
	rc := f.Redis.Client()
	keys, err := rc.Keys(t.Context(), "*mcp:events:"+redisx.Tag(redisx.Hash(sid))+":*").Result()
	if err != nil || len(keys) != 4 {
		t.Errorf("recorded streams: %d %v, want 4", len(keys), err)
	}
	resume := func(id string) *resp {
		return g.do(t, req{Method: "GET", Path: "/mcp", Token: tok, Session: sid, Version: version, Header: map[string]string{"Last-Event-ID": id, "Accept": "text/event-stream"}})
	}
	if r := resume(first[0]); r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "unknown Last-Event-ID") {
		t.Errorf("resume the first call's stream: %d %s, want 400 unknown Last-Event-ID", r.Status, r.Body)
	}
	if r := resume(first[9]); r.Status != http.StatusOK || len(r.Events) != 1 || !strings.Contains(r.Events[0].Data, `"id":9`) {
		t.Errorf("resume the last call's stream: %d %v %s, want its answer replayed", r.Status, r.Events, r.Body)
	}
}

package gateway_test

import (
	"net/http"
	"testing"
)

// resources/read, resources/subscribe and resources/unsubscribe require
// params.uri (MCP schema): a request without it (no params, no member,
// null or "") is -32602 answering its id, on /mcp (HTTP 200) and on
// legacy /messages (400, refused on the POST like the other invalid
// params). mcp-go looked the empty URI up and answered -32002 "handler
// not found for resource URI ”", a missing resource rather than an
// invalid request. An unknown URI is still -32002, and a widget reads.
func TestResourceRequestsWithoutURI(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	const want = "invalid params: params.uri is required: the URI of a resource (resources/list names them)"
	_, path := g.openLegacy(t, tok)
	for _, method := range []string{"resources/read", "resources/subscribe", "resources/unsubscribe"} {
		for _, params := range []string{``, `,"params":{}`, `,"params":{"uri":null}`, `,"params":{"uri":""}`, `,"params":{"_meta":{"progressToken":null}}`} {
			body := `{"jsonrpc":"2.0","id":"r-1","method":"` + method + `"` + params + `}`
			r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: body})
			if m := r.rpc(t); r.Status != http.StatusOK || m.Error == nil || m.Error.Code != -32602 || m.Error.Message != want || string(m.ID) != `"r-1"` {
				t.Errorf("/mcp %s: %d %s, want -32602 %q", body, r.Status, r.Body, want)
			}
			r = g.do(t, req{Method: "POST", Path: path, Token: tok, Body: body})
			if m := r.rpc(t); r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32602 || m.Error.Message != want || string(m.ID) != `"r-1"` {
				t.Errorf("/messages %s: %d %s, want 400 -32602 %q", body, r.Status, r.Body, want)
			}
		}
	}
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version,
		Body: `{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"ui://widget/nope-v1.html"}}`})
	if m := r.rpc(t); m.Error == nil || m.Error.Code != -32002 {
		t.Errorf("unknown URI: %d %s, want -32002", r.Status, r.Body)
	}
	var read struct {
		Contents []struct{ URI, MimeType, Text string } `json:"contents"`
	}
	g.rpc(t, tok, sid, "resources/read", map[string]any{"uri": "ui://widget/health-status-card-v1.html"}, &read)
	if len(read.Contents) != 1 || read.Contents[0].MimeType != "text/html;profile=mcp-app" || read.Contents[0].Text == "" {
		t.Errorf("widget read: %+v", read)
	}
	g.rpc(t, tok, sid, "resources/subscribe", map[string]any{"uri": "ui://widget/health-status-card-v1.html"}, nil)
	g.rpc(t, tok, sid, "resources/unsubscribe", map[string]any{"uri": "ui://widget/health-status-card-v1.html"}, nil)
}

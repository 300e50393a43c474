package gateway_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// sessionGone reports whether sid is answered 404, as an ended session.
func (g *gw) sessionGone(t *testing.T, tok, sid string) bool {
	t.Helper()
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: call("tools/list", nil)})
	return r.Status == http.StatusNotFound
}

// An initialize that carries Mcp-Session-Id is served as a new session
// (Streamable HTTP, "Session Management" does not ask a server to refuse
// it; mcp-go's server serves it so, and its client takes a 4xx on
// initialize for a legacy SSE server). The caller's own live session it
// names is ended first, so re-initializing takes no more places of
// SESSION_LIMIT_PER_SUBJECT; an unknown id or another subject's is
// ignored, and that session stays.
func TestInitializeWithSessionStartsANewSession(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("SESSION_LIMIT_PER_SUBJECT", "2")
	tok := f.Token("user-1", allScopes)
	other := f.Token("user-2", allScopes)
	otherSid := g.initialize(t, other)
	sid := g.initialize(t, tok)
	init := call("initialize", map[string]any{"protocolVersion": version, "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "again", "version": "1"}})

	// Three re-initializes in the caller's own session with a limit of 2:
	// each replaces the session it names.
	for _, v := range []string{"", version, version} {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: v, Body: init})
		next := r.Header.Get("Mcp-Session-Id")
		if r.Status != http.StatusOK || next == "" || next == sid {
			t.Fatalf("initialize in a live session (version header %q): %d %v %s", v, r.Status, r.Header, r.Body)
		}
		if m := r.rpc(t); m.Error != nil || m.Result == nil {
			t.Fatalf("initialize in a live session: %+v", m)
		}
		if !g.sessionGone(t, tok, sid) {
			t.Errorf("the session initialize named (%q) is still live", v)
		}
		sid = next
	}
	var tools struct {
		Tools []any `json:"tools"`
	}
	g.rpc(t, tok, sid, "tools/list", nil, &tools)
	if len(tools.Tools) == 0 {
		t.Error("tools/list in the new session: no tools")
	}

	// Unknown and another subject's session ids: a new session, nothing ended.
	for name, s := range map[string]string{"unknown session": "x" + sid, "another subject's session": otherSid} {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: s, Body: init})
		next := r.Header.Get("Mcp-Session-Id")
		if r.Status != http.StatusOK || next == "" || next == s {
			t.Fatalf("%s: %d %v %s", name, r.Status, r.Header, r.Body)
		}
		// The limit (2) counts the caller's sessions: end this one again.
		if d := g.do(t, req{Method: "DELETE", Path: "/mcp", Token: tok, Session: next, Version: version}); d.Status != http.StatusOK {
			t.Errorf("%s: DELETE: %d %s", name, d.Status, d.Body)
		}
	}
	g.rpc(t, other, otherSid, "tools/list", nil, &tools)
	g.rpc(t, tok, sid, "tools/list", nil, &tools)

	// Nothing accumulated: the subject holds one session and has one place left.
	g.initialize(t, tok)
	if r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: init}); r.Status != http.StatusTooManyRequests {
		t.Errorf("third session: %d %s", r.Status, r.Body)
	}
}

// mcp-go's own client initializes again on the same client, and with
// WithSession of a live or a stale session id: each is served, in a new
// session, and the caller's named live session is ended.
func TestMCPGoClientInitializesWithSession(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("SESSION_LIMIT_PER_SUBJECT", "2")
	// Each case has its own subject, so that one's leftovers do not fill
	// another's SESSION_LIMIT_PER_SUBJECT.
	var tok string
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	initialize := func(t *testing.T, c *client.Client) string {
		t.Helper()
		init := mcp.InitializeRequest{}
		init.Params.ClientInfo = mcp.Implementation{Name: "mcp-go-client", Version: "1"}
		init.Params.ProtocolVersion = mcp.LATEST_LEGACY_PROTOCOL_VERSION
		if _, err := c.Initialize(ctx, init); err != nil {
			t.Fatalf("initialize: %v", err)
		}
		if _, err := c.ListTools(ctx, mcp.ListToolsRequest{}); err != nil {
			t.Fatalf("tools/list: %v", err)
		}
		return c.GetTransport().(*transport.StreamableHTTP).GetSessionId()
	}
	start := func(t *testing.T, opts ...transport.StreamableHTTPCOption) *client.Client {
		t.Helper()
		auth := map[string]string{"Authorization": "Bearer " + tok}
		c, err := client.NewStreamableHttpClient(g.URL+"/mcp", append([]transport.StreamableHTTPCOption{transport.WithHTTPHeaders(auth)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}

	// end ends the client's session (the mcp-go client's Close sends its
	// DELETE without the configured headers, so without the token).
	end := func(t *testing.T, c *client.Client) {
		t.Helper()
		sid := c.GetTransport().(*transport.StreamableHTTP).GetSessionId()
		if r := g.do(t, req{Method: "DELETE", Path: "/mcp", Token: tok, Session: sid, Version: version}); r.Status != http.StatusOK {
			t.Errorf("DELETE: %d %s", r.Status, r.Body)
		}
	}

	t.Run("second Initialize", func(t *testing.T) {
		tok = f.Token("user-1", allScopes)
		c := start(t)
		first := initialize(t, c)
		for range 2 {
			next := initialize(t, c)
			if next == "" || next == first || !g.sessionGone(t, tok, first) {
				t.Errorf("second Initialize: session %q after %q", next, first)
			}
			first = next
		}
		end(t, c)
	})
	t.Run("WithSession live", func(t *testing.T) {
		tok = f.Token("user-2", allScopes)
		live := g.initialize(t, tok)
		c := start(t, transport.WithSession(live))
		if next := initialize(t, c); next == "" || next == live || !g.sessionGone(t, tok, live) {
			t.Errorf("WithSession(live): session %q, named %q", next, live)
		}
		end(t, c)
	})
	t.Run("WithSession stale", func(t *testing.T) {
		tok = f.Token("user-3", allScopes)
		stale := g.initialize(t, tok)
		if r := g.do(t, req{Method: "DELETE", Path: "/mcp", Token: tok, Session: stale, Version: version}); r.Status != http.StatusOK {
			t.Fatalf("DELETE: %d %s", r.Status, r.Body)
		}
		c := start(t, transport.WithSession(stale))
		if next := initialize(t, c); next == "" || next == stale {
			t.Errorf("WithSession(stale): session %q", next)
		}
		end(t, c)
	})
}

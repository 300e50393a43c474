package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// stream is an open SSE response read event by event.
type stream struct {
	t      *testing.T
	res    *http.Response
	events chan sseEvent
	cancel context.CancelFunc
}

// openStream GETs path with the headers and starts reading events.
func (g *gw) openStream(t *testing.T, path, token string, header map[string]string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	hr, _ := http.NewRequestWithContext(ctx, "GET", g.URL+path, nil)
	hr.Header.Set("Accept", "text/event-stream")
	hr.Header.Set("Authorization", "Bearer "+token)
	for k, v := range header {
		hr.Header.Set(k, v)
	}
	res, err := (&http.Client{}).Do(hr)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", path, err)
	}
	if res.StatusCode != 200 {
		cancel()
		res.Body.Close()
		t.Fatalf("GET %s: %d", path, res.StatusCode)
	}
	s := &stream{t: t, res: res, events: make(chan sseEvent, 64), cancel: cancel}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var cur sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if cur.Data != "" {
					s.events <- cur
				}
				cur = sseEvent{}
			case strings.HasPrefix(line, "id:"):
				cur.ID = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
			case strings.HasPrefix(line, "data:"):
				cur.Data += strings.TrimSpace(strings.TrimPrefix(line, "data:"))
			}
		}
	}()
	t.Cleanup(s.Close)
	return s
}

func (s *stream) Close() { s.cancel(); s.res.Body.Close() }

// next returns the next event that satisfies keep (pings are skipped by
// callers' predicates), failing after a generous timeout.
func (s *stream) next(keep func(sseEvent) bool) sseEvent {
	s.t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case e, ok := <-s.events:
			if !ok {
				s.t.Fatal("stream ended")
			}
			if keep(e) {
				return e
			}
		case <-timeout:
			s.t.Fatal("no event within 30s")
		}
	}
}

// ended reports whether the stream closes within the timeout.
func (s *stream) ended(timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

// response matches the JSON-RPC response to the request with id.
func response(id any) func(sseEvent) bool {
	want, _ := json.Marshal(id)
	return func(e sseEvent) bool {
		var m rpcMessage
		return json.Unmarshal([]byte(e.Data), &m) == nil && string(m.ID) == string(want) && (m.Result != nil || m.Error != nil)
	}
}

// endpoint opens a legacy SSE session and returns the message path.
func (s *stream) endpoint() string {
	s.t.Helper()
	e := s.next(func(e sseEvent) bool { return strings.HasPrefix(e.Data, "/messages?sessionId=") })
	return e.Data
}

// legacyInit runs the 2024-11-05 handshake over /messages on g.
func legacyInit(t *testing.T, s *stream, g *gw, token, path string) {
	t.Helper()
	init := call("initialize", map[string]any{"protocolVersion": "2024-11-05", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "legacy", "version": "1"}})
	if r := g.do(t, req{Method: "POST", Path: path, Token: token, Body: init}); r.Status != http.StatusAccepted {
		t.Fatalf("initialize over /messages: %d %s", r.Status, r.Body)
	}
	s.next(response(init["id"]))
	if r := g.do(t, req{Method: "POST", Path: path, Token: token, Body: map[string]any{"jsonrpc": "2.0", "method": "notifications/initialized"}}); r.Status != http.StatusAccepted {
		t.Fatalf("initialized: %d", r.Status)
	}
}

// openLegacy opens a legacy (2024-11-05 HTTP+SSE) session on g with
// token: its stream, whose endpoint event gives path (the session's
// /messages path), initialized there (legacyInit).
func (g *gw) openLegacy(t *testing.T, token string) (s *stream, path string) {
	t.Helper()
	s = g.openStream(t, "/sse", token, nil)
	path = s.endpoint()
	legacyInit(t, s, g, token, path)
	return s, path
}

// bothTransports opens what the progress tests call through: two replicas
// serving the conformance fixtures (test_tool_with_progress), a Streamable
// HTTP session (sid) on g, and a legacy stream s on g, initialized, with
// its message path; relay is the other replica, which relays a message
// posted to it to s.
func bothTransports(t *testing.T) (g, relay *gw, tok, sid string, s *stream, path string) {
	t.Helper()
	f := newFleet(t)
	g, relay = f.Gateway("MCP_CONFORMANCE_FIXTURES", "true"), f.Gateway("MCP_CONFORMANCE_FIXTURES", "true")
	tok = f.Token("user-1", allScopes)
	sid = g.initialize(t, tok)
	s, path = g.openLegacy(t, tok)
	return g, relay, tok, sid, s, path
}

// Legacy HTTP+SSE on one gateway: every tool answers on the stream.
func TestLegacySSE(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-7", allScopes)
	s, path := g.openLegacy(t, tok)
	for _, rt := range coreTools(t) {
		c := call("tools/call", map[string]any{"name": rt.Name, "arguments": map[string]any{}})
		if r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: c}); r.Status != http.StatusAccepted {
			t.Fatalf("%s: %d %s", rt.Name, r.Status, r.Body)
		}
		e := s.next(response(c["id"]))
		if !strings.Contains(e.Data, `"structuredContent"`) || strings.Contains(e.Data, `"isError":true`) {
			t.Errorf("%s over SSE: %s", rt.Name, e.Data)
		}
	}
	// Refusals on /messages.
	other := f.Token("user-8", allScopes)
	otherClient := f.Issuer.Mint(t, tokentest.Token{Subject: "user-7", ClientID: "other-app", Audience: resource, Scope: allScopes})
	for name, c := range map[string]struct {
		r      req
		status int
	}{
		"no sessionId":                       {req{Method: "POST", Path: "/messages", Token: tok, Body: call("ping", nil)}, 400},
		"unknown session":                    {req{Method: "POST", Path: path + "x", Token: tok, Body: call("ping", nil)}, 404},
		"another subject":                    {req{Method: "POST", Path: path, Token: other, Body: call("ping", nil)}, 404},
		"another client of the same subject": {req{Method: "POST", Path: path, Token: otherClient, Body: call("ping", nil)}, 404},
		"GET on /messages":                   {req{Method: "GET", Path: path, Token: tok}, 405},
	} {
		if r := g.do(t, c.r); r.Status != c.status {
			t.Errorf("%s: %d %s, want %d", name, r.Status, r.Body, c.status)
		}
	}
	// A Streamable HTTP request cannot use the legacy session either.
	sid := strings.TrimPrefix(path, "/messages?sessionId=")
	if r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: call("ping", nil)}); r.Status != 404 {
		t.Errorf("legacy session on /mcp: %d", r.Status)
	}
	// Closing the stream ends the session.
	s.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: call("ping", nil)})
		if r.Status == 404 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session still usable after its stream closed: %d", r.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

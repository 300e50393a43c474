package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

// GET /mcp opens the server's event stream, which is all it ever answers:
// a GET whose Accept is present and admits no event stream is 406 with a
// JSON-RPC error (id null), as the TypeScript SDK's server answers it
// (Streamable HTTP has the client list text/event-stream); the gateway
// answered an SSE stream the client had said it could not take. Without
// Accept, or with one admitting text/event-stream (a wildcard included),
// the stream opens.
func TestGetStreamAccept(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	// get opens a GET stream with this Accept ("" for none) and closes it
	// once the answer's head (or its whole body, if not a stream) is read.
	get := func(accept string) (int, string, []byte) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		hr, _ := http.NewRequestWithContext(ctx, "GET", g.URL+"/mcp", nil)
		hr.Header.Set("Authorization", "Bearer "+tok)
		hr.Header.Set("Mcp-Session-Id", sid)
		hr.Header.Set("Mcp-Protocol-Version", version)
		if accept != "" {
			hr.Header.Set("Accept", accept)
		}
		res, err := httpClient.Do(hr)
		if err != nil {
			t.Fatalf("GET Accept %q: %v", accept, err)
		}
		defer res.Body.Close()
		ct := res.Header.Get("Content-Type")
		if ct == "text/event-stream" {
			return res.StatusCode, ct, nil
		}
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, ct, b
	}
	for _, accept := range []string{
		"application/json",
		"text/html, application/json",
		"text/event-stream;q=0, application/json",
		"*/*;q=0",
	} {
		code, ct, body := get(accept)
		var m rpcMessage
		if code != http.StatusNotAcceptable || ct != "application/json" || json.Unmarshal(body, &m) != nil ||
			string(m.ID) != "null" || m.Error == nil || m.Error.Code != -32600 {
			t.Errorf("GET Accept %q: %d %q %s, want 406 and a JSON-RPC error with id null", accept, code, ct, body)
		}
	}
	for _, accept := range []string{"", "text/event-stream", "application/json, text/event-stream", "*/*", "text/*", "TEXT/Event-Stream;q=0.5"} {
		if code, ct, body := get(accept); code != http.StatusOK || ct != "text/event-stream" {
			t.Errorf("GET Accept %q: %d %q %s, want the event stream", accept, code, ct, body)
		}
	}
	// The session is untouched by the refusals.
	g.rpc(t, tok, sid, "ping", nil, nil)
}

// GET /sse (2024-11-05) is refused alike, before its session is made: a
// client whose Accept admits no event stream got the stream and a session
// (a place of SESSION_LIMIT_PER_SUBJECT, here 1) it could not use.
func TestLegacyStreamAccept(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("SESSION_LIMIT_PER_SUBJECT", "1")
	tok := f.Token("user-1", allScopes)
	for _, accept := range []string{"application/json", "text/html", "text/event-stream;q=0"} {
		r := g.do(t, req{Method: "GET", Path: "/sse", Token: tok, Header: map[string]string{"Accept": accept}})
		var m rpcMessage
		if r.Status != http.StatusNotAcceptable || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(r.Body, &m) != nil ||
			string(m.ID) != "null" || m.Error == nil || m.Error.Code != -32600 {
			t.Errorf("GET /sse Accept %q: %d %q %s, want 406 and a JSON-RPC error with id null", accept, r.Status, r.Header.Get("Content-Type"), r.Body)
		}
	}
	// The one place of the limit is free: the stream opens and works.
	g.openLegacy(t, tok)
}

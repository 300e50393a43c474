package gateway

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// Every answer on a legacy stream gives back its own request's place in
// the session's backlog, and only that one. After a mix of requests —
// refused on their POST (not JSON, wrong-typed params, a second
// initialize, an unknown tool), a client's response (dropped), answered
// (the same id four times, odd ids, plain ids, posted to the stream's
// replica and relayed from another, mcp-go's error for an unknown method),
// a cancellation, and a tool whose result cannot be encoded — the backlog
// holds no place, no request bytes, no result bytes and no token. The
// tool's unencodable result is answered with an error carrying its id:
// mcp-go answered it "internal error" with a null id, which gave back no
// place of its own (the backlog gave back any one waiting request's
// instead, and that request's own place, or this one's, was held until the
// stream ended).
func TestLegacyPlacesAreAllGivenBack(t *testing.T) {
	r := testharness.StartRedis(t)
	iss := tokentest.Start(t, "http://localhost:4000")
	a, aURL := replica(t, r, iss)
	b, bURL := replica(t, r, iss)
	// On both replicas: b, which relays the call to a, refuses a tool it
	// does not serve (toolNameError).
	for _, g := range []*Gateway{a, b} {
		g.mcp.AddTool(mcp.NewTool("nan.result"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{mcp.NewTextContent("x")}, StructuredContent: map[string]any{"v": math.NaN()}}, nil
		})
	}
	tok := iss.Mint(t, tokentest.Token{Subject: "ada", ClientID: "c1", Audience: testResource, Scope: "openid"})
	s := openAuthStream(t, aURL, "GET /sse", tok)
	v, ok := a.backlogs.Load(strings.TrimPrefix(s.messages, "/messages?sessionId="))
	if !ok {
		t.Fatalf("no backlog for %s", s.messages)
	}
	bl := v.(*backlog)

	refused := []string{
		`{"jsonrpc":"2.0","id":"bad","method":"ping"`,
		`{"jsonrpc":"2.0","id":"typed","method":"tools/call","params":{"name":5}}`,
		`{"jsonrpc":"2.0","id":"again","method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`,
		`{"jsonrpc":"2.0","id":"nope","method":"tools/call","params":{"name":"no.such.tool","arguments":{}}}`,
	}
	want := map[string]int{} // answers to come, by id as sent
	for i, url := range []string{aURL, bURL} {
		for _, body := range refused {
			if st := postMessages(t, url+s.messages, tok, body); st != http.StatusBadRequest {
				t.Fatalf("%s to replica %d: %d, want 400", body, i, st)
			}
		}
		if st := postMessages(t, url+s.messages, tok, `{"jsonrpc":"2.0","id":"resp","result":{}}`); st != http.StatusAccepted {
			t.Fatalf("a response to replica %d: %d", i, st)
		}
		ids := append([]string{`"same"`, `"same"`, `7`}, oddIDs(i)[:3]...)
		for _, id := range ids {
			if st := postMessages(t, url+s.messages, tok, `{"jsonrpc":"2.0","id":`+id+`,"method":"ping"}`); st != http.StatusAccepted {
				t.Fatalf("ping %s to replica %d: %d", id, i, st)
			}
			want[id]++
		}
		for _, m := range []string{
			`{"jsonrpc":"2.0","id":"nan-%d","method":"tools/call","params":{"name":"nan.result","arguments":{}}}`,
			`{"jsonrpc":"2.0","id":"unknown-%d","method":"no/such/method"}`,
		} {
			body := strings.Replace(m, "%d", string(rune('0'+i)), 1)
			if st := postMessages(t, url+s.messages, tok, body); st != http.StatusAccepted {
				t.Fatalf("%s to replica %d: %d", body, i, st)
			}
			var msg struct{ ID json.RawMessage }
			_ = json.Unmarshal([]byte(body), &msg)
			want[string(msg.ID)]++
		}
		if st := postMessages(t, url+s.messages, tok, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"same"}}`); st != http.StatusAccepted {
			t.Fatalf("cancellation to replica %d: %d", i, st)
		}
	}
	for n := len(want); n > 0; {
		data := s.next(t, `"id"`)
		var m struct {
			ID    json.RawMessage `json:"id"`
			Error *struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &m); err != nil {
			t.Fatalf("answer %s: %v", data, err)
		}
		if want[string(m.ID)] == 0 {
			t.Fatalf("answer with id %s, not one waited for: %s", m.ID, data)
		}
		if strings.HasPrefix(string(m.ID), `"nan-`) && (m.Error == nil || m.Error.Code != mcp.INTERNAL_ERROR || !strings.Contains(m.Error.Message, "could not be encoded")) {
			t.Errorf("unencodable result: %s, want -32603 saying it could not be encoded", data)
		}
		if want[string(m.ID)]--; want[string(m.ID)] == 0 {
			n--
		}
	}
	if !eventually(func() bool {
		bl.mu.Lock()
		defer bl.mu.Unlock()
		return bl.n == 0 && bl.bytes == 0 && bl.results == 0 && len(bl.waiting) == 0
	}) {
		bl.mu.Lock()
		t.Errorf("backlog after every answer: %d places, %d request bytes, %d result bytes, %d waiting; want all 0", bl.n, bl.bytes, bl.results, len(bl.waiting))
		bl.mu.Unlock()
	}
	for name, g := range map[string]*Gateway{"stream's replica": a, "relaying replica": b} {
		if !eventually(func() bool { return g.ids.len() == 0 }) {
			t.Errorf("%s: exactIDs holds %d tokens after every answer was written, want 0", name, g.ids.len())
		}
	}
}

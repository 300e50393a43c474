package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// progressOrderRounds bounds the ordering tests below by count (and each
// by time: they stop early, having passed, after progressOrderTime).
const (
	progressOrderRounds = 150
	progressOrderTime   = 40 * time.Second
)

// A tools/call's notifications/progress reach the client before the
// call's answer, on the legacy stream (posted to the stream's replica and
// relayed from another) and on a Streamable HTTP POST answered as an
// event stream: MCP (basic/utilities/progress) lets a notification name
// only a request still in progress, and a client that saw the answer drops
// or refuses a later one. mcp-go's legacy transport queued notifications
// through a goroutine of their own and answers directly, so a progress
// notification could follow its answer.
func TestProgressPrecedesItsAnswer(t *testing.T) {
	g, relay, tok, sid, s, path := bothTransports(t)

	deadline := time.Now().Add(progressOrderTime)
	for i := 0; i < progressOrderRounds && time.Now().Before(deadline); i++ {
		token := `"order-` + itoa(i) + `"`
		// /messages: to the stream's replica, and every fourth relayed.
		to, id := g, 1000+i
		if i%4 == 3 {
			to = relay
		}
		// Every tenth call a conformance fixture's, which sends three
		// progress notifications.
		tool := "health.check"
		if i%10 == 9 {
			tool = "test_tool_with_progress"
		}
		body := `{"jsonrpc":"2.0","id":` + itoa(id) + `,"method":"tools/call","params":{"name":"` + tool + `","arguments":{},"_meta":{"progressToken":` + token + `}}}`
		if r := to.do(t, req{Method: "POST", Path: path, Token: tok, Body: body}); r.Status != http.StatusAccepted {
			t.Fatalf("/messages %d: %d %s", i, r.Status, r.Body)
		}
		progressed := 0
		for {
			e := s.next(func(e sseEvent) bool { return strings.HasPrefix(e.Data, "{") })
			if strings.Contains(e.Data, `"notifications/progress"`) {
				if !strings.Contains(e.Data, token) {
					t.Fatalf("/messages %d: a progress notification of another call: %s", i, e.Data)
				}
				progressed++
				continue
			}
			if response(id)(e) {
				break
			}
		}
		want := map[bool]int{true: 3, false: 1}[tool == "test_tool_with_progress"]
		if progressed != want {
			t.Fatalf("/messages %d (%s): %d progress notifications before the answer, want %d (round %d of %d)", i, tool, progressed, want, i+1, progressOrderRounds)
		}

		// /mcp: the POST's event stream ends with the answer.
		body = `{"jsonrpc":"2.0","id":` + itoa(id) + `,"method":"tools/call","params":{"name":"` + tool + `","arguments":{},"_meta":{"progressToken":` + token + `}}}`
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: body})
		var datas []string
		for _, e := range r.Events {
			datas = append(datas, e.Data)
		}
		got, answer := progressTokens(t, datas)
		if r.Status != http.StatusOK || len(got) != want || answer.Result == nil {
			t.Fatalf("/mcp %d: %d, progress tokens %v, answer %+v %s", i, r.Status, got, answer, r.Body)
		}
		if last := r.Events[len(r.Events)-1]; !response(id)(last) {
			t.Fatalf("/mcp %d: the answer is not the stream's last event: %+v", i, r.Events)
		}
	}
}

// So on a stateless (2026-07-28) POST, whose event stream mcp-go does not
// record for resumption: its forwarder of notifications took one off the
// request's channel, found the answer written, and dropped it — a
// registry tool's only progress notification, or a conformance fixture's
// last (the fixture paused before answering to hide that). Every progress
// notification comes, in the order sent, before the answer.
func TestStatelessProgressPrecedesItsAnswer(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("MCP_CONFORMANCE_FIXTURES", "true")
	tok := f.Token("user-1", allScopes)
	const meta = `"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"}`
	deadline := time.Now().Add(progressOrderTime)
	for i := 0; i < progressOrderRounds && time.Now().Before(deadline); i++ {
		tool, want := "health.check", "0"
		if i%2 == 1 {
			tool, want = "test_tool_with_progress", "0,50,100"
		}
		token := `"stateless-` + itoa(i) + `"`
		body := `{"jsonrpc":"2.0","id":` + itoa(i) + `,"method":"tools/call","params":{"name":"` + tool + `","arguments":{},"_meta":{"progressToken":` + token + `,` + meta + `}}}`
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: "2026-07-28",
			Header: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": tool}, Body: body})
		progress := progressValues(t, i+1, token, r.Events)
		n := len(r.Events)
		if r.Status != http.StatusOK || strings.Join(progress, ",") != want || n != len(progress)+1 || !response(i)(r.Events[n-1]) {
			t.Fatalf("round %d of %d (%s): %d, progress %v, want %s and then the answer: %+v %s", i+1, progressOrderRounds, tool, r.Status, progress, want, r.Events, r.Body)
		}
	}
}

// So without a session (Gateway.sessionless): a tools/call with a progress
// token goes to mcp-go's stateless transport, which keeps no event store,
// and lost its last progress notification to its answer — a conformance
// fixture's 100 of 0, 50, 100, alone as well, where a session got all 3
// (mark3labs/mcp-go#969). Every progress notification comes, in the order
// sent, before the answer, at each version served without a session.
func TestSessionlessProgressPrecedesItsAnswer(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("MCP_CONFORMANCE_FIXTURES", "true")
	tok := f.Token("user-1", allScopes)
	versions := []string{"", "2025-03-26", "2025-06-18", "2025-11-25"}
	deadline := time.Now().Add(progressOrderTime)
	for i := 0; i < progressOrderRounds && time.Now().Before(deadline); i++ {
		tool, want := "health.check", "0"
		if i%2 == 1 {
			tool, want = "test_tool_with_progress", "0,50,100"
		}
		token := `"sessionless-` + itoa(i) + `"`
		body := `{"jsonrpc":"2.0","id":` + itoa(i) + `,"method":"tools/call","params":{"name":"` + tool + `","arguments":{},"_meta":{"progressToken":` + token + `}}}`
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: versions[i/2%len(versions)], Body: body})
		progress := progressValues(t, i+1, token, r.Events)
		n := len(r.Events)
		if r.Status != http.StatusOK || r.Header.Get("Mcp-Session-Id") != "" || strings.Join(progress, ",") != want || n != len(progress)+1 || !response(i)(r.Events[n-1]) {
			t.Fatalf("round %d of %d (%s): %d, progress %v, want %s and then the answer: %+v %s", i+1, progressOrderRounds, tool, r.Status, progress, want, r.Events, r.Body)
		}
	}
}

// progressValues is the progress member, as written, of each
// notifications/progress among events, in order; round's test fails on one
// that names a progress token other than token.
func progressValues(t *testing.T, round int, token string, events []sseEvent) []string {
	t.Helper()
	var progress []string
	for _, e := range events {
		var m rpcMessage
		if json.Unmarshal([]byte(e.Data), &m) != nil || m.Method != "notifications/progress" {
			continue
		}
		var p struct {
			Token    json.RawMessage `json:"progressToken"`
			Progress json.RawMessage `json:"progress"`
		}
		_ = json.Unmarshal(m.Params, &p)
		if string(p.Token) != token {
			t.Fatalf("round %d: a progress notification of another call: %s", round, e.Data)
		}
		progress = append(progress, string(p.Progress))
	}
	return progress
}

package gateway_test

import (
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

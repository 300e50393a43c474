package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// oddProgressTokens are progress tokens mcp-go would not echo byte for
// byte: it decodes _meta.progressToken into an any (float64 for a
// number), so 9007199254740993 (2^53+1) came back as 9007199254740992,
// 1e400 (beyond float64's range) failed the whole call, and a string was
// re-encoded. MCP (basic/utilities/progress) has the notification carry
// the request's token; each is echoed as written.
var oddProgressTokens = []string{
	`9007199254740993`,
	`12345678901234567890123456789`,
	`1e400`,
	`-0`,
	`1.50`,
	`"p-<1>&amp;"`,
	`"tollgate-progress-token:1"`, // the gateway's own wrapping, sent by a client
	`"\u00e9\u003c"`,              // the same string comes back: "\u00e9<" (echoedToken)
	`7`,
}

// echoedToken is token as the gateway writes it back: byte for byte, but
// for encoding/json's HTML escapes, which the gateway writes as the
// characters in everything it sends (unescapingWriter).
func echoedToken(token string) string {
	return strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(token)
}

// progressTokens returns the raw progressToken of every progress
// notification among the events' messages, and the response's.
func progressTokens(t *testing.T, datas []string) (tokens []string, answer rpcMessage) {
	t.Helper()
	for _, d := range datas {
		var m rpcMessage
		if err := json.Unmarshal([]byte(d), &m); err != nil {
			t.Fatalf("event %s: %v", d, err)
		}
		switch {
		case m.Method == "notifications/progress":
			var p struct {
				ProgressToken json.RawMessage `json:"progressToken"`
			}
			if err := json.Unmarshal(m.Params, &p); err != nil {
				t.Fatalf("progress %s: %v", d, err)
			}
			tokens = append(tokens, string(p.ProgressToken))
		case m.Result != nil || m.Error != nil:
			answer = m
		}
	}
	return tokens, answer
}

// A tools/call's progress notifications carry its _meta.progressToken as
// the request wrote it, over Streamable HTTP (a session's POST answered
// as an event stream: a registry tool's and a conformance fixture's, live
// and replayed after Last-Event-ID) and over the legacy SSE transport
// (posted to the stream's replica, and to another, which relays it).
func TestProgressTokensAreEchoedAsWritten(t *testing.T) {
	g, relay, tok, sid, s, path := bothTransports(t)

	for i, token := range oddProgressTokens {
		for _, tool := range []string{"health.check", "test_tool_with_progress"} {
			body := `{"jsonrpc":"2.0","id":` + itoa(100+i) + `,"method":"tools/call","params":{"name":"` + tool + `","arguments":{},"_meta":{"progressToken":` + token + `}}}`
			r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: body})
			var datas []string
			for _, e := range r.Events {
				datas = append(datas, e.Data)
			}
			got, answer := progressTokens(t, datas)
			if r.Status != http.StatusOK || len(got) == 0 || answer.Result == nil {
				t.Errorf("/mcp %s, token %s: %d, progress tokens %v, answer %+v %s", tool, token, r.Status, got, answer, r.Body)
				continue
			}
			for _, p := range got {
				if p != echoedToken(token) {
					t.Errorf("/mcp %s: progress token %s came back as %s", tool, token, p)
				}
			}
			// Replayed after the first event (Last-Event-ID): as live.
			if r.Events[0].ID == "" {
				t.Errorf("/mcp %s, token %s: the first event has no id: %+v", tool, token, r.Events)
			} else if resumed := g.do(t, req{Method: "GET", Path: "/mcp", Token: tok, Session: sid, Version: version,
				Header: map[string]string{"Last-Event-ID": r.Events[0].ID}}); len(resumed.Events) != len(r.Events)-1 {
				t.Errorf("/mcp %s, token %s, resumed: %d %+v", tool, token, resumed.Status, resumed.Events)
			} else {
				for j, e := range resumed.Events {
					if e != r.Events[j+1] {
						t.Errorf("/mcp %s, token %s, resumed event %d: %+v, want the live %+v", tool, token, j+1, e, r.Events[j+1])
					}
				}
			}
			if tool == "test_tool_with_progress" {
				// Its result's text is the token it was given: a string's
				// value, a number as written.
				want := token
				if strings.HasPrefix(token, `"`) {
					_ = json.Unmarshal([]byte(token), &want)
				}
				var res struct {
					Content []struct {
						Text string `json:"text"`
					} `json:"content"`
				}
				if json.Unmarshal(answer.Result, &res) != nil || len(res.Content) != 1 || res.Content[0].Text != want {
					t.Errorf("/mcp %s, token %s: result %s, want the text %s", tool, token, answer.Result, want)
				}
			}
		}

		// /messages, posted to the stream's replica and relayed from
		// another (wrapped where it was posted).
		for j, to := range []*gw{g, relay} {
			id := 200 + 2*i + j
			body := `{"jsonrpc":"2.0","id":` + itoa(id) + `,"method":"tools/call","params":{"name":"health.check","arguments":{},"_meta":{"progressToken":` + token + `}}}`
			if r := to.do(t, req{Method: "POST", Path: path, Token: tok, Body: body}); r.Status != http.StatusAccepted {
				t.Fatalf("/messages (%d), token %s: %d %s", j, token, r.Status, r.Body)
			}
			// Until the answer: the call's progress notification comes
			// before it (TestProgressPrecedesItsAnswer).
			var datas []string
			for answered := false; !answered; {
				e := s.next(func(e sseEvent) bool { return strings.HasPrefix(e.Data, "{") })
				datas = append(datas, e.Data)
				answered = response(id)(e)
			}
			got, answer := progressTokens(t, datas)
			if len(got) == 0 || answer.Result == nil {
				t.Fatalf("/messages (%d), token %s: progress tokens %v before the answer %+v", j, token, got, answer)
			}
			for _, p := range got {
				if p != echoedToken(token) {
					t.Errorf("/messages (%d): progress token %s came back as %s", j, token, p)
				}
			}
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/tollgate/tollgate/services/mcp-gateway/internal/gateway"
	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// timestamps are the one field of these answers that differs between two
// calls (health.check's time of the check).
var timestamps = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)

// answer is what a client sees of a POST's answer: status, the headers
// that vary with the path taken, and the body (the events' data of an SSE
// answer), timestamps masked.
func answer(r *resp) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d\n", r.Status)
	for _, h := range []string{"Content-Type", "WWW-Authenticate", "X-Accel-Buffering", "Cache-Control", "Mcp-Session-Id"} {
		fmt.Fprintf(&b, "%s: %q\n", h, r.Header.Values(h))
	}
	b.Write(r.Body)
	for _, e := range r.Events {
		b.WriteString("event: " + e.Data + "\n")
	}
	return timestamps.ReplaceAllString(b.String(), "<time>")
}

// TestToolCallsAnswerAsHandleMessage: through real HTTP, capability-core
// and a backend over gRPC and Redis, each tools/call of the table gets,
// byte for byte (the time of a health check masked), the answer it got when
// every call went through mcp-go's HandleMessage — successes, card results
// with their _meta, tool errors, unknown tools, bad arguments, missing
// scopes with their challenge, ids of every kind, both tool-name styles —
// and the ones callTool should answer are answered by it.
func TestToolCallsAnswerAsHandleMessage(t *testing.T) {
	f := newFleet(t)
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	backends := "capability-core=" + f.CoreAddr + ",notes=" + notes.Addr
	dotted := f.Gateway("CAPABILITY_BACKENDS", backends)
	underscore := f.Gateway("CAPABILITY_BACKENDS", backends, "MCP_TOOL_NAME_STYLE", "underscore")
	full := f.Token("user-1", allScopes+" notes.read")
	narrow := f.Token("user-2", "openid")
	type client struct {
		g        *gw
		tok, sid string
	}
	dfull := client{dotted, full, dotted.initialize(t, full)}
	dnarrow := client{dotted, narrow, dotted.initialize(t, narrow)}
	ufull := client{underscore, full, underscore.initialize(t, full)}
	unarrow := client{underscore, narrow, underscore.initialize(t, narrow)}
	callBody := func(id, params string) string {
		return `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":` + params + `}`
	}
	for _, c := range []struct {
		name   string
		client client
		body   string
		direct bool // answered by callTool
	}{
		{"identity.profile", dfull, callBody("1", `{"name":"identity.profile","arguments":{}}`), true},
		{"health.check", dfull, callBody("2", `{"name":"health.check"}`), true},
		{"auth.session", dfull, callBody("3", `{"name":"auth.session","arguments":null}`), true},
		{"card", dfull, callBody("4", `{"name":"identity.profile_card","arguments":{}}`), true},
		{"backend, HTML in the output", dfull, callBody("5", `{"name":"notes.list","arguments":{"text":"<b>Tom & Jerry</b> \u2028 é"}}`), true},
		{"backend, whitespace in arguments", dfull, callBody("6", `{ "name" : "notes.list", "arguments" : { "text" : "a\tb" } }`), true},
		{"_meta without a progress token", dfull, callBody("7", `{"name":"identity.profile","_meta":{"x":{"y":1}}}`), true},
		{"tool error, caller's", dfull, callBody("8", `{"name":"notes.list","arguments":{"text":"`+registrytest.FailText(codes.NotFound, "no note n1")+`"}}`), true},
		{"tool error, service's", dfull, callBody("9", `{"name":"notes.list","arguments":{"text":"`+registrytest.FailText(codes.Internal, "nil pointer")+`"}}`), true},
		{"unknown argument", dfull, callBody("10", `{"name":"health.check","arguments":{"nope":1}}`), true},
		{"argument of the wrong type", dfull, callBody("11", `{"name":"notes.list","arguments":{"text":5}}`), true},
		{"arguments not an object", dfull, callBody("12", `{"name":"notes.list","arguments":[1]}`), false},
		{"unknown tool", dfull, callBody("13", `{"name":"no.such_tool"}`), false},
		{"no tool name", dfull, callBody("14", `{}`), false},
		{"missing scope", dnarrow, callBody("15", `{"name":"identity.profile"}`), true},
		{"missing scope, card", dnarrow, callBody("16", `{"name":"identity.profile_card"}`), true},
		{"missing scope, backend", dnarrow, callBody("17", `{"name":"notes.list"}`), true},
		{"string id", dfull, callBody(`"call-18"`, `{"name":"identity.profile"}`), true},
		{"escaped string id", dfull, callBody(`"\u0041<&>\/"`, `{"name":"identity.profile"}`), true},
		{"id beyond float64's integers", dfull, callBody("9007199254740993", `{"name":"identity.profile"}`), true},
		{"id beyond float64", dfull, callBody("1e400", `{"name":"identity.profile"}`), true},
		{"fractional id", dfull, callBody("1.50", `{"name":"identity.profile"}`), true},
		{"negative id", dfull, callBody("-19", `{"name":"identity.profile"}`), true},
		{"zero id", dfull, callBody("0", `{"name":"health.check"}`), true},
		{"progress requested", dfull, callBody("20", `{"name":"identity.profile","_meta":{"progressToken":"p-20"}}`), false},
		{"underscore", ufull, callBody("21", `{"name":"identity_profile"}`), true},
		{"underscore, card", ufull, callBody("22", `{"name":"identity_profile_card"}`), true},
		{"underscore, dotted name", ufull, callBody("23", `{"name":"identity.profile"}`), false},
		{"underscore, missing scope, card", unarrow, callBody("24", `{"name":"identity_profile_card"}`), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			send := func() *resp {
				// ChatGPT's User-Agent: a missing scope is the tool result
				// on both paths (other clients get 403 before either).
				return c.client.g.do(t, req{Method: "POST", Path: "/mcp", Token: c.client.tok, Session: c.client.sid, Version: version, Header: chatGPT, Body: c.body})
			}
			restore := gateway.ViaHandleMessage(true)
			old := send()
			restore()
			before := gateway.CallToolAnswers()
			got := send()
			if direct := gateway.CallToolAnswers() > before; direct != c.direct {
				t.Errorf("answered by callTool: %v, want %v", direct, c.direct)
			}
			if got.Status != http.StatusOK {
				t.Errorf("HTTP %d", got.Status)
			}
			if a, b := answer(got), answer(old); a != b {
				t.Errorf("answer\n%s\nwas, through HandleMessage,\n%s", a, b)
			}
		})
	}
}

// TestToolCallsCancelled: a call in flight to a backend is cancelled —
// its gRPC call too (the gateway logs grpc_code=Canceled, not a timeout)
// — by notifications/cancelled for its id and by the client going away,
// on both paths, and the answer to a cancelled call is the same on both.
func TestToolCallsCancelled(t *testing.T) {
	f := newFleet(t)
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	// A timeout would end a held call too: not within the test.
	g := f.Gateway("CAPABILITY_BACKENDS", "capability-core="+f.CoreAddr+",notes="+notes.Addr, "CORE_CALL_TIMEOUT", "1m")
	tok := f.Token("user-1", "openid notes.read")
	sid := g.initialize(t, tok)
	canceledLogs := func() int {
		return strings.Count(g.Logs.String(), `msg="tool call failed: backend unavailable" service=mcp-gateway tool=notes.list backend=notes grpc_code=Canceled`)
	}
	var answers []string
	for i, old := range []bool{true, false} {
		restore := gateway.ViaHandleMessage(old)
		entered, release := notes.Hold()
		before := gateway.CallToolAnswers()
		id := fmt.Sprint(900 + i)
		var wg sync.WaitGroup
		wg.Add(1)
		var r *resp
		go func() {
			defer wg.Done()
			r = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version,
				Body: `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"notes.list","arguments":{"text":"held"}}}`})
		}()
		<-entered
		n := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version,
			Body: `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":` + id + `,"reason":"user stopped it"}}`})
		if n.Status != http.StatusAccepted {
			t.Fatalf("notifications/cancelled: %d %s", n.Status, n.Body)
		}
		wg.Wait()
		if want := "The service is temporarily unavailable"; !strings.Contains(string(r.Body), want) {
			t.Errorf("via HandleMessage %v: the cancelled call answered %s", old, r.Body)
		}
		if direct := gateway.CallToolAnswers() > before; direct == old {
			t.Errorf("via HandleMessage %v: answered by callTool: %v", old, direct)
		}
		answers = append(answers, strings.Replace(answer(r), id, "<id>", 1))
		if n := canceledLogs(); n != 2*i+1 {
			t.Errorf("via HandleMessage %v: %d calls cancelled, want %d:\n%s", old, n, 2*i+1, g.Logs)
		}

		// The client goes away while its call is held.
		ctx, cancel := context.WithCancel(t.Context())
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, g.URL+"/mcp", bytes.NewReader([]byte(
			`{"jsonrpc":"2.0","id":"gone","method":"tools/call","params":{"name":"notes.list","arguments":{"text":"held"}}}`)))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
			"Authorization": "Bearer " + tok, "Mcp-Session-Id": sid, "Mcp-Protocol-Version": version} {
			hr.Header.Set(k, v)
		}
		done := make(chan error, 1)
		go func() {
			res, err := (&http.Client{}).Do(hr)
			if err == nil {
				res.Body.Close()
			}
			done <- err
		}()
		<-entered
		cancel()
		if err := <-done; err == nil {
			t.Errorf("via HandleMessage %v: the abandoned call was answered", old)
		}
		testharness.Eventually(t, 30*time.Second, "the abandoned call's gRPC call cancelled", func() (bool, string) {
			return canceledLogs() == 2*i+2, g.Logs.String()
		})
		release()
		restore()
	}
	if answers[0] != answers[1] {
		t.Errorf("cancelled call: callTool answered\n%s\nHandleMessage\n%s", answers[1], answers[0])
	}
}

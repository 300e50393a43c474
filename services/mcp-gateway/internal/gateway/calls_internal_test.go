package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// callGateway is a gateway with just what direct needs to answer tools/call
// on both paths: mcp-go's server with the gateway's tool middleware and the
// tools given, served by serveTools as New serves the registry's.
func callGateway(t *testing.T, logs *bytes.Buffer, tools ...server.ServerTool) *Gateway {
	t.Helper()
	g := &Gateway{log: slog.New(slog.NewTextHandler(logs, nil))}
	g.toolMiddleware = []server.ToolHandlerMiddleware{recoverTools(g.log)}
	g.mcp = server.NewMCPServer("t", "1", server.WithToolCapabilities(true), server.WithToolHandlerMiddleware(g.toolMiddleware[0]))
	g.serveTools(tools)
	return g
}

// postDirect runs body through direct as a POST admitted to session sid, the way
// streamableSession hands it on, and returns the recorded answer.
func postDirect(ctx context.Context, g *Gateway, sid, body string) *httptest.ResponseRecorder {
	var m message
	m.decoded = json.Unmarshal([]byte(body), &m) == nil
	r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/mcp", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json, text/event-stream")
	r = r.WithContext(context.WithValue(r.Context(), liveKey{}, &admission{id: sid, post: true, msg: m, body: []byte(body)}))
	w := httptest.NewRecorder()
	g.direct(http.NotFoundHandler()).ServeHTTP(w, r)
	return w
}

// TestCallToolAnswersAsHandleMessage: for tool handlers that panic, fail,
// return nothing, ask for a URL elicitation or answer results of every
// shape, callTool's answer (status, headers, bytes) is HandleMessage's
// through direct; an unknown tool and a call with a task or a result go to
// HandleMessage. A panic is logged with the tool's name.
func TestCallToolAnswersAsHandleMessage(t *testing.T) {
	tool := func(name string, h server.ToolHandlerFunc) server.ServerTool {
		return server.ServerTool{Tool: mcp.NewTool(name), Handler: h}
	}
	var nilMap map[string]int
	logs := &bytes.Buffer{}
	g := callGateway(t, logs,
		tool("boom", func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			nilMap["x"] = 1 // a nil map write: a runtime panic
			return nil, nil
		}),
		tool("fails", func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return nil, errors.New(`backend said "<no>" & left`)
		}),
		tool("nothing", func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) { return nil, nil }),
		tool("elicit", func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return nil, fmt.Errorf("wrapped: %w", mcp.URLElicitationRequiredError{Elicitations: []mcp.ElicitationParams{{Message: "sign in", URL: "https://x.example/a?b=1&c=2"}}})
		}),
		tool("echo", func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			raw, _ := req.GetRawArguments().(json.RawMessage)
			return &mcp.CallToolResult{Content: []mcp.Content{mcp.NewTextContent(string(raw))}, StructuredContent: compactJSON(raw)}, nil
		}),
		tool("card", func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			res := errorResult("needs <scopes> & more")
			res.Meta.AdditionalFields["tollgate/actions"] = map[string]string{"reload": "card"}
			return res, nil
		}),
		tool("logs", func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			// A handler that sends a notification: an SSE answer.
			server.ClientSessionFromContext(ctx).NotificationChannel() <- mcp.JSONRPCNotification{JSONRPC: "2.0",
				Notification: mcp.Notification{Method: "notifications/message", Params: mcp.NotificationParams{AdditionalFields: map[string]any{"level": "info", "data": "hi"}}}}
			return &mcp.CallToolResult{Content: []mcp.Content{mcp.NewTextContent("done")}}, nil
		}),
	)
	for _, c := range []struct {
		name, body string
		direct     bool // answered by callTool
	}{
		{"panic", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"boom"}}`, true},
		{"handler error", `{"jsonrpc":"2.0","id":"a-1","method":"tools/call","params":{"name":"fails","arguments":{}}}`, true},
		{"nil result", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"nothing"}}`, true},
		{"URL elicitation", `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"elicit"}}`, true},
		{"plain result", `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"a": [1, 2], "b":"x"}}}`, true},
		{"HTML in result", `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"a":"<b>&</b>"}}}`, true},
		{"null arguments", `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo","arguments":null}}`, true},
		{"no arguments", `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"card","_meta":{"x":1}}}`, true},
		{"notification sent", `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"logs"}}`, true},
		{"unknown tool", `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"nope"}}`, false},
		{"task", `{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"echo","task":{"ttl":1000}}}`, false},
		{"name of the wrong type", `{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":5}}`, false},
		{"with a result", `{"jsonrpc":"2.0","id":12,"method":"tools/call","result":{},"params":{"name":"echo"}}`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			restore := ViaHandleMessage(true)
			old := postDirect(t.Context(), g, "s1", c.body)
			restore()
			before := CallToolAnswers()
			got := postDirect(t.Context(), g, "s1", c.body)
			if direct := CallToolAnswers() > before; direct != c.direct {
				t.Errorf("answered by callTool: %v, want %v", direct, c.direct)
			}
			if c.name == "panic" && (!strings.Contains(got.Body.String(), `"tool boom failed: internal error"`) || strings.Contains(got.Body.String(), "nil map")) {
				t.Errorf("a panic is answered with the panic value or without the tool's name: %s", got.Body)
			}
			if got.Code != old.Code || got.Header().Get("Content-Type") != old.Header().Get("Content-Type") || got.Body.String() != old.Body.String() {
				t.Errorf("callTool answered\n%d %s %q\nHandleMessage\n%d %s %q", got.Code, got.Header().Get("Content-Type"), got.Body,
					old.Code, old.Header().Get("Content-Type"), old.Body)
			}
		})
	}
	if n := strings.Count(logs.String(), `msg="tool handler panicked" tool=boom panic="assignment to entry in nil map" stack=`); n != 2 {
		t.Errorf("panic logged %d times, want 2 (one per path):\n%s", n, logs)
	}
}

// TestCallToolCancelledByNotification: notifications/cancelled for the id
// of a call callTool is answering cancels the handler's context, as it does
// for a call HandleMessage answers; one for another id or another session
// does not.
func TestCallToolCancelledByNotification(t *testing.T) {
	started := make(chan context.Context, 1)
	g := callGateway(t, &bytes.Buffer{}, server.ServerTool{Tool: mcp.NewTool("wait"),
		Handler: func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			started <- ctx
			select {
			case <-ctx.Done():
				return &mcp.CallToolResult{Content: []mcp.Content{mcp.NewTextContent("cancelled")}, IsError: true}, nil
			case <-time.After(time.Minute):
				return &mcp.CallToolResult{Content: []mcp.Content{mcp.NewTextContent("not cancelled")}}, nil
			}
		}})
	cancelled := func(id string) string {
		return `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":` + id + `,"reason":"user"}}`
	}
	for _, c := range []struct {
		name, id, cancelID string
	}{
		{"number", "41", "41"},
		{"number written otherwise", "4200000", "4.2e6"},
		{"string", `"req-43"`, `"req-43"`},
		// mcp-go compares ids by their text (fmt's %v).
		{"number cancelled as a string", "44", `"44"`},
		{"escaped string", `"req-\u0034\u0035"`, `"req-45"`},
	} {
		var answers [2]string
		for i, old := range []bool{true, false} {
			restore := ViaHandleMessage(old)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				answers[i] = postDirect(t.Context(), g, "s1", `{"jsonrpc":"2.0","id":`+c.id+`,"method":"tools/call","params":{"name":"wait"}}`).Body.String()
			}()
			ctx := <-started
			// Not this call's: another session's, another id.
			for _, n := range []struct{ sid, id string }{{"s2", c.cancelID}, {"s1", "99"}, {"s1", `"req-99"`}} {
				if w := postDirect(t.Context(), g, n.sid, cancelled(n.id)); w.Code != http.StatusAccepted {
					t.Fatalf("%s: notifications/cancelled answered %d %s", c.name, w.Code, w.Body)
				}
			}
			// A cancellation is handled before its POST is answered.
			if ctx.Err() != nil {
				t.Errorf("%s (via HandleMessage: %v): cancelled by another session's or request's notification", c.name, old)
			}
			if w := postDirect(t.Context(), g, "s1", cancelled(c.cancelID)); w.Code != http.StatusAccepted {
				t.Fatalf("%s: notifications/cancelled answered %d %s", c.name, w.Code, w.Body)
			}
			wg.Wait()
			restore()
			if !strings.Contains(answers[i], `"text":"cancelled"`) {
				t.Errorf("%s (via HandleMessage: %v): %s", c.name, old, answers[i])
			}
		}
		// (An id mcp-go would not echo exactly is rewritten before direct,
		// by streamableSession: compared through HTTP in TestToolCallsAnswerAsHandleMessage.)
		if plainID([]byte(c.id)) && answers[0] != answers[1] {
			t.Errorf("%s: callTool answered %s, HandleMessage %s", c.name, answers[1], answers[0])
		}
	}
}

// Tools are answered by callTool only while mcp-go has no hook that
// HandleMessage would run on a tools/call (callTool would skip it). The
// gateway registers none: TestToolCallsAnswerAsHandleMessage checks that
// its tools are answered by callTool.
func TestCallToolOnlyWithoutCallHooks(t *testing.T) {
	g := callGateway(t, &bytes.Buffer{}, server.ServerTool{Tool: mcp.NewTool("t"),
		Handler: func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) { return nil, nil }})
	if g.callable.Load() == nil {
		t.Fatal("no tool callable without hooks")
	}
	hooks := &server.Hooks{}
	hooks.AddBeforeCallTool(func(context.Context, any, *mcp.CallToolRequest) {})
	g.mcp = server.NewMCPServer("t", "1", server.WithHooks(hooks))
	g.serveTools(nil)
	if g.callable.Load() != nil {
		t.Error("tools callable although a before-call-tool hook is registered")
	}
}

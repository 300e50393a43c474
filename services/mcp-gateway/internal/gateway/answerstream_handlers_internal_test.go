package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// lateKey carries, in a test request's context, its lateWriter.
type lateKey struct{}

// lateWriter is the response beneath withAnswerStream in
// TestLateNotificationOfAnyHandlerIsRefused. A handler arms it with its
// late notification just before it returns; the next call of Header —
// the first after the handler has returned, as mcp-go sets the answer's
// header — first runs that notification, from a goroutine of its own,
// to its end: the latest a goroutine the handler left running can
// notify before the answer is written over it.
type lateWriter struct {
	http.ResponseWriter
	late atomic.Pointer[func()]
}

func (w *lateWriter) Header() http.Header {
	if f := w.late.Swap(nil); f != nil {
		done := make(chan struct{})
		go func() { defer close(done); (*f)() }()
		<-done
	}
	return w.ResponseWriter.Header()
}

func (w *lateWriter) Flush() { w.ResponseWriter.(http.Flusher).Flush() }

// A notification that a handler of any kind mcp-go runs for a stateless
// (2026-07-28) POST — a tool's, a resource's (resources/read), a
// prompt's (prompts/get), a completion provider's (completion/complete
// of a prompt's or a resource template's argument) — left to be sent
// after it returned is refused (errAnswerStreamEnded), and the answer is
// mcp-go's JSON answer alone, over real HTTP through mcp-go's transport,
// with the gateway's middleware and providers (endAnswerStream,
// answerStreamEnds, endCompletionAnswerStreams). Before, only a tool
// handler's return ended the stream: a resource's, a prompt's or a
// completion provider's late notification was written, the header made
// text/event-stream, and mcp-go's JSON answer followed raw, no event. Run with -race: in the
// racing rounds the notification is sent at once from a goroutine the
// handler leaves running, and may come while mcp-go sets the answer's
// header.
func TestLateNotificationOfAnyHandlerIsRefused(t *testing.T) {
	var lateErr atomic.Pointer[error]
	// notifyLate has the request's late notification sent either just
	// after its handler has returned, once mcp-go writes (the lateWriter),
	// or at once by a goroutine the handler leaves running (racing).
	var racing atomic.Bool
	raced := make(chan struct{}, 1)
	notifyLate := func(ctx context.Context) {
		send := func() {
			err := progressAt(ctx, 1)
			lateErr.Store(&err)
		}
		if racing.Load() {
			go func() { send(); raced <- struct{}{} }()
			return
		}
		f := send
		ctx.Value(lateKey{}).(*lateWriter).late.Store(&f)
	}
	opts := append([]server.ServerOption{
		server.WithToolCapabilities(false),
		server.WithResourceCapabilities(false, false),
		server.WithPromptCapabilities(false),
		server.WithToolHandlerMiddleware(endAnswerStream),
		server.WithCompletions(),
	}, answerStreamEnds()...)
	opts = append(opts, endCompletionAnswerStreams(lateCompletions{notifyLate}, lateCompletions{notifyLate})...)
	s := server.NewMCPServer("t", "1", opts...)
	s.AddTool(mcp.NewTool("late"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		notifyLate(ctx)
		return mcp.NewToolResultText("done"), nil
	})
	s.AddResource(mcp.NewResource("test://late", "late"), func(ctx context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
		notifyLate(ctx)
		return []mcp.ResourceContents{mcp.TextResourceContents{URI: req.Params.URI, Text: "done"}}, nil
	})
	s.AddPrompt(mcp.NewPrompt("late"), func(ctx context.Context, _ mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		notifyLate(ctx)
		return mcp.NewGetPromptResult("late", []mcp.PromptMessage{mcp.NewPromptMessage(mcp.RoleUser, mcp.NewTextContent("done"))}), nil
	})
	transport := withAnswerStream(server.NewStreamableHTTPServer(s, server.WithEndpointPath("/mcp")))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lw := &lateWriter{ResponseWriter: w}
		transport.ServeHTTP(lw, r.WithContext(context.WithValue(r.Context(), lateKey{}, lw)))
	}))
	defer srv.Close()

	const meta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"}}`
	for _, tc := range []struct{ method, name, params string }{
		{"tools/call", "late", `{"name":"late","arguments":{},` + meta + `}`},
		{"resources/read", "test://late", `{"uri":"test://late",` + meta + `}`},
		{"prompts/get", "late", `{"name":"late",` + meta + `}`},
		{"completion/complete", "", `{"ref":{"type":"ref/prompt","name":"late"},"argument":{"name":"a","value":"x"},` + meta + `}`},
		{"completion/complete", "", `{"ref":{"type":"ref/resource","uri":"test://late/{a}"},"argument":{"name":"a","value":"x"},` + meta + `}`},
	} {
		for round := range 21 {
			racing.Store(round > 0)
			lateErr.Store(nil)
			body := `{"jsonrpc":"2.0","id":7,"method":"` + tc.method + `","params":` + tc.params + `}`
			req, err := http.NewRequest(http.MethodPost, srv.URL+"/mcp", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
			req.Header.Set("Mcp-Method", tc.method)
			if tc.name != "" {
				req.Header.Set("Mcp-Name", tc.name)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if racing.Load() {
				<-raced
			}
			var notifyErr error
			if p := lateErr.Load(); p != nil {
				notifyErr = *p
			} else {
				t.Fatalf("%s: the late notification was not sent", tc.method)
			}
			ct := resp.Header.Get("Content-Type")
			var answer struct {
				ID     json.RawMessage `json:"id"`
				Result json.RawMessage `json:"result"`
			}
			jsonAnswer := ct == "application/json" && json.Unmarshal(got, &answer) == nil && string(answer.ID) == "7" && len(answer.Result) > 0
			answerEvent := "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":"
			switch {
			case errors.Is(notifyErr, errAnswerStreamEnded) && jsonAnswer:
			case racing.Load() && errors.Is(notifyErr, errAnswerStreamEnded) && ct == "text/event-stream" && strings.HasPrefix(string(got), answerEvent) && strings.Count(string(got), "event: ") == 1:
				// Refused, but sent early enough to have told mcp-go
				// (UpgradeToSSEWhenReceiveNotification) to answer in an
				// event stream: the answer is its one event.
			case racing.Load() && notifyErr == nil && ct == "text/event-stream" && strings.HasPrefix(string(got), "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"") && strings.Contains(string(got), "\n\n"+answerEvent) && strings.Count(string(got), "event: ") == 2:
				// Sent while the handler still ran: before the answer,
				// which is the stream's last event.
			default:
				t.Fatalf("%s, round %d (racing %v): the late notification gave %v; %d %s:\n%s\nwant it refused (errAnswerStreamEnded) and the JSON answer alone", tc.method, round, racing.Load(), notifyErr, resp.StatusCode, ct, got)
			}
		}
	}
}

// lateCompletions is a completion provider, of prompt and resource
// arguments, that leaves a late notification (its func) and completes
// nothing.
type lateCompletions struct{ notifyLate func(context.Context) }

func (l lateCompletions) CompletePromptArgument(ctx context.Context, _ string, _ mcp.CompleteArgument, _ mcp.CompleteContext) (*mcp.Completion, error) {
	l.notifyLate(ctx)
	return &mcp.Completion{Values: []string{}}, nil
}

func (l lateCompletions) CompleteResourceArgument(ctx context.Context, _ string, _ mcp.CompleteArgument, _ mcp.CompleteContext) (*mcp.Completion, error) {
	l.notifyLate(ctx)
	return &mcp.Completion{Values: []string{}}, nil
}

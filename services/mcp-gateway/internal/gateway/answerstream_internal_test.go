package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
)

// fakeStatelessCall serves a request as mcp-go's transport serves a
// stateless tools/call: the tool handler run through endAnswerStream,
// then the answer written — as the stream's last event if a notification
// made the response one, else as JSON.
func fakeStatelessCall(handler func(ctx context.Context)) http.Handler {
	const answer = `{"jsonrpc":"2.0","id":1,"result":{}}`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = endAnswerStream(func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			handler(ctx)
			return &mcp.CallToolResult{}, nil
		})(r.Context(), mcp.CallToolRequest{})
		if strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream") {
			_, _ = w.Write([]byte("event: message\ndata: " + answer + "\n\n"))
			w.(http.Flusher).Flush()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(answer + "\n"))
	})
}

func progressAt(ctx context.Context, n int) error {
	return notifyClient(ctx, string(mcp.MethodNotificationProgress), map[string]any{"progressToken": "t", "progress": n})
}

// A notification sent once the tool handler has returned (by a goroutine
// it left running), while mcp-go writes the answer, is refused
// (errAnswerStreamEnded), not written after the answer: MCP
// (basic/utilities/progress) lets a notification name only a request in
// progress.
func TestNotificationAfterTheAnswerIsRefused(t *testing.T) {
	late := make(chan error, 1)
	h := withAnswerStream(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fakeStatelessCall(func(ctx context.Context) {
			if err := progressAt(ctx, 0); err != nil {
				t.Errorf("a notification while the handler runs: %v", err)
			}
		}).ServeHTTP(w, r)
		// The handler's goroutine notifies after the answer, before
		// mcp-go's ServeHTTP has returned.
		late <- progressAt(r.Context(), 1)
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/mcp", nil))
	body := rec.Body.String()
	err := <-late
	if !strings.HasSuffix(body, "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n") || strings.Count(body, "notifications/progress") != 1 || !errors.Is(err, errAnswerStreamEnded) {
		t.Errorf("a notification sent after the answer gave err %v; the stream:\n%s\nwant one notification, the answer last, the late one refused (errAnswerStreamEnded)", err, body)
	}
}

// A notification racing the handler's return either precedes the answer
// in an event stream or is refused, and the answer is whole: never a JSON
// body under an event-stream header. Run with -race: notify sets the
// header map only before end, whose lock orders it before mcp-go's
// Header() calls.
func TestLateNotificationRacesTheAnswer(t *testing.T) {
	for i := range 50 {
		var err error
		done := make(chan struct{})
		h := withAnswerStream(fakeStatelessCall(func(ctx context.Context) {
			go func() {
				defer close(done)
				err = progressAt(ctx, 1)
			}()
		}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/mcp", nil))
		<-done
		ct, body := rec.Header().Get("Content-Type"), rec.Body.String()
		switch {
		case err == nil && ct == "text/event-stream" && strings.HasPrefix(body, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"") && strings.HasSuffix(body, "\"result\":{}}\n\n"):
		case errors.Is(err, errAnswerStreamEnded) && ct == "application/json" && body == `{"jsonrpc":"2.0","id":1,"result":{}}`+"\n":
		default:
			t.Fatalf("call %d: notify err %v, Content-Type %q, body:\n%s", i, err, ct, body)
		}
	}
}

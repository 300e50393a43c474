package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// legacyStreamKey carries, in the context of a /messages request handed to
// mcp-go (serveLegacyMessage), the legacy stream its notifications go on.
type legacyStreamKey struct{}

// legacyStream is a legacy (2024-11-05 HTTP+SSE) session's stream on this
// replica: mcp-go's SSE server and the session's id there.
type legacyStream struct {
	sse     *server.SSEServer
	session string
}

// notifyClient sends the client of the request in ctx the notification
// method with params (a notifications/progress, a notifications/message),
// as mcp-go's SendNotificationToClient does, with its errors
// (server.ErrNotificationNotInitialized for a session not initialized; no
// server in ctx sends nothing and returns nil).
//
// On the legacy stream the notification is queued where the request's
// answer will be, in the order sent (SSEServer.SendEventToSession), so
// that every notification a handler sent is written before its answer.
// mcp-go's SendNotificationToClient queued it on the session's
// notification channel, whence a goroutine of its own moved it to the
// stream's queue, while the answer went to that queue directly: a
// notifications/progress could follow its call's answer, which MCP
// (basic/utilities/progress: a notification references only a request in
// progress) does not allow (TestProgressPrecedesItsAnswer). A full queue
// (100 events waiting for the stream) drops the notification with an
// error, as a full notification channel did.
//
// On a stateless (2026-07-28) POST, or one without a session
// (Gateway.sessionless), that accepts an event stream
// (withAnswerStream) the notification is written into the POST's answer
// stream at once, in the order sent, so before the answer. Through mcp-go
// it went to the request's notification channel, whence a forwarder
// goroutine wrote it; a stateless stream is not recorded for resumption,
// and mcp-go drops a notification its forwarder took off the channel but
// had not written when the answer was: the last notifications/progress of
// a call that answers at once (a registry tool's only one) was lost
// (TestStatelessProgressPrecedesItsAnswer,
// TestSessionlessProgressPrecedesItsAnswer; mark3labs/mcp-go#969, open,
// makes the forwarder the only consumer). A session's POST keeps mcp-go's
// path: it records the notifications for Last-Event-ID resumption, and
// stops the forwarder before it writes the answer, so nothing is lost.
//
// A POST whose Accept admits only application/json (jsonOnlyKey) is sent
// nothing, and nil is returned: its answer is one JSON object (MCP
// 2025-11-25, Transports, Streamable HTTP, "Sending Messages to the
// Server", item 5: "If the input is a JSON-RPC request, the server MUST
// either return Content-Type: text/event-stream, to initiate an SSE
// stream, or Content-Type: application/json, to return one JSON
// object"), which has no room for a notification, and a notification
// would have turned it into an event stream the client did not accept.
func notifyClient(ctx context.Context, method string, params map[string]any) error {
	if jsonOnly, _ := ctx.Value(jsonOnlyKey{}).(bool); jsonOnly {
		return nil
	}
	n := mcp.JSONRPCNotification{
		JSONRPC:      mcp.JSONRPC_VERSION,
		Notification: mcp.Notification{Method: method, Params: mcp.NotificationParams{AdditionalFields: params}},
	}
	if as, ok := ctx.Value(answerStreamKey{}).(*answerStream); ok {
		// mcp-go then writes its answer as an event of the stream, as
		// after a notification of its own.
		if cs, ok := server.ClientSessionFromContext(ctx).(server.SessionWithStreamableHTTPConfig); ok {
			cs.UpgradeToSSEWhenReceiveNotification()
		}
		return as.notify(n)
	}
	ls, ok := ctx.Value(legacyStreamKey{}).(legacyStream)
	if !ok {
		if srv := server.ServerFromContext(ctx); srv != nil {
			return srv.SendNotificationToClient(ctx, method, params)
		}
		return nil
	}
	if cs := server.ClientSessionFromContext(ctx); cs == nil || !cs.Initialized() {
		return server.ErrNotificationNotInitialized
	}
	return ls.sse.SendEventToSession(ls.session, n)
}

// answerStreamKey carries, in the context of a stateless POST request
// served by withAnswerStream, its answerStream.
type answerStreamKey struct{}

// errAnswerStreamEnded is notifyClient's error for a notification sent
// after its request was served: it has no stream left to go on.
var errAnswerStreamEnded = errors.New("the request has been answered: its notification has no stream to go on")

// endAnswerStream is the gateway's outermost tool middleware: when the
// tool handler returns (or panics), before mcp-go writes the call's answer,
// the request's answerStream, if any, is ended, so that a notification
// sent later (by a goroutine the handler left running) is refused
// (errAnswerStreamEnded) instead of written after the answer, and never
// touches the response's header map, which mcp-go sets, without
// answerStream's lock, once the handler has returned.
//
// endResourceAnswerStream and endPromptAnswerStream do the same for a
// resources/read (of a resource or a template) and a prompts/get, the
// other handlers mcp-go runs for a request and lets wrap
// (WithResourceHandlerMiddleware, WithPromptHandlerMiddleware): before,
// their answer stream ended only once mcp-go had written the answer, and
// a notification such a handler sent late made the answer an event stream
// with the JSON answer written raw after the notification, or raced mcp-go
// on the header map (TestLateNotificationOfAnyHandlerIsRefused). No such
// handler notifies today; this keeps it so for one that will. A
// completion/complete's providers have no middleware in mcp-go, but are
// server options the gateway sets: endCompletionAnswerStreams wraps them.
func endAnswerStream(next server.ToolHandlerFunc) server.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		defer endAnswerStreamOf(ctx)
		return next(ctx, req)
	}
}

func endResourceAnswerStream(next server.ResourceHandlerFunc) server.ResourceHandlerFunc {
	return func(ctx context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
		defer endAnswerStreamOf(ctx)
		return next(ctx, req)
	}
}

func endPromptAnswerStream(next server.PromptHandlerFunc) server.PromptHandlerFunc {
	return func(ctx context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		defer endAnswerStreamOf(ctx)
		return next(ctx, req)
	}
}

// answerStreamEnds are the server options of endResourceAnswerStream and
// endPromptAnswerStream, to come before any other resource or prompt
// middleware (mcp-go runs the first outermost), so that the stream ends
// however the handler ends, a panic too; and those of mcp-go's default
// completion providers (empty completions), fenced
// (endCompletionAnswerStreams).
func answerStreamEnds() []server.ServerOption {
	return append([]server.ServerOption{
		server.WithResourceHandlerMiddleware(endResourceAnswerStream),
		server.WithPromptHandlerMiddleware(endPromptAnswerStream),
	}, endCompletionAnswerStreams(&server.DefaultPromptCompletionProvider{}, &server.DefaultResourceCompletionProvider{})...)
}

// endCompletionAnswerStreams are the server options that make p and r the
// providers mcp-go asks for a completion/complete (MCP 2025-11-25, Server
// Features, Completion: a prompt's or a resource template's argument),
// each wrapped so that, when it returns (or panics), before mcp-go writes
// the answer, the request's answerStream ends, as endAnswerStream does for
// a tool. mcp-go has no completion middleware; its providers, which it
// calls once per request on the request's goroutine, are the place. An
// option that sets a provider after these replaces the fence: the gateway
// sets none.
func endCompletionAnswerStreams(p server.PromptCompletionProvider, r server.ResourceCompletionProvider) []server.ServerOption {
	return []server.ServerOption{
		server.WithPromptCompletionProvider(endPromptCompletionAnswerStream{p}),
		server.WithResourceCompletionProvider(endResourceCompletionAnswerStream{r}),
	}
}

type endPromptCompletionAnswerStream struct {
	next server.PromptCompletionProvider
}

func (e endPromptCompletionAnswerStream) CompletePromptArgument(ctx context.Context, prompt string, arg mcp.CompleteArgument, c mcp.CompleteContext) (*mcp.Completion, error) {
	defer endAnswerStreamOf(ctx)
	return e.next.CompletePromptArgument(ctx, prompt, arg, c)
}

type endResourceCompletionAnswerStream struct {
	next server.ResourceCompletionProvider
}

func (e endResourceCompletionAnswerStream) CompleteResourceArgument(ctx context.Context, uri string, arg mcp.CompleteArgument, c mcp.CompleteContext) (*mcp.Completion, error) {
	defer endAnswerStreamOf(ctx)
	return e.next.CompleteResourceArgument(ctx, uri, arg, c)
}

// endAnswerStreamOf ends the answerStream of the request in ctx, if it
// has one (answerStream.end): nothing more is sent on it.
func endAnswerStreamOf(ctx context.Context) {
	if as, ok := ctx.Value(answerStreamKey{}).(*answerStream); ok {
		as.end()
	}
}

// withAnswerStream serves a stateless (2026-07-28) POST request, or one
// without a session (Gateway.sessionless), whose
// Accept admits an event stream with next, the notifications its handler
// sends (notifyClient) written into its answer (answerStream).
func withAnswerStream(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		as := &answerStream{ResponseWriter: w}
		defer as.end()
		next.ServeHTTP(as, r.WithContext(context.WithValue(r.Context(), answerStreamKey{}, as)))
	})
}

// answerStream is the response of a request that mcp-go's transport
// answers, into which notifyClient writes the request's notifications as
// events: the first makes the response an event stream (200,
// text/event-stream), and mcp-go, told so
// (UpgradeToSSEWhenReceiveNotification), writes its answer as the
// stream's last event; its own header, then superfluous, is not written
// again. Writes are serialised, so that an event is never split by
// another.
type answerStream struct {
	http.ResponseWriter
	mu          sync.Mutex
	wroteHeader bool
	ended       bool // served: nothing more is written here
}

func (s *answerStream) WriteHeader(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.wroteHeader {
		s.wroteHeader = true
		s.ResponseWriter.WriteHeader(code)
	}
}

func (s *answerStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wroteHeader = true
	return s.ResponseWriter.Write(p)
}

func (s *answerStream) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *answerStream) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// notify writes n as an event of the stream, and flushes it. A stream
// ended (its handler returned: endAnswerStream and its kin; or served) or a
// response that is already something else is not written to, and its
// header is not touched: errAnswerStreamEnded. The header is set only
// before end, under mu, which end takes too: mcp-go sets it after.
func (s *answerStream) notify(n mcp.JSONRPCNotification) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return errAnswerStreamEnded
	}
	if !s.wroteHeader {
		s.Header().Set("Content-Type", "text/event-stream")
		s.Header().Set("Cache-Control", "no-cache")
		s.ResponseWriter.WriteHeader(http.StatusOK)
		s.wroteHeader = true
	} else if !strings.HasPrefix(s.Header().Get("Content-Type"), "text/event-stream") {
		return errAnswerStreamEnded
	}
	writeEvent(s.ResponseWriter, n)
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	return nil
}

// end marks the request answered: nothing more is sent on the stream.
func (s *answerStream) end() {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
}

package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// A steady-state tools/call — a POST of an admitted Streamable HTTP
// session naming a tool of the registry, without a progress token, a task
// or a multi-round-trip retry — is answered by callTool, which calls the
// tool's handler itself instead of handing the message to mcp-go's
// MCPServer.HandleMessage. HandleMessage parses every message four more
// times (envelope, protocol era, _meta, the typed request with its
// arguments decoded into a map), about a quarter of the gateway's CPU per
// call (issue 12); the gateway has parsed the message once already
// (readBody), which is all callTool needs. What HandleMessage did on this
// path, callTool does too:
//
//   - the handler gets the request's context with the session
//     (server.ClientSessionFromContext), cancelled when the client goes
//     away or sends notifications/cancelled for the request's id (MCP
//     "Cancellation"): the backend's gRPC call is cancelled with it;
//   - the same tool middleware (toolMiddleware: a panic is logged and
//     answered as JSON-RPC -32603 "tool <tool> failed: internal error",
//     the panic value left out of the answer);
//   - a handler's error is JSON-RPC -32603 with its text, a nil result
//     -32603 "tool '<name>' handler returned no result", as mcp-go answers;
//   - the answer bytes are those of HandleMessage's response through
//     direct (json.Encoder, or appendToolAnswer for the plain success
//     shape), with the request's id as the client sent it, and an SSE
//     answer when a handler sent notifications and the client accepts one.
//
// Everything else — the conformance fixtures' tools, progress, tasks,
// responses, other methods, notifications — still goes through
// HandleMessage or the transport (a name no tool has is refused before
// either: toolNameError). mcp-go has no supported way to call a registered tool
// without HandleMessage's parsing, hence this path; it is taken only while
// the MCP server has no hook that would run on a tools/call (callHooks).
// Handlers called here find no server in their context
// (server.ServerFromContext is nil): the registry's tools use it only to
// send progress, whose requests HandleMessage serves.

// viaHandleMessage, when set, sends every tools/call through
// HandleMessage, the path before callTool. Only tests set it, to compare
// the two paths' answers.
var viaHandleMessage atomic.Bool

// callToolAnswers counts the tools/call requests callTool answered, for
// tests to check which path served them.
var callToolAnswers atomic.Uint64

// serveTools makes tools (the registry's) the tools mcp-go serves, with the
// conformance fixtures' in that profile (a fixture wins a name clash), and
// the ones callTool answers.
func (g *Gateway) serveTools(tools []server.ServerTool) {
	callable := make(map[string]server.ToolHandlerFunc, len(tools))
	for _, t := range tools {
		h := t.Handler
		// As mcp-go applies them: the first middleware outermost.
		for _, mw := range slices.Backward(g.toolMiddleware) {
			h = mw(h)
		}
		callable[t.Tool.Name] = h
	}
	all := tools
	if g.cfg.ConformanceFixtures {
		fixtures := fixtureTools(g.sessions.LogLevel)
		all = append(slices.Clip(tools), fixtures...)
		for _, f := range fixtures {
			delete(callable, f.Tool.Name)
		}
	}
	g.readOnly.Store(readOnlyTools(all))
	g.mcp.SetTools(all...)
	if callHooks(g.mcp.GetHooks()) {
		g.callable.Store(nil)
		return
	}
	g.callable.Store(&callable)
}

// callHooks reports whether h has a hook HandleMessage runs on a
// tools/call; callTool would skip it, so it is not used then.
func callHooks(h *server.Hooks) bool {
	return h != nil && len(h.OnBeforeAny)+len(h.OnSuccess)+len(h.OnError)+len(h.OnRequestInitialization)+
		len(h.OnBeforeCallTool)+len(h.OnAfterCallTool) > 0
}

// callableTool returns the handler callTool answers msg with, or nil when
// msg is for HandleMessage: a message that did not decode whole, a
// response, a task or multi-round-trip call, a tool the registry does not
// have (a fixture's; a name no tool has was refused before: toolNameError).
func (g *Gateway) callableTool(msg *message) server.ToolHandlerFunc {
	if viaHandleMessage.Load() || !msg.decoded || msg.Method != string(mcp.MethodToolsCall) || len(msg.ID) == 0 ||
		len(msg.Result) > 0 || len(msg.Params.Task) > 0 || len(msg.Params.InputResponses) > 0 || len(msg.Params.RequestState) > 0 {
		return nil
	}
	callable := g.callable.Load()
	if callable == nil {
		return nil
	}
	return (*callable)[msg.Params.Name]
}

// callTool answers the tools/call msg of session id with tool (see above).
func (g *Gateway) callTool(w http.ResponseWriter, r *http.Request, id string, msg *message, tool server.ToolHandlerFunc) {
	callToolAnswers.Add(1)
	sess := &directSession{id: id, ctx: r.Context(), store: g.sessions}
	ctx, cancel := g.callContext(g.mcp.WithContext(r.Context(), sess))
	defer cancel()
	sess.cancel = cancel
	if id != "" {
		// A sessionless call (Gateway.sessionless) cannot be named by a
		// notifications/cancelled: no session ties one to it.
		key := inflightKey{session: id, id: requestKey(msg.ID)}
		g.inflight.add(key, sess)
		defer g.inflight.remove(key, sess)
	}
	res, err := tool(ctx, mcp.CallToolRequest{
		Request: mcp.Request{Method: string(mcp.MethodToolsCall)},
		// The arguments as the client sent them (GetRawArguments,
		// BindArguments); Arguments is not decoded into a map.
		Params: mcp.CallToolParams{Name: msg.Params.Name, Meta: msg.Params.Meta, RawArguments: msg.Params.Arguments},
	})
	if err := sess.failed(); err != nil {
		g.sessionStateFailed(w, r, msg, err)
		return
	}
	buf := answerBuffers.Get().(*[]byte)
	defer putAnswerBuffer(buf)
	var answer []byte
	switch {
	case err != nil:
		answer = appendRPCErrorAnswer((*buf)[:0], msg.ID, handlerError(err))
	case res == nil:
		answer = appendRPCErrorAnswer((*buf)[:0], msg.ID, mcp.NewJSONRPCErrorDetails(mcp.INTERNAL_ERROR,
			fmt.Sprintf("tool '%s' handler returned no result", msg.Params.Name), nil))
	default:
		answer = appendCallAnswer((*buf)[:0], msg.ID, res)
	}
	*buf = answer // grown or not, the buffer goes back to the pool
	// In an event, the answer as json.Marshal writes it: without the newline.
	if answerAsEventStream(w, r, sess.drain(), func(w io.Writer) { writeEventData(w, bytes.TrimSuffix(answer, []byte("\n"))) }) {
		return
	}
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(answer) // copied into the connection's buffer before Write returns
}

// jsonContentType is the Content-Type of a JSON answer, shared by every
// answer instead of a new slice each (Header.Set's); net/http only reads
// it.
var jsonContentType = []string{"application/json"}

// answerBuffers hold callTool's answers while they are written: the
// answer is copied into the connection's buffer by Write, so its bytes
// need not be a new allocation per call.
var answerBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// putAnswerBuffer returns b to answerBuffers unless it grew beyond what is
// worth keeping (one large answer must not pin its memory).
func putAnswerBuffer(b *[]byte) {
	if cap(*b) <= 64<<10 {
		*b = (*b)[:0]
		answerBuffers.Put(b)
	}
}

// callContext is the context of a tools/call callTool answers, cancelled by
// cancel (notifications/cancelled, the call's end) and, when
// CORE_CALL_TIMEOUT is set, ending after it: the catalog's handler then
// bounds its capability call with this deadline instead of a context of
// its own (catalog.call), one cancellable context per call instead of two
// (issue 12: each registers with its parent and allocates a channel). The
// timeout starts here, microseconds before the handler's own did.
func (g *Gateway) callContext(parent context.Context) (context.Context, context.CancelFunc) {
	if t := g.cfg.CoreTimeout; t > 0 {
		return context.WithTimeout(parent, t)
	}
	return context.WithCancel(parent)
}

// handlerError is the JSON-RPC error of a tool handler's error, as mcp-go
// makes it: -32603 with the error's text, or for a URL elicitation
// required (MCP elicitation, URL mode) its own code and data.
func handlerError(err error) mcp.JSONRPCErrorDetails {
	var required mcp.URLElicitationRequiredError
	var pointer *mcp.URLElicitationRequiredError
	switch {
	case errors.As(err, &required):
	case errors.As(err, &pointer) && pointer != nil:
		required = *pointer
	default:
		return mcp.NewJSONRPCErrorDetails(mcp.INTERNAL_ERROR, err.Error(), nil)
	}
	d := required.JSONRPCError().Error
	return mcp.NewJSONRPCErrorDetails(d.Code, err.Error(), d.Data)
}

// appendCallAnswer appends the JSON-RPC response with result res to the
// request whose id is id (raw, as the client sent it), as json.Encoder
// writes a response (a trailing newline included).
func appendCallAnswer(dst []byte, id json.RawMessage, res *mcp.CallToolResult) []byte {
	if b, ok := appendToolResult(dst, id, res); ok {
		return b
	}
	return appendEncoded(dst, id, `,"result":`, res)
}

// appendRPCErrorAnswer appends the JSON-RPC error response e to the
// request whose id is id, as json.Encoder writes mcp.JSONRPCError.
func appendRPCErrorAnswer(dst []byte, id json.RawMessage, e mcp.JSONRPCErrorDetails) []byte {
	return appendEncoded(dst, id, `,"error":`, e)
}

// appendEncoded appends {"jsonrpc":"2.0","id":<id><member><v>} and a
// newline, v encoded as json.Encoder encodes a member of a struct, without
// HTML escaping (appendJSON).
func appendEncoded(dst []byte, id json.RawMessage, member string, v any) []byte {
	start := len(dst)
	out := append(dst, `{"jsonrpc":"2.0","id":`...)
	out = append(out, id...)
	out = append(out, member...)
	out, err := appendJSON(out, v)
	if err != nil {
		// What json.Encoder makes of a response it cannot encode:
		// nothing. Not reachable with mcp-go's result types.
		return dst[:start]
	}
	out = append(out[:len(out)-1], "}\n"...) // the value's newline moves after the brace
	return out
}

// recoverTools is the gateway's tool middleware: a panic in a tool handler
// is logged with its value and stack and returned as the error "tool
// <tool> failed: internal error", which becomes a JSON-RPC internal error
// (-32603). Unlike mcp-go's WithRecovery, the answer does not carry the
// panic value: it can name internals (a nil map, an index, a file), which
// belong in the log, not with the client.
func recoverTools(log *slog.Logger) server.ToolHandlerMiddleware {
	return func(next server.ToolHandlerFunc) server.ToolHandlerFunc {
		return func(ctx context.Context, req mcp.CallToolRequest) (res *mcp.CallToolResult, err error) {
			defer func() {
				if p := recover(); p != nil {
					log.ErrorContext(ctx, "tool handler panicked", "tool", req.Params.Name, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
					res, err = nil, fmt.Errorf("tool %s failed: internal error", req.Params.Name)
				}
			}()
			return next(ctx, req)
		}
	}
}

// inflight are the tools/call requests callTool is answering on this
// replica, by session and JSON-RPC id, so that the client's
// notifications/cancelled ends one, as mcp-go does for the requests
// HandleMessage serves. Ids match as mcp-go matches them, by their text
// once decoded (a number through float64: 7, 7.0 and "7" are one id). A
// cancellation that reaches another replica than the request's finds
// nothing here, as with mcp-go. A plain map under a mutex: adding and
// removing a call allocates nothing in the steady state (a sync.Map
// allocated an entry per call).
type inflight struct {
	mu sync.Mutex
	m  map[inflightKey]*directSession // its cancel ends the call
}

type inflightKey struct{ session, id string }

// add records the call of s under k (session, requestKey of the id).
func (f *inflight) add(k inflightKey, s *directSession) {
	f.mu.Lock()
	if f.m == nil {
		f.m = map[inflightKey]*directSession{}
	}
	f.m[k] = s
	f.mu.Unlock()
}

// remove forgets the call of s under k, unless another call with the
// same session and id has taken its place.
func (f *inflight) remove(k inflightKey, s *directSession) {
	f.mu.Lock()
	if f.m[k] == s {
		delete(f.m, k)
	}
	f.mu.Unlock()
}

// cancel cancels the request id of session, if it is in flight here.
func (f *inflight) cancel(session string, id json.RawMessage) {
	if len(id) == 0 {
		return
	}
	k := inflightKey{session: session, id: requestKey(id)}
	f.mu.Lock()
	s := f.m[k]
	delete(f.m, k)
	f.mu.Unlock()
	if s != nil {
		s.cancel()
	}
}

// requestKey is the text of a raw JSON-RPC id as mcp-go keys its requests
// in flight (fmt's %v of the id decoded into an any): a string's text, a
// number's float64 in fmt's %v form; anything else (a number beyond
// float64) its bytes.
func requestKey(raw json.RawMessage) string {
	switch kind(raw) {
	case '"':
		if plainID(raw) {
			return string(raw[1 : len(raw)-1])
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	case '0':
		if f, err := strconv.ParseFloat(string(raw), 64); err == nil {
			return strconv.FormatFloat(f, 'g', -1, 64) // fmt's %v of a float64
		}
	}
	return string(raw)
}

// cancelNotified cancels the tools/call a notifications/cancelled (body)
// names, if callTool is answering it here.
func (g *Gateway) cancelNotified(session string, body []byte) {
	var n struct {
		Params struct {
			RequestID json.RawMessage `json:"requestId"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &n) == nil {
		g.inflight.cancel(session, n.Params.RequestID)
	}
}

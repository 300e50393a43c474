package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/tollgate/tollgate/services/mcp-gateway/internal/session"
)

// directMethods are the requests served by direct. Others (logging,
// subscriptions, completions, anything new) keep going through mcp-go's
// transport, whose per-session state they may need.
var directMethods = map[string]bool{
	string(mcp.MethodInitialize): true, string(mcp.MethodPing): true,
	string(mcp.MethodToolsList): true, string(mcp.MethodToolsCall): true,
	string(mcp.MethodResourcesList): true, string(mcp.MethodResourcesTemplatesList): true,
	string(mcp.MethodResourcesRead): true, string(mcp.MethodPromptsList): true,
	// Kept in the session record (Redis), so that every replica knows them.
	string(mcp.MethodSetLogLevel):        true,
	string(mcp.MethodResourcesSubscribe): true, string(mcp.MethodResourcesUnsubscribe): true,
}

// directNotifications bounds the notifications a directly served request
// may send before its answer; more are dropped (mcp-go reports
// ErrNotificationChannelBlocked to the sender).
const directNotifications = 16

// direct answers, without mcp-go's Streamable HTTP transport, the POSTs of
// a session (admitted by streamableSession) that need neither a stream of
// their own nor per-session state in mcp-go: initialize, ping, the tools,
// resources and prompts requests when the client did not ask for
// progress, and the client's notifications. mcp-go's MCPServer still handles the message (HandleMessage),
// except a steady-state tools/call of a registry tool, which callTool
// answers (calls.go); the transport is bypassed for two reasons (issue 12):
//
//   - the transport builds a throwaway session per request on every replica
//     that did not initialize the session (about 10 KB: buffered channels
//     for notifications, sampling, elicitation and roots);
//   - on the replica that did, it registers the session at initialize and
//     keeps it for the idle TTL (9–13 KB per idle session), although every
//     replica serves every session from Redis and only a GET stream needs
//     a registered session (served here too, by listen, registered for the
//     stream's life only).
//
// The answer is what the transport sends: the JSON-RPC response as JSON,
// Mcp-Session-Id on initialize; notifications a handler sends while the
// request runs (progress is not served here, but a handler may log) are
// kept, up to directNotifications, and sent first on an SSE answer when the
// client accepts one. Everything else goes to next (the transport).
func (g *Gateway) direct(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			// A GET stream of an admitted session: served by listen.
			if a := admitted(r.Context()); a != nil && a.id != "" && g.listen(w, r, a.id) {
				return
			}
			next.ServeHTTP(newUnescapingWriter(w), r)
			return
		}
		id, ok := directSessionID(r)
		if !ok {
			next.ServeHTTP(newUnescapingWriter(w), r)
			return
		}
		next := next
		if a := admitted(r.Context()); a != nil && a.sessionless {
			// What direct leaves to a transport goes to the stateless one.
			// Each gets a session id of its own (never answered: only
			// initialize echoes one), so that mcp-go keys nothing of two
			// requests on the same "".
			next = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r.Header.Set(server.HeaderKeySessionID, "sessionless-"+session.NewID())
				g.statelessHTTP.ServeHTTP(w, r)
			})
		}
		// streamableSession read and parsed the body (admission): it is
		// not read or parsed again here.
		var body []byte
		var msg *message
		if a := admitted(r.Context()); a != nil && a.post {
			body, msg = a.body, &a.msg
		} else {
			var err error
			if body, err = io.ReadAll(r.Body); err != nil {
				next.ServeHTTP(w, r) // unreachable: streamableSession buffered the body
				return
			}
			msg = &message{}
			if json.Unmarshal(body, msg) != nil {
				msg = &message{}
			} else {
				msg.decoded = true
			}
		}
		// A client's response (no method: the envelope check lets through
		// only an id with a result or an error) answers a request the
		// server sent. The transport hands it to a handler waiting for it
		// on this replica (a conformance fixture's sampling or
		// elicitation); when none waits it answers 404 "no active session"
		// — which tells the client its session is gone, so it initializes
		// again — or 400, and logs an error. The session is live
		// (admitted): the response is accepted and dropped instead, as
		// HandleMessage drops a result. Outside the fixture profile no
		// handler sends the client a request (the streams' pings are
		// answered with empty results, dropped alike): not handed over.
		if msg.Method == "" && len(msg.ID) > 0 {
			if !g.cfg.ConformanceFixtures {
				w.WriteHeader(http.StatusAccepted)
				return
			}
			r.Body = newBody(body)
			next.ServeHTTP(&acceptResponse{ResponseWriter: w}, r)
			return
		}
		// A client's notification (notifications/initialized, /cancelled,
		// …) has no answer: served here too, so that the transport does not
		// build a throwaway session for it (issue 12).
		notification := len(msg.ID) == 0 && strings.HasPrefix(msg.Method, "notifications/")
		if !notification && (!directMethods[msg.Method] || len(msg.ID) == 0 || string(msg.ID) == "null" ||
			(msg.Params.Meta != nil && msg.Params.Meta.ProgressToken != nil)) {
			r.Body = newBody(body)
			next.ServeHTTP(newUnescapingWriter(w), r)
			return
		}
		if tool := g.callableTool(msg); tool != nil {
			g.callTool(w, r, id, msg, tool) // calls.go
			return
		}
		if notification && msg.Method == string(mcp.MethodNotificationCancelled) {
			g.cancelNotified(id, body) // a tools/call callTool answers
		}
		sess := &directSession{id: id, ctx: r.Context(), store: g.sessions, names: g.namesResource}
		res := g.mcp.HandleMessage(g.mcp.WithContext(r.Context(), sess), body)
		if msg.Method != string(mcp.MethodInitialize) {
			// (initialize's refusals are reworded by heldResponse.clientTerms)
			res = paramsInClientTerms(res)
		}
		if err := sess.failed(); err != nil {
			g.sessionStateFailed(w, r, msg, err)
			return
		}
		if msg.Method == string(mcp.MethodInitialize) {
			w.Header().Set(server.HeaderKeySessionID, id)
		}
		if res == nil {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		if answerAsEventStream(w, r, sess.drain(), func(w io.Writer) { writeEvent(w, res) }) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		if b, ok := appendToolAnswer(nil, res); ok {
			_, _ = w.Write(b)
			return
		}
		writeJSON(w, res)
	})
}

// paramsInClientTerms turns mcp-go's refusal of a request whose params
// have a member of the wrong JSON type — -32600 "unparsable tools/call
// request: json: cannot unmarshal number into Go struct field
// CallToolRequest.params.name of type string" — into what it is, invalid
// params (JSON-RPC -32602), in the client's terms: "invalid params:
// params.name must be a JSON string, not a number". Params that are not
// an object at all stay -32600 (JSON-RPC §4.2: an invalid request), and
// every other answer is left as it is.
func paramsInClientTerms(res mcp.JSONRPCMessage) mcp.JSONRPCMessage {
	e, ok := res.(mcp.JSONRPCError)
	if !ok || e.Error.Code != mcp.INVALID_REQUEST || !strings.HasPrefix(e.Error.Message, "unparsable ") {
		return res
	}
	m := goDecodeError.FindStringSubmatch(e.Error.Message)
	if m == nil {
		return res
	}
	e.Error.Code = mcp.INVALID_PARAMS
	if _, ok := builtinJSONType(m[3]); ok {
		e.Error.Message = "invalid params: " + wrongType(m[1], m[2], m[3])
	} else {
		// A named Go type (mcp.LoggingLevel, …) does not say which JSON
		// type it decodes from.
		e.Error.Message = fmt.Sprintf("invalid params: %s has the wrong JSON type (%s)", m[2], jsonArticle(m[1]))
	}
	return e
}

// builtinJSONType is the JSON type an unnamed Go type decodes from, if t
// is one.
func builtinJSONType(t string) (string, bool) {
	switch {
	case t == "string", t == "bool", strings.HasPrefix(t, "[]"), strings.HasPrefix(t, "map["),
		strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"), strings.HasPrefix(t, "float"):
		return jsonTypeOfGo(t), true
	}
	return "", false
}

// acceptResponse answers a client's response that the transport could not
// deliver (a 4xx: nothing waits for it here) with 202 and no body
// (Streamable HTTP: an accepted response gets 202).
type acceptResponse struct {
	http.ResponseWriter
	dropped bool
}

func (a *acceptResponse) WriteHeader(code int) {
	if code >= 400 && code < 500 {
		for _, k := range []string{"Content-Type", "Content-Length", "X-Content-Type-Options"} {
			a.Header().Del(k)
		}
		a.dropped, code = true, http.StatusAccepted
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *acceptResponse) Write(p []byte) (int, error) {
	if a.dropped {
		return len(p), nil
	}
	return a.ResponseWriter.Write(p)
}

func (a *acceptResponse) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// compactJSON is a tool's structured content as the gateway made it:
// compact JSON (registry.MarshalOutput). Encoded as is.
type compactJSON []byte

func (c compactJSON) MarshalJSON() ([]byte, error) { return c, nil }

// appendToolAnswer appends to dst the answer to a tools/call whose result
// has the one shape the gateway's tools return on success — a text content
// and the same output as compact structured content, nothing else — and
// reports whether it did. The bytes are what encoding/json makes of the
// response through mcp-go's CallToolResult.MarshalJSON (a map, sorted keys,
// compacted twice), without HTML escaping (appendJSON), followed by a
// newline as json.Encoder writes, without building the map or scanning
// the output again: 7 % of the gateway's CPU per call went there (issue 12). Any other
// result (errors, _meta, other content) is left to the encoder.
func appendToolAnswer(dst []byte, msg mcp.JSONRPCMessage) ([]byte, bool) {
	var resp mcp.JSONRPCResponse
	switch r := msg.(type) {
	case mcp.JSONRPCResponse:
		resp = r
	case *mcp.JSONRPCResponse:
		if r == nil {
			return nil, false
		}
		resp = *r
	default:
		return nil, false
	}
	res, ok := resp.Result.(*mcp.CallToolResult)
	if !ok || resp.JSONRPC != mcp.JSONRPC_VERSION {
		return nil, false
	}
	var id []byte
	switch v := resp.ID.Value().(type) {
	case int:
		id = strconv.AppendInt(make([]byte, 0, 20), int64(v), 10)
	case int64:
		id = strconv.AppendInt(make([]byte, 0, 20), v, 10)
	case float64:
		// How mcp-go decodes a number; an integral one under 1e15 is
		// encoded by encoding/json as that integer.
		if v != math.Trunc(v) || math.Abs(v) >= 1e15 {
			return nil, false
		}
		id = strconv.AppendInt(make([]byte, 0, 20), int64(v), 10)
	default:
		var err error
		if id, err = json.Marshal(resp.ID); err != nil {
			return nil, false
		}
	}
	return appendToolResult(dst, id, res)
}

// appendToolResult is appendToolAnswer for the result res of the request
// whose id, as JSON, is id.
func appendToolResult(dst, id []byte, res *mcp.CallToolResult) ([]byte, bool) {
	if res == nil || res.Meta != nil || res.ResultType != "" || res.IsError || len(res.InputRequests) > 0 ||
		res.RequestState != "" || len(res.RawStructuredContent) > 0 || len(res.Content) != 1 {
		return nil, false
	}
	var structured compactJSON
	switch v := res.StructuredContent.(type) {
	case compactJSON:
		structured = v
	case *compactJSON: // okResult's
		if v != nil {
			structured = *v
		}
	}
	if len(structured) == 0 || lineSeparators(structured) {
		return nil, false
	}
	var text mcp.TextContent
	switch v := res.Content[0].(type) {
	case mcp.TextContent:
		text = v
	case *mcp.TextContent: // okResult's
		if v == nil {
			return nil, false
		}
		text = *v
	default:
		return nil, false
	}
	if text.Annotations != nil || text.Meta != nil || text.Type != "text" {
		return nil, false
	}
	if !utf8.ValidString(text.Text) {
		return nil, false // the encoder replaces invalid bytes: left to it
	}
	const fixed = len(`{"jsonrpc":"2.0","id":,"result":{"content":[{"type":"text","text":""}],"structuredContent":}}` + "\n")
	if need := fixed + len(id) + len(text.Text) + 16 + len(structured); cap(dst)-len(dst) < need {
		dst = append(make([]byte, 0, len(dst)+need), dst...)
	}
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	dst = append(dst, id...)
	dst = append(dst, `,"result":{"content":[{"type":"text","text":`...)
	dst = appendJSONString(dst, text.Text)
	dst = append(dst, `}],"structuredContent":`...)
	dst = append(dst, structured...)
	dst = append(dst, "}}\n"...)
	return dst, true
}

// appendJSONString appends s quoted as encoding/json quotes valid UTF-8
// without HTML escaping (json.Encoder.SetEscapeHTML(false)): '"' and '\\'
// escaped, control characters as \n, \r, \t, \b, \f or \u00XX, and U+2028
// and U+2029 as \u2028 and \u2029, which encoding/json always escapes.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c != 0xe2 {
			continue
		}
		if c == 0xe2 {
			// U+2028 is E2 80 A8, U+2029 E2 80 A9.
			if i+2 >= len(s) || s[i+1] != 0x80 || (s[i+2] != 0xa8 && s[i+2] != 0xa9) {
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\u202`...)
			dst = append(dst, hex[s[i+2]&0xf])
			i += 2
			start = i + 1
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// lineSeparators reports whether b holds U+2028 or U+2029, which
// encoding/json escapes in the structured content CallToolResult.MarshalJSON
// compacts: such a result is left to the encoder.
func lineSeparators(b []byte) bool {
	return bytes.IndexByte(b, 0xe2) >= 0 && (bytes.Contains(b, []byte("\u2028")) || bytes.Contains(b, []byte("\u2029")))
}

// directSessionID returns the session a POST was admitted to (or is
// creating, for initialize) when direct may serve it.
func directSessionID(r *http.Request) (string, bool) {
	if r.Method != http.MethodPost {
		return "", false
	}
	// "application/json" as such (what clients send) needs no parsing;
	// anything else is parsed (parameters, case).
	if ok, _ := jsonMediaType(r.Header.Get("Content-Type")); !ok {
		return "", false // the transport answers the refusal
	}
	if v := r.Header.Get(mcp.HeaderProtocolVersion); v != "" && !validVersion(v) {
		return "", false // likewise
	}
	if a := admitted(r.Context()); a != nil && (a.id != "" || a.sessionless) {
		return a.id, true
	}
	if id, ok := r.Context().Value(pendingKey{}).(string); ok && id != "" {
		return id, true
	}
	return "", false
}

func validVersion(v string) bool {
	for _, s := range mcp.ValidProtocolVersions {
		if s == v {
			return true
		}
	}
	return false
}

// answerAsEventStream answers as an event stream — the notifications a
// handler sent while it ran, then the answer (writeAnswer) — when there
// are notifications and the client accepts a stream (not JSON-only), and
// reports whether it did; otherwise it writes nothing.
func answerAsEventStream(w http.ResponseWriter, r *http.Request, notes []mcp.JSONRPCNotification, writeAnswer func(io.Writer)) bool {
	if len(notes) == 0 || !acceptsEventStream(r) {
		return false
	}
	if jsonOnly, _ := r.Context().Value(jsonOnlyKey{}).(bool); jsonOnly {
		return false
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	for _, n := range notes {
		writeEvent(w, n)
	}
	writeAnswer(w)
	return true
}

func writeEvent(w io.Writer, v any) {
	b, err := marshalJSON(v)
	if err != nil {
		return
	}
	writeEventData(w, b)
}

// writeEventData writes one SSE message event whose data is b (one line).
func writeEventData(w io.Writer, b []byte) {
	_, _ = io.WriteString(w, "event: message\ndata: ")
	_, _ = w.Write(b)
	_, _ = io.WriteString(w, "\n\n")
}

// sessionStateFailed answers a request whose change to the session record
// (logging level, subscription) could not be made: the session has ended
// (404, as for any request to it), a subscription beyond the cap (JSON-RPC
// -32602 naming the cap), or Redis unavailable (503).
func (g *Gateway) sessionStateFailed(w http.ResponseWriter, r *http.Request, msg *message, err error) {
	// The request is counted by serve, with the status written here.
	switch {
	case errors.Is(err, session.ErrNotFound):
		writeHTTPError(w, http.StatusNotFound, mcp.INVALID_REQUEST, "session not found; initialize a new session")
	case errors.Is(err, session.ErrTooManySubscriptions):
		writeRPCError(w, http.StatusOK, msg.ID, mcp.INVALID_PARAMS, tooManySubscriptions(err))
	default:
		g.logUnavailable(r.Context(), err) // the session record: the session store
		w.Header().Set("Retry-After", "5")
		writeHTTPError(w, http.StatusServiceUnavailable, mcp.INTERNAL_ERROR, "temporarily unavailable; retry shortly")
	}
}

// directSession is the ClientSession of one directly served request: the
// session id, what the session record keeps for every replica (logging
// level, resource subscriptions: read and written in Redis, never held
// here) and, only if a handler sends one, a small buffer of notifications.
// It lives as long as the request.
type directSession struct {
	id    string
	ctx   context.Context
	store *session.Store
	once  sync.Once
	notes chan mcp.JSONRPCNotification
	// cancel ends the request's context (callTool: notifications/cancelled).
	cancel context.CancelFunc
	// names reports whether a URI names a resource (Gateway.namesResource):
	// only such a URI is subscribed to.
	names func(string) bool

	mu  sync.Mutex
	err error // the first failed change to the session record
}

var (
	_ server.ClientSession                       = (*directSession)(nil)
	_ server.SessionWithLogging                  = (*directSession)(nil)
	_ server.SessionWithResourceSubscriptionsErr = (*directSession)(nil)
)

func (s *directSession) fail(err error) {
	if err == nil {
		return
	}
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

func (s *directSession) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// SetLogLevel records logging/setLevel's level in the session record
// (mcp-go has validated it).
func (s *directSession) SetLogLevel(level mcp.LoggingLevel) {
	s.fail(s.store.SetLogLevel(s.ctx, s.id, string(level)))
}

// GetLogLevel is the level set on any replica (mcp-go's default, error,
// if none): read when a handler sends a log message.
func (s *directSession) GetLogLevel() mcp.LoggingLevel {
	if s.id == "" {
		return mcp.LoggingLevelError // sessionless: no level was set
	}
	if l, err := s.store.LogLevel(s.ctx, s.id); err == nil && l != "" {
		return mcp.LoggingLevel(l)
	}
	return mcp.LoggingLevelError
}

// resourceNotNamed is the text of a refused subscription to uri, which
// names no resource and matches no template (-32002), on both transports.
func resourceNotNamed(uri string) string {
	return fmt.Sprintf("resource not found: no resource or resource template matches %q (resources/list and resources/templates/list name them)",
		truncate(uri, maxSubscribeURIShown))
}

// tooManySubscriptions is the text of a subscription beyond the session's
// cap (-32602, session.ErrTooManySubscriptions), on both transports.
func tooManySubscriptions(err error) string {
	return "invalid params: " + err.Error() + "; unsubscribe from resources no longer needed"
}

// SubscribeToResourceErr records the subscription in the session record.
// A URI that names no resource and matches no template is refused as
// resources/read refuses it — mcp-go answers the error returned here with
// -32002, resource not found — and takes no place of the session's MaxSubscriptions. A failure of the record is
// answered by direct (sessionStateFailed), not as "resource not found".
func (s *directSession) SubscribeToResourceErr(uri string) error {
	if s.names != nil && !s.names(uri) {
		return fmt.Errorf("%s: %w", resourceNotNamed(uri), server.ErrResourceNotFound)
	}
	s.fail(s.store.Subscribe(s.ctx, s.id, uri))
	return nil
}

// maxSubscribeURIShown bounds the caller's URI echoed in a refusal.
const maxSubscribeURIShown = 256

func (s *directSession) SubscribeToResource(uri string) { _ = s.SubscribeToResourceErr(uri) }

func (s *directSession) UnsubscribeFromResource(uri string) {
	s.fail(s.store.Unsubscribe(s.ctx, s.id, uri))
}

func (s *directSession) SubscribedResources() []string {
	uris, err := s.store.Subscriptions(s.ctx, s.id)
	s.fail(err)
	return uris
}

func (s *directSession) IsSubscribedToResource(uri string) bool {
	return slices.Contains(s.SubscribedResources(), uri)
}

func (s *directSession) SessionID() string { return s.id }
func (s *directSession) Initialize()       {}
func (s *directSession) Initialized() bool { return true }

func (s *directSession) NotificationChannel() chan<- mcp.JSONRPCNotification {
	s.once.Do(func() { s.notes = make(chan mcp.JSONRPCNotification, directNotifications) })
	return s.notes
}

func (s *directSession) drain() []mcp.JSONRPCNotification {
	s.once.Do(func() {}) // orders this read after the channel's creation, if any
	if s.notes == nil {
		return nil
	}
	var out []mcp.JSONRPCNotification
	for {
		select {
		case n := <-s.notes:
			out = append(out, n)
		default:
			return out
		}
	}
}

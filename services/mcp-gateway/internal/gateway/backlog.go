package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// The bound on a legacy (2024-11-05 HTTP+SSE) session's answers waiting
// for its stream. A POST /messages is answered 202 at once and its answer
// goes out on the session's GET /sse stream; until it is written there it
// waits in this replica's memory (mcp-go's SSEServer queues 100 events
// per session and parks a goroutine for each answer beyond). A client that
// posts faster than it reads its stream — or does not read it at all, or
// reads it slowly enough that no single write waits STREAM_WRITE_TIMEOUT —
// could pile up answers without end (brkexhaust finding 2: 250 pings with
// 1 MB ids took the gateway from 41 to 643 MB). A request, on the replica
// that holds the stream, is handed on only while fewer than
// legacyPendingAnswers of the session's requests are unanswered on the
// stream and their bodies add up to at most legacyPendingBytes with its
// own (one request is always taken when none waits: an answer's size
// follows its request's for the echoed id, and a body is at most maxBody);
// otherwise the POST is refused with legacyBacklogStatus. So is any
// request while the session's tool results waiting for the stream add up
// to legacyPendingResultBytes or more.
const (
	legacyPendingAnswers = 32
	legacyPendingBytes   = 1 << 20
)

// legacyPendingResultBytes bounds, by bytes, the tool results of a legacy
// session waiting for its stream: an answer repeats little of its request,
// but a tool's result is the backend's, up to a backend call's 4 MiB gRPC
// receive limit (some 8 MiB once encoded as text and structured content)
// whatever the request's size, so the 32 answers the count allows could
// hold a quarter of a GiB. Each request takes its place in the backlog
// (reserveLegacy) before mcp-go, and so its tool, sees it, under the
// token its answer will carry (every request's id travels as a token of
// its own: exactIDs.tokenize); its tool's result is measured into that place when the tool
// returns (chargeResults), as mcp-go holds it, and counted until the
// answer is written on the stream, or can no longer be (the backlog's
// release, drop and close). The bound acts three times:
//
//   - before the tool runs: a request is refused on its POST
//     (legacyBacklogStatus) while the waiting results are at the bound or
//     past it, so the backend never sees it;
//   - as a tool that is not read-only (no readOnlyHint) is about to run:
//     one such call runs at a time for the session (a second waits for
//     the first to return: backlog.writer), and it runs only while the
//     waiting results are below the bound — otherwise it is answered
//     with resultNotRun and its backend never sees it. Its result, of a
//     size known only once it ran, is then always taken: a call that
//     changes data never runs without its result reaching a client that
//     reads its stream;
//   - after a read-only tool ran: a result that would take the waiting
//     results past the bound is dropped, and the call answered with a
//     JSON-RPC error instead (resultDropped), which suggests calling it
//     again.
//
// One result is always taken when none waits, so that any result a backend
// may send reaches a client that reads its stream; the waiting results are
// then at most the bound, or one result past it, and the one call of a
// tool that is not read-only admitted below the bound may add its own.
const legacyPendingResultBytes = 4 << 20

// legacyBacklogStatus refuses a POST /messages while the session's
// backlog is full: 429 with Retry-After (RFC 6585 §4) and a JSON-RPC error
// carrying the request's id, as a rate-limited request is (codeRateLimited).
// The stream is left open: the answers already accepted still arrive, and
// once the client has read them its next POST is taken.
const legacyBacklogStatus = http.StatusTooManyRequests

// legacyBacklogRetry is the Retry-After of that refusal, in seconds.
const legacyBacklogRetry = 1

func legacyBacklogMessage() string {
	return fmt.Sprintf("too many answers are waiting for this session's SSE stream (at most %d requests, %d bytes of them and %d bytes of tool results are accepted unanswered): read the GET /sse stream, then send again; retry after %ds",
		legacyPendingAnswers, legacyPendingBytes, legacyPendingResultBytes, legacyBacklogRetry)
}

// backlog counts a legacy session's requests handed to mcp-go and not yet
// answered on its stream here.
type backlog struct {
	mu    sync.Mutex
	n     int
	bytes int64
	// results: the bytes of the waiting requests' tool results
	// (chargeResult).
	results int64
	// waiting: the requests handed on and not answered yet, by their
	// token. Every request's id travels through mcp-go as a token of its
	// own (reserveLegacy: exactIDs.tokenize), which mcp-go echoes byte for
	// byte, so that an answer gives back its own request's place and no
	// other, whatever ids the client chose — the same id twice included.
	waiting map[string]*pendingAnswer
	// seq numbers the requests in the order they took their place.
	seq uint64
	// writer is held by the one call of a tool that is not read-only
	// running for the session, from before its tool runs until its
	// result is counted (chargeResults); done is closed when the stream
	// ends (close), which ends the wait for it.
	writer chan struct{}
	done   chan struct{}
	closed bool
}

// newBacklog is the backlog of a legacy session whose stream opens.
func newBacklog() *backlog {
	return &backlog{writer: make(chan struct{}, 1), done: make(chan struct{})}
}

// pendingAnswer is one request waiting for its answer on the stream.
type pendingAnswer struct {
	key    string          // its token, as mcp-go echoes it
	id     json.RawMessage // the client's id, as sent
	seq    uint64          // when it took its place (backlog.seq)
	size   int64           // the request's body
	forget func()          // forgets its exactIDs token
	// result is the bytes of its tool's result, counted in the backlog's
	// results.
	result int64
	// gone: its place was given back (its answer will not be counted).
	gone bool
	// admitted: a call of a tool that is not read-only, let run below the
	// bound (admit): its result is always taken.
	admitted bool
}

// reserve takes a place for a request of size bytes, of the client's id
// id, whose answer will go out on the stream with the token key, and
// reports false when the backlog is full.
func (b *backlog) reserve(key string, id json.RawMessage, size int64, forget func()) (*pendingAnswer, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.n >= legacyPendingAnswers || (b.n > 0 && (b.bytes+size > legacyPendingBytes || b.results >= legacyPendingResultBytes)) {
		return nil, false
	}
	b.seq++
	p := &pendingAnswer{key: key, id: id, seq: b.seq, size: size, forget: forget}
	b.n++
	b.bytes += size
	if b.waiting == nil {
		b.waiting = map[string]*pendingAnswer{}
	}
	b.waiting[key] = p
	return p, true
}

// release gives back the place of the request whose answer, with the
// token id, was written on the stream (or failed to be: the stream then
// ends), forgets its token, and reports whether a request waited with it.
// An answer of another id gives back nothing: it answers no request handed
// on here. (mcp-go answers with a null id only when it cannot encode an
// answer — "internal error"; a tool's result is encoded before
// (chargeResults), and one that cannot be is answered with an error of its
// own, under its token. Should another answer not encode, its request's
// place is held until the stream ends; no other request's is given back.)
func (b *backlog) release(id json.RawMessage) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.waiting[string(id)]
	if p == nil {
		return false
	}
	p.forget()
	b.remove(p)
	return true
}

// drop gives back p's place when its answer will not come on the stream
// (mcp-go refused the message), and forgets its token.
func (b *backlog) drop(p *pendingAnswer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p.forget()
	if !p.gone {
		b.remove(p)
	}
}

// remove takes p out of the backlog.
func (b *backlog) remove(p *pendingAnswer) {
	delete(b.waiting, p.key)
	p.gone = true
	b.n--
	b.bytes -= p.size
	b.results -= p.result
}

// tokenOf returns the token of the request a notifications/cancelled
// names by requestID: the latest waiting request of that id, matched as
// mcp-go matches a cancellation to a request in flight (requestKey: 7, 7.0
// and "7" are one id); nil when none waits.
func (b *backlog) tokenOf(requestID json.RawMessage) json.RawMessage {
	k := requestKey(requestID)
	b.mu.Lock()
	defer b.mu.Unlock()
	var latest *pendingAnswer
	for _, p := range b.waiting {
		if (latest == nil || p.seq > latest.seq) && requestKey(p.id) == k {
			latest = p
		}
	}
	if latest == nil {
		return nil
	}
	return json.RawMessage(latest.key)
}

// cancelling returns the body of a client's notifications/cancelled with
// its params.requestId replaced by the token of the request it names
// (tokenOf), so that mcp-go, which knows the request by its token, cancels
// it (MCP "Cancellation"); the body unchanged when no request of that id
// waits here.
func (b *backlog) cancelling(body []byte) []byte {
	var m, params map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil || json.Unmarshal(m["params"], &params) != nil || len(params["requestId"]) == 0 {
		return body
	}
	token := b.tokenOf(params["requestId"])
	if token == nil {
		return body
	}
	params["requestId"] = token
	pb, err := marshalJSON(params)
	if err != nil {
		return body
	}
	m["params"] = pb
	out, err := marshalJSON(m)
	if err != nil {
		return body
	}
	return out
}

// admit reports whether p, a call of a tool that is not read-only holding
// the backlog's writer, may run: its place is held and the waiting results
// are below legacyPendingResultBytes. Admitted, its result is always taken
// (chargeResult).
func (b *backlog) admit(p *pendingAnswer) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.gone || b.results >= legacyPendingResultBytes {
		return false
	}
	p.admitted = true
	return true
}

// chargeResult counts the result of p's tool, of size bytes, until p's
// answer is written, and reports false — counting nothing — when the
// results already waiting would pass legacyPendingResultBytes with it (one
// is always taken when none waits; an admitted one always is). A request
// whose place was given back meanwhile counts nothing, and its result goes
// on.
func (b *backlog) chargeResult(p *pendingAnswer, size int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.gone {
		return true
	}
	if !p.admitted && b.results > 0 && b.results+size > legacyPendingResultBytes {
		return false
	}
	p.result = size
	b.results += size
	return true
}

// close forgets the tokens of every request still waiting, when the stream
// has ended: mcp-go drops their answers (its session is done), so none
// will come to restore them.
func (b *backlog) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.waiting {
		p.gone = true
		p.forget()
	}
	b.waiting, b.n, b.bytes, b.results = nil, 0, 0, 0
	if !b.closed {
		b.closed = true
		close(b.done)
	}
}

// pending reports the requests waiting and the bytes of their bodies.
func (b *backlog) pending() (int, int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n, b.bytes
}

// legacyRequest is a /messages request on its way to mcp-go on the
// replica that holds its session's stream (reserveLegacy).
type legacyRequest struct {
	// body is what mcp-go is handed: the client's, with an id mcp-go would
	// not echo exactly replaced by exactIDs' token.
	body []byte
	// id is the id mcp-go echoes in the answer: the token, or the client's
	// id; nil for a notification.
	id json.RawMessage
	// b and p are its place in the session's backlog (nil for a
	// notification, or when the stream is not here).
	b *backlog
	p *pendingAnswer
	// forget forgets the token (a no-op without one).
	forget func()
}

// resultChargeKey carries, in the context of a request handed to mcp-go,
// its *legacyRequest, whose tool result chargeResults counts.
type resultChargeKey struct{}

// withResultCharge carries lr in ctx when it holds a place in a backlog.
func withResultCharge(ctx context.Context, lr *legacyRequest) context.Context {
	if lr.b == nil {
		return ctx
	}
	return context.WithValue(ctx, resultChargeKey{}, lr)
}

// chargeResults is the tool middleware that counts a legacy request's tool
// result in its place in the session's backlog (legacyPendingResultBytes).
// A tool that is not read-only runs one call at a time per session, and
// only below the bound (admit; otherwise resultNotRun, the tool not run),
// and its result is always taken; a read-only tool's result that would
// take the waiting results past the bound is answered with resultDropped
// instead. A request of another transport carries no place: nothing is
// measured.
func (g *Gateway) chargeResults(next server.ToolHandlerFunc) server.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		lr, _ := ctx.Value(resultChargeKey{}).(*legacyRequest)
		if lr == nil {
			return next(ctx, req)
		}
		if !g.readOnlyTool(req.Params.Name) {
			b := lr.b
			select {
			case b.writer <- struct{}{}:
			case <-ctx.Done():
				return nil, fmt.Errorf("tool '%s' was not run: the call was cancelled", req.Params.Name)
			case <-b.done:
				return nil, fmt.Errorf("tool '%s' was not run: the session's SSE stream has ended", req.Params.Name)
			}
			// Held until its result is counted: the next such call sees it.
			defer func() { <-b.writer }()
			if !b.admit(lr.p) {
				g.log.InfoContext(ctx, "legacy tool call not run: the session's waiting results are at their bound", "tool", req.Params.Name)
				return nil, resultNotRun(req.Params.Name)
			}
		}
		res, err := next(ctx, req)
		if res == nil || err != nil {
			return res, err
		}
		// As mcp-go holds it until it is written: encoding/json's text,
		// HTML characters escaped.
		out, merr := json.Marshal(res)
		if merr != nil {
			// mcp-go could not encode the answer either, and would send
			// "internal error" with a null id in its place, for which no
			// request's place is given back: the call is answered with
			// this error, under its token, instead.
			g.log.WarnContext(ctx, "legacy tool result could not be encoded", "tool", req.Params.Name, "err", merr)
			return nil, fmt.Errorf("the result of tool '%s' could not be encoded as JSON: %v", req.Params.Name, merr)
		}
		if size := int64(len(out)); !lr.b.chargeResult(lr.p, size) {
			// The size the client would have received: the stream writes
			// the text unescaped (unescapingWriter).
			sent := int64(len(unescapeHTML(out)))
			g.log.InfoContext(ctx, "legacy tool result dropped: the session's waiting results are at their bound", "tool", req.Params.Name, "bytes", sent, "held_bytes", size)
			return nil, resultDropped(req.Params.Name, sent)
		}
		return res, nil
	}
}

// resultDropped is the error a legacy call of a read-only tool
// (annotations readOnlyHint) is answered with when its result, of size
// bytes as the stream would have written it, was dropped (chargeResult):
// calling it again is suggested. A tool that is not read-only never has
// its result dropped (admit).
func resultDropped(tool string, size int64) error {
	return fmt.Errorf("the result of read-only tool '%s' (%d bytes) was dropped: with the tool results already waiting for this session's SSE stream it would pass %d bytes; read the GET /sse stream, then call it again",
		tool, size, legacyPendingResultBytes)
}

// resultNotRun is the error a legacy call of a tool that is not read-only
// is answered with when, as it was about to run, the session's waiting
// results were at their bound (admit): the tool did not run, and may be
// called again once the stream is read.
func resultNotRun(tool string) error {
	return fmt.Errorf("tool '%s' was not run: the tool results waiting for this session's SSE stream are at their bound (%d bytes), and its result could not be delivered; read the GET /sse stream, then call it again",
		tool, legacyPendingResultBytes)
}

// readOnlyTool reports whether the tool of wire name name is annotated
// read-only (readOnlyHint): what serveTools recorded.
func (g *Gateway) readOnlyTool(name string) bool {
	m := g.readOnly.Load()
	return m != nil && (*m)[name]
}

// readOnlyTools records which tools are read-only, by wire name.
func readOnlyTools(tools []server.ServerTool) *map[string]bool {
	m := make(map[string]bool, len(tools))
	for _, t := range tools {
		if h := t.Tool.Annotations.ReadOnlyHint; h != nil && *h {
			m[t.Tool.Name] = true
		}
	}
	return &m
}

// giveBack gives back the request's place and forgets its token: its
// answer will not come on the stream (mcp-go refused the message). The
// token of a request whose answer is written is forgotten as it is
// written (restore, and the backlog's release).
func (lr *legacyRequest) giveBack() {
	if lr.b != nil {
		lr.b.drop(lr.p)
		return
	}
	lr.forget()
}

// reserveLegacy prepares a request for mcp-go: its id is rewritten once,
// here, into a token of its own (exactIDs.tokenize, whatever the id), and
// the same token is what mcp-go is handed, what the answer carries and
// what gives the place back (the backlog's release) — and it takes a place
// in the session's backlog on this replica, with ok false when the backlog
// is full (nothing is kept then). A notification (no id) gets no answer
// and takes no place; a notifications/cancelled is pointed at the token of
// the request it names (cancelling). A session whose stream is not here
// has no backlog (mcp-go refuses the message: giveBack).
func (g *Gateway) reserveLegacy(session string, body []byte, msg message) (lr *legacyRequest, ok bool) {
	v, found := g.backlogs.Load(session)
	if len(msg.ID) == 0 {
		if found && msg.Method == string(mcp.MethodNotificationCancelled) {
			body = v.(*backlog).cancelling(body)
		}
		return &legacyRequest{body: body, forget: func() {}}, true
	}
	// A request that takes a place travels under a token of its own,
	// whatever its id; without a stream here mcp-go refuses the message,
	// and only an id it would not echo is rewritten.
	rewrite := g.ids.rewrite
	if found {
		rewrite = g.ids.tokenize
	}
	out, token, forget := rewrite(body, msg.ID)
	lr = &legacyRequest{body: out, id: msg.ID, forget: forget}
	if token != nil {
		lr.id = token
	}
	if !found {
		return lr, true
	}
	b := v.(*backlog)
	p, ok := b.reserve(string(lr.id), msg.ID, int64(len(body)), forget)
	if !ok {
		forget()
		return nil, false
	}
	lr.b, lr.p = b, p
	return lr, true
}

// refuseBacklog answers a POST /messages refused for its session's backlog.
func (g *Gateway) refuseBacklog(w http.ResponseWriter, method string, id json.RawMessage) {
	g.metrics.request(transportSSE, methodLabel(method), "backlog")
	w.Header().Set("Retry-After", strconv.Itoa(legacyBacklogRetry))
	writeRPCError(w, legacyBacklogStatus, id, codeRateLimited, legacyBacklogMessage())
}

// backlogWriter is the legacy stream's writer as mcp-go sees it: each
// answer (a response: an id and no method; mcp-go writes one event per
// Write) it writes gives back its request's place in the session's
// backlog, once written, or failed to be (the stream then ends).
type backlogWriter struct {
	http.ResponseWriter
	b   *backlog
	log *slog.Logger
}

var eventPrefix = []byte("event: message\ndata: ")

func (w *backlogWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	if data, ok := bytes.CutPrefix(p, eventPrefix); ok {
		var env struct {
			ID     json.RawMessage `json:"id"`
			Method json.RawMessage `json:"method"`
		}
		if json.Unmarshal(bytes.TrimSpace(data), &env) == nil && len(env.ID) > 0 && len(env.Method) == 0 && !w.b.release(env.ID) {
			w.log.Warn("an answer on a legacy SSE stream carries an id no request waiting here has; no place is given back for it", "id_bytes", len(env.ID))
		}
	}
	return n, err
}

func (w *backlogWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *backlogWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// statusSeen notes the HTTP status of the answer written through it: the
// first WriteHeader's, or 200 once anything else is written or flushed (as
// net/http answers). It flushes (http.Flusher) and unwraps
// (http.ResponseController) as the writer it wraps.
type statusSeen struct {
	http.ResponseWriter
	status int
}

func (s *statusSeen) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusSeen) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(p)
}

func (s *statusSeen) Flush() {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusSeen) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// code is the status answered: 200 when nothing was written.
func (s *statusSeen) code() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}

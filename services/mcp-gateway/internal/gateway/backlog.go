package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
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
// otherwise the POST is refused with legacyBacklogStatus.
const (
	legacyPendingAnswers = 32
	legacyPendingBytes   = 1 << 20
)

// legacyBacklogStatus refuses a POST /messages while the session's
// backlog is full: 429 with Retry-After (RFC 6585 §4) and a JSON-RPC error
// carrying the request's id, as a rate-limited request is (codeRateLimited).
// The stream is left open: the answers already accepted still arrive, and
// once the client has read them its next POST is taken.
const legacyBacklogStatus = http.StatusTooManyRequests

// legacyBacklogRetry is the Retry-After of that refusal, in seconds.
const legacyBacklogRetry = 1

func legacyBacklogMessage() string {
	return fmt.Sprintf("too many answers are waiting for this session's SSE stream (at most %d requests and %d bytes of them are accepted unanswered): read the GET /sse stream, then send again; retry after %ds",
		legacyPendingAnswers, legacyPendingBytes, legacyBacklogRetry)
}

// backlog counts a legacy session's requests handed to mcp-go and not yet
// answered on its stream here.
type backlog struct {
	mu    sync.Mutex
	n     int
	bytes int64
	// sizes: the body sizes of the waiting requests, by the id mcp-go
	// echoes (after exactIDs' rewrite).
	sizes map[string][]int64
}

// reserve takes a place for a request of size bytes whose answer will go
// out on the stream, and reports false when the backlog is full.
func (b *backlog) reserve(id json.RawMessage, size int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.n >= legacyPendingAnswers || (b.n > 0 && b.bytes+size > legacyPendingBytes) {
		return false
	}
	b.n++
	b.bytes += size
	if b.sizes == nil {
		b.sizes = map[string][]int64{}
	}
	k := string(id)
	b.sizes[k] = append(b.sizes[k], size)
	return true
}

// release gives back the place of the request whose answer carries id (or,
// with an id it does not know — mcp-go re-encoded it — of any one waiting
// request: the count stays exact).
func (b *backlog) release(id json.RawMessage) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.n == 0 {
		return // an answer the gateway wrote itself (answerOnStream)
	}
	k := string(id)
	if len(b.sizes[k]) == 0 {
		for key, s := range b.sizes {
			if len(s) > 0 {
				k = key
				break
			}
		}
	}
	s := b.sizes[k]
	size := s[len(s)-1]
	if len(s) == 1 {
		delete(b.sizes, k)
	} else {
		b.sizes[k] = s[:len(s)-1]
	}
	b.n--
	b.bytes -= size
}

// pending reports the requests waiting and the bytes of their bodies.
func (b *backlog) pending() (int, int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n, b.bytes
}

// reserveLegacy takes a place in the session's backlog on this replica for
// a request about to be handed to mcp-go (body as handed on, its id
// rewritten), and returns the release to call when mcp-go does not accept
// it, with ok false when the backlog is full. A notification (no id) gets
// no answer and takes no place; a session whose stream is not here has no
// backlog (mcp-go refuses the message).
func (g *Gateway) reserveLegacy(session string, body []byte, msg message) (release func(), ok bool) {
	if len(msg.ID) == 0 {
		return func() {}, true
	}
	v, found := g.backlogs.Load(session)
	if !found {
		return func() {}, true
	}
	b := v.(*backlog)
	rewritten, _ := g.ids.rewrite(body, msg.ID)
	id := envelopeID(rewritten)
	if !b.reserve(id, int64(len(body))) {
		return nil, false
	}
	return func() { b.release(id) }, true
}

// envelopeID is the id of a JSON-RPC message, as encoded in it.
func envelopeID(body []byte) json.RawMessage {
	var env struct {
		ID json.RawMessage `json:"id"`
	}
	_ = json.Unmarshal(body, &env)
	return env.ID
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
	b *backlog
}

var eventPrefix = []byte("event: message\ndata: ")

func (w *backlogWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	if data, ok := bytes.CutPrefix(p, eventPrefix); ok {
		var env struct {
			ID     json.RawMessage `json:"id"`
			Method json.RawMessage `json:"method"`
		}
		if json.Unmarshal(bytes.TrimSpace(data), &env) == nil && len(env.ID) > 0 && len(env.Method) == 0 {
			w.b.release(env.ID)
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

// statusSeen records the status a handler answered with.
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

func (s *statusSeen) Unwrap() http.ResponseWriter { return s.ResponseWriter }

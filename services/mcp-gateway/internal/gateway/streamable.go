package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/tollgate/tollgate/services/mcp-gateway/internal/session"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// pendingKey carries the id of a session being created by this request.
type pendingKey struct{}

// recordKey carries the *negotiation of a Streamable HTTP initialize
// (Gateway.initialize), in which afterInitialize reports a negotiated
// version it could not record.
type recordKey struct{}

// negotiation is what afterInitialize reports to the initialize that
// created the session: err, set when the negotiated version could not be
// recorded. The hook runs within the initialize's request, before
// Gateway.initialize reads err.
type negotiation struct{ err error }

// liveKey carries the *admission of a request admitted to a session.
type liveKey struct{}

// admission is what streamableSession learned of a request it admitted to
// a session, kept in one context value (one allocation, not four).
type admission struct {
	id  string         // the session ("" when sessionless)
	rec session.Record // its record
	// sessionless: a POST served without a session (Gateway.sessionless),
	// at protocol version version.
	sessionless bool
	version     string
	// post: msg and body are the POST's parsed message and body (with an
	// id rewritten by exactIDs), not read or parsed again by direct.
	post bool
	msg  message
	body []byte
	// termErr is the error of a DELETE whose session record Redis did not
	// remove (requestSessions.Terminate), for streamableSession to answer.
	termErr error
	// removed: this DELETE removed the session's record (another replica's
	// DELETE, or the session's expiry, had not removed it first).
	removed bool
}

// admitted returns the request's admission, or nil.
func admitted(ctx context.Context) *admission {
	a, _ := ctx.Value(liveKey{}).(*admission)
	return a
}

// jsonOnlyKey marks a POST whose Accept does not admit an SSE answer: the
// gateway then sends nothing that would turn the answer into a stream.
type jsonOnlyKey struct{}

// lowerEquals reports whether strings.ToLower(s) == lower (lower being
// lower-case ASCII), without making the lower-case copy.
func lowerEquals(s, lower string) bool {
	if len(s) != len(lower) {
		// ToLower keeps an ASCII string's length; a longer s (non-ASCII
		// bytes) might lower to lower only through letters like U+212A
		// KELVIN SIGN: asked of ToLower itself.
		return len(s) > len(lower) && strings.ToLower(s) == lower
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			return strings.ToLower(s) == lower
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// allowStreamable is the Allow of /mcp's 405s and of OPTIONS /mcp: the
// methods the resource supports (RFC 9110 §15.5.6, §9.3.7), POST and —
// with a session — GET and DELETE. A request of the stateless era
// (2026-07-28) is told POST alone: that era has no GET or DELETE.
const allowStreamable = "GET, POST, DELETE"

// streamableSession admits /mcp requests to sessions kept in Redis. It
// creates the session on initialize (bound to the token's subject), and on
// every other request checks that the session is live, belongs to the
// caller and was negotiated at the version the request names. Stateless
// (2026-07-28) requests carry no session and pass to mcp-go, which
// validates them.
func (g *Gateway) streamableSession(next http.Handler) http.Handler {
	// self serves each message of a batch (serveBatch) as a POST of its own.
	var self http.HandlerFunc
	self = func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost, http.MethodGet, http.MethodDelete, http.MethodOptions:
		default:
			// Streamable HTTP has one endpoint with three methods (POST
			// only in the stateless era): another (PUT, PATCH…) is 405 with
			// Allow (RFC 9110 §15.5.6), as /sse and /messages answer
			// theirs; it is no session's business, and a 404 would tell
			// the client its session is gone. So is HEAD: mcp-go answered
			// it 200 with nothing, which says a GET would succeed, where
			// GET opens a session's event stream and is 400 without one.
			// HEAD is GET without content (RFC 9110 §9.3.2), and the
			// endpoint has no representation to GET; the TypeScript SDK's
			// server answers HEAD 405 with Allow: GET, POST, DELETE too.
			// net/http sends no content in answer to HEAD.
			allow, use := allowStreamable, "use POST to send a message, GET to open the event stream, DELETE to end the session"
			if mcp.IsModernProtocol(r.Header.Get(mcp.HeaderProtocolVersion)) {
				allow, use = http.MethodPost, "use POST to send a message"
			}
			g.metrics.requestStatus(transportStreamable, methodLabel(r.Method), http.StatusMethodNotAllowed)
			w.Header().Set("Allow", allow)
			writeHTTPError(w, http.StatusMethodNotAllowed, mcp.INVALID_REQUEST, use)
			return
		}
		claims, _ := tokens.FromContext(r.Context())
		var msg message
		var body []byte
		method := r.Method
		if r.Method == http.MethodPost {
			if g.checkPostMedia(w, r) {
				return
			}
			b, m, ok := readBody(w, r)
			body = b
			if !ok {
				g.metrics.request(transportStreamable, "POST", "too_large")
				return
			}
			if isBatch(body) && g.serveBatch(w, r, body, self) {
				return
			}
			if rf := checkEnvelopeOf(body, m.decoded); rf != nil {
				g.refuse(w, transportStreamable, rf)
				return
			}
			msg = m
			if msg.Method != "" {
				method = msg.Method
			}
			if rewritten, ok := wrapMessageProgressTokens(body, msg); ok {
				// A progress token mcp-go would not echo exactly travels
				// wrapped (progresstoken.go); the message is read again.
				body, msg = rewritten, message{}
				msg.decoded = json.Unmarshal(body, &msg) == nil
				r.Body = newBody(body)
				r.ContentLength = int64(len(body))
			}
			if rewritten, token, forget := g.ids.rewrite(body, msg.ID); token != nil {
				defer forget()
				body = rewritten
				r.Body = newBody(rewritten)
				r.ContentLength = int64(len(rewritten))
				w = &idWriter{ResponseWriter: w, ids: g.ids}
			}
		}
		// badArguments answers a tools/call whose arguments are not an
		// object, or a list request with a cursor (paramsError), or a
		// tools/call naming no tool (toolNameError), once the
		// request is admitted (rate limit, session): a JSON-RPC error
		// answers the request (HTTP 200), so the client matches it to its
		// call by id. A notification (no id) is never answered (JSON-RPC
		// 2.0 §4.1): one the gateway cannot accept is an HTTP 400 whose
		// body is an error without an id (Streamable HTTP, "Sending
		// Messages to the Server").
		badArguments := func() bool {
			e := paramsError(msg, body)
			if e == "" {
				e = g.toolNameError(msg)
			}
			if e == "" {
				return false
			}
			status := http.StatusOK
			if len(msg.ID) == 0 {
				status = http.StatusBadRequest
			}
			g.metrics.request(transportStreamable, methodLabel(method), "invalid_params")
			writeRPCError(w, status, msg.ID, mcp.INVALID_PARAMS, e)
			return true
		}
		if r.Method == http.MethodPost && !acceptsEventStream(r) {
			r = r.WithContext(context.WithValue(r.Context(), jsonOnlyKey{}, true))
		}
		header := r.Header.Get(mcp.HeaderProtocolVersion)
		ctx := r.Context()
		modern := mcp.IsModernProtocol(header) || mcp.IsModernProtocol(msg.Params.Meta.ProtocolVersion())
		initialize := r.Method == http.MethodPost && msg.Method == string(mcp.MethodInitialize)
		if r.Method == http.MethodGet && !modern && g.checkGetMedia(w, r, transportStreamable) {
			return
		}
		id := ""
		if !modern && !initialize && r.Method != http.MethodOptions {
			id = r.Header.Get(server.HeaderKeySessionID)
		}
		sessionless := id == "" && r.Method == http.MethodPost && !modern && !initialize && !g.cfg.SessionRequired
		if sessionless {
			// A request served or refused without a session
			// (Gateway.sessionless): counted by the status answered, its
			// refusals (429, 400, 403…) as much as its answers.
			sw := &statusSeen{ResponseWriter: w}
			w = sw
			defer func() { g.metrics.sessionlessAnswered(methodLabel(method), sw.code()) }()
		}
		// The per-subject rate limit (a local lease for a busy subject, else
		// one round trip) and, for a request in a session other than a GET
		// stream, the session check (from memory in the steady state:
		// Store.Admit). A refused request is not checked further.
		var (
			rec  session.Record
			serr error
		)
		rl, lerr := g.leases.Allow(ctx, rateScope, claims.Subject, g.limit)
		if !g.admitRate(w, r, transportStreamable, method, msg.ID, rl, lerr) {
			return
		}
		if r.Method != http.MethodOptions && g.refuseVersionForm(w, header, msg, modern, sessionless, method) {
			return
		}
		if id != "" && r.Method != http.MethodGet {
			rec, serr = g.sessions.Admit(ctx, id, nil)
		}
		if modern {
			v := header
			if v == "" {
				v = msg.Params.Meta.ProtocolVersion()
			}
			if g.refuseScopes(w, r, transportStreamable, claims, msg, v, "") {
				return
			}
			if r.Method == http.MethodPost && len(msg.ID) == 0 && msg.Method != "" && mcp.IsModernProtocol(header) {
				// A client notification (notifications/cancelled, …) is
				// accepted and dropped. In 2026-07-28 only requests carry
				// the _meta protocol fields (RequestMetaObject), but mcp-go
				// checks a notification as a request: 400 -32602 "missing
				// or invalid _meta field", which ends the Go SDK's
				// connection (go-sdk #1212). Nothing here is tied to a
				// stateless notification: closing a request's stream is its
				// cancellation (MCP 2026-07-28, Cancellation), and mcp-go
				// keys a stateless request in flight by its id alone, so a
				// notifications/cancelled it were handed would end any
				// user's request with that id on this replica. Its
				// Mcp-Method header is checked first, as mcp-go checks a
				// request's (notificationHeaderError).
				if e := notificationHeaderError(r.Header.Get(mcp.HeaderMethod), msg.Method); e != "" {
					g.metrics.requestStatus(transportStreamable, methodLabel(method), http.StatusBadRequest)
					writeRPCError(w, http.StatusBadRequest, nil, mcp.HEADER_MISMATCH, e)
					return
				}
				g.metrics.requestStatus(transportStreamable, methodLabel(method), http.StatusAccepted)
				w.WriteHeader(http.StatusAccepted)
				return
			}
			if badArguments() {
				return
			}
			if e := metaLogLevelError(msg); e != "" && r.Method == http.MethodPost && len(msg.ID) != 0 {
				g.metrics.request(transportStreamable, methodLabel(method), "invalid_params")
				writeRPCError(w, http.StatusBadRequest, msg.ID, mcp.INVALID_PARAMS, e)
				return
			}
			if r.Method == http.MethodPost && len(msg.ID) != 0 && header != "" {
				// mcp-go checks Mcp-Method and Mcp-Name against the body
				// too, but repeats a long header value whole.
				if e := requestHeaderError(r.Header, msg, body); e != "" {
					g.metrics.requestStatus(transportStreamable, methodLabel(method), http.StatusBadRequest)
					writeRPCError(w, http.StatusBadRequest, msg.ID, mcp.HEADER_MISMATCH, e)
					return
				}
				if e := paramHeaderError(r.Header, msg); e != "" {
					g.metrics.requestStatus(transportStreamable, methodLabel(method), http.StatusBadRequest)
					writeRPCError(w, http.StatusBadRequest, msg.ID, mcp.HEADER_MISMATCH, e)
					return
				}
			}
			if r.Method == http.MethodPost && len(msg.ID) != 0 && acceptsEventStream(r) {
				// Its notifications are written before its answer
				// (notifyClient).
				g.serve(transportStreamable, method, withAnswerStream(next), w, r)
				return
			}
			g.serve(transportStreamable, method, next, w, r)
			return
		}
		if initialize {
			if e := initializeParamsError(msg, body); e != "" {
				// HTTP 200, as for other invalid params on /mcp (badArguments).
				g.metrics.request(transportStreamable, methodLabel(method), "invalid_params")
				writeRPCError(w, http.StatusOK, msg.ID, mcp.INVALID_PARAMS, e)
				return
			}
			g.initialize(w, r, claims, msg, header, next)
			return
		}
		if r.Method == http.MethodOptions {
			// An OPTIONS that is no CORS preflight (no Origin, or no
			// Access-Control-Request-Method: the CORS handler passes it
			// on) asks what the endpoint allows (RFC 9110 §9.3.7). mcp-go
			// answered a plain-text 404 "page not found", which says the
			// endpoint does not exist; it is 204 with Allow.
			g.metrics.requestStatus(transportStreamable, methodLabel(method), http.StatusNoContent)
			w.Header().Set("Allow", allowStreamable)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if id == "" {
			switch {
			case g.cfg.SessionRequired || r.Method == http.MethodDelete:
			case r.Method == http.MethodPost:
				g.sessionless(w, r, claims, msg, body, header, method, badArguments, next)
				return
			default:
				// GET: a stream is a session's; without one the server
				// offers none, which a GET is told with 405 (Streamable
				// HTTP, "Listening for Messages from the Server"), the
				// answer clients take for "no stream" and go on. Allow
				// lists the methods of the resource (RFC 9110 §15.5.6),
				// as the endpoint's other 405s and OPTIONS do: GET is one,
				// with a session.
				g.metrics.requestStatus(transportStreamable, methodLabel(method), http.StatusMethodNotAllowed)
				w.Header().Set("Allow", allowStreamable)
				writeHTTPError(w, http.StatusMethodNotAllowed, mcp.INVALID_REQUEST,
					"no server-to-client stream without a session: send initialize, then GET with its Mcp-Session-Id header")
				return
			}
			g.metrics.request(transportStreamable, methodLabel(method), "missing_session")
			writeHTTPError(w, http.StatusBadRequest, mcp.INVALID_REQUEST, "Mcp-Session-Id header is required; send initialize first")
			return
		}
		if r.Method == http.MethodGet {
			// A stream adopted here needs the whole record (adoptSession).
			rec, serr = g.sessions.Get(ctx, id)
		}
		switch {
		case errors.Is(serr, session.ErrNotFound):
			g.metrics.request(transportStreamable, methodLabel(method), "unknown_session")
			writeHTTPError(w, http.StatusNotFound, mcp.INVALID_REQUEST, "session not found; initialize a new session")
			return
		case serr != nil:
			g.unavailable(w, r, transportStreamable, method, serr)
			return
		}
		if !ownedBy(rec, claims) || rec.Transport != session.Streamable {
			// Indistinguishable from an unknown session on purpose.
			g.log.InfoContext(ctx, "session used by another subject, client or transport", "transport", rec.Transport)
			g.metrics.request(transportStreamable, methodLabel(method), "unknown_session")
			writeHTTPError(w, http.StatusNotFound, mcp.INVALID_REQUEST, "session not found; initialize a new session")
			return
		}
		if header != "" && rec.ProtocolVersion != "" && header != rec.ProtocolVersion {
			g.metrics.request(transportStreamable, methodLabel(method), "version_mismatch")
			writeHTTPError(w, http.StatusBadRequest, mcp.INVALID_REQUEST,
				"Mcp-Protocol-Version "+header+" is not the session's negotiated version "+rec.ProtocolVersion)
			return
		}
		adm := &admission{id: id, rec: rec}
		if r.Method == http.MethodPost {
			adm.post, adm.msg, adm.body = true, msg, body
		}
		ctx = context.WithValue(ctx, liveKey{}, adm)
		if r.Method == http.MethodGet {
			var done func()
			if ctx, done = g.openGETStream(ctx, w, id); done == nil {
				return
			}
			defer done()
			// The stream ends when its token is revoked or expires; the
			// session stays, for the client's next token.
			var unauthorize func()
			ctx, unauthorize = g.authorize(ctx, transportStreamable, claims)
			defer unauthorize()
			g.metrics.streams.WithLabelValues(transportStreamable).Inc()
			defer g.metrics.streams.WithLabelValues(transportStreamable).Dec()
		}
		if r.Method == http.MethodDelete {
			// Counted by its outcome (requestSessions.Terminate): deleted
			// once the record is gone, delete_failed when Redis refused
			// (the session lives on). It was counted deleted before it was
			// served. mcp-go answers a failed Terminate 500 "Session
			// termination failed: <the Redis error>" in plain text; the
			// answer is held (it is empty or one line) and a failed
			// delete answered as any Redis outage is: 503 with
			// Retry-After and the JSON-RPC error (unavailable), which
			// tells the client to send the DELETE again.
			buf := &heldResponse{header: http.Header{}}
			status := serveUncounted(ctx, next, buf, r)
			if adm.termErr != nil {
				g.metrics.sessions.WithLabelValues(transportStreamable, "delete_failed").Inc()
				g.unavailable(w, r, transportStreamable, method, adm.termErr)
				return
			}
			g.metrics.requestStatus(transportStreamable, methodLabel(method), status)
			switch {
			case status < 300 && adm.removed:
				// Counted once per session: two DELETEs racing on two
				// replicas both answer 200, but only one removed it.
				g.metrics.sessions.WithLabelValues(transportStreamable, "deleted").Inc()
			case status >= 500:
				g.metrics.sessions.WithLabelValues(transportStreamable, "delete_failed").Inc()
			}
			buf.writeTo(w, status)
			return
		}
		if badArguments() || g.refuseScopes(w, r, transportStreamable, claims, msg, rec.ProtocolVersion, rec.ClientName) {
			return
		}
		g.serveCtx(ctx, transportStreamable, method, next, w, r)
	}
	return self
}

// endReplacedSession ends the session an initialize names in
// Mcp-Session-Id, before the new session is created, when it is a live
// Streamable HTTP session of the caller's (subject and client): a client
// that initializes again replaces its session, and the old one takes no
// place of SESSION_LIMIT_PER_SUBJECT. An unknown, expired or another's
// session id is ignored — nothing is ended, and the answer is the same
// (a new session), so it tells nothing of whether that session exists.
// Initialize is served as a new session either way, as mcp-go's server
// does: Streamable HTTP (2025-06-18/2025-11-25, "Session Management")
// says a client starts a session with initialize and does not require a
// server to refuse one that carries an id, and the mcp-go client takes any
// 4xx on initialize for a legacy HTTP+SSE server. It reports false when
// it answered (Redis unavailable).
func (g *Gateway) endReplacedSession(w http.ResponseWriter, r *http.Request, claims *tokens.Claims, msg message, id string) bool {
	ctx := r.Context()
	rec, err := g.sessions.Admit(ctx, id, nil)
	switch {
	case errors.Is(err, session.ErrNotFound):
		return true
	case err != nil:
		g.unavailableFor(w, r, transportStreamable, msg.Method, msg.ID, err)
		return false
	case !ownedBy(rec, claims) || rec.Transport != session.Streamable:
		g.log.InfoContext(ctx, "initialize named a session of another subject, client or transport; ignored", "transport", rec.Transport)
		return true
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	removed, err := g.endSession(dctx, id)
	if err != nil {
		g.unavailableFor(w, r, transportStreamable, msg.Method, msg.ID, err)
		return false
	}
	g.mcp.UnregisterSession(dctx, id)
	if removed {
		g.metrics.sessions.WithLabelValues(transportStreamable, "deleted").Inc()
	}
	return true
}

// initialize opens a session: an unsupported MCP-Protocol-Version header is
// refused with 400 (Streamable HTTP, "Protocol Version Header"), and a
// session whose initialize mcp-go refuses (a JSON-RPC error answer) is
// deleted again before the answer leaves, without its Mcp-Session-Id, so
// that a refused initialize leaves nothing behind. So is the session of
// an initialize mcp-go answered but whose negotiation afterInitialize
// could not record: its answer is withheld and the initialize refused
// with 503 and Retry-After.
func (g *Gateway) initialize(w http.ResponseWriter, r *http.Request, claims *tokens.Claims, msg message, header string, next http.Handler) {
	ctx := r.Context()
	if header != "" && !mcp.IsValidProtocolVersion(header) {
		g.metrics.request(transportStreamable, methodLabel(msg.Method), "unsupported_version")
		writeRPCError(w, http.StatusBadRequest, msg.ID, mcp.INVALID_REQUEST, "unsupported MCP-Protocol-Version "+strconv.Quote(header)+"; supported: "+strings.Join(mcp.ValidProtocolVersions, ", "))
		return
	}
	if old := r.Header.Get(server.HeaderKeySessionID); old != "" && !g.endReplacedSession(w, r, claims, msg, old) {
		return
	}
	id := session.NewID()
	err := g.sessions.Create(ctx, id, session.Record{Subject: claims.Subject, ClientID: claims.ClientID, Transport: session.Streamable})
	if err != nil {
		g.createFailed(w, r, transportStreamable, msg.Method, msg.ID, err)
		return
	}
	// The answer to initialize is one small JSON message: hold it until
	// it is known whether the session stands.
	buf := &heldResponse{header: http.Header{}}
	neg := &negotiation{}
	sctx := context.WithValue(context.WithValue(ctx, pendingKey{}, id), recordKey{}, neg)
	status := serveUncounted(sctx, next, buf, r)
	if refused := buf.refused(); refused || neg.err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		if _, err := g.sessions.Delete(dctx, id); err != nil {
			g.log.WarnContext(ctx, "could not delete the session of a refused initialize", "err", err)
		}
		cancel()
		g.mcp.UnregisterSession(ctx, id)
		if !refused {
			// mcp-go answered, but what it negotiated is not recorded
			// (afterInitialize): the session, as every replica reads it,
			// has no version, client or capabilities. The answer is
			// withheld and the initialize refused with 503 and
			// Retry-After, as when the session cannot be created, without
			// an Mcp-Session-Id: the client sees at once that it has no
			// session and initializes again.
			g.unavailableFor(w, r, transportStreamable, msg.Method, msg.ID, neg.err) // counted there, once
			return
		}
		buf.header.Del(server.HeaderKeySessionID)
		buf.clientTerms()
	} else {
		g.metrics.sessions.WithLabelValues(transportStreamable, "created").Inc()
	}
	g.metrics.requestStatus(transportStreamable, methodLabel(msg.Method), status)
	for k, v := range buf.header {
		w.Header()[k] = v
	}
	if buf.status == 0 {
		buf.status = http.StatusOK
	}
	w.WriteHeader(buf.status)
	_, _ = w.Write(buf.body.Bytes())
}

// heldResponse keeps a whole response in memory.
type heldResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (h *heldResponse) Header() http.Header { return h.header }
func (h *heldResponse) WriteHeader(code int) {
	if h.status == 0 {
		h.status = code
	}
}
func (h *heldResponse) Write(p []byte) (int, error) { return h.body.Write(p) }
func (h *heldResponse) Flush()                      {}

// writeTo sends the held response on w with status.
func (h *heldResponse) writeTo(w http.ResponseWriter, status int) {
	for k, v := range h.header {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
	_, _ = w.Write(h.body.Bytes())
}

// refused reports whether the held answer is a JSON-RPC error (as JSON, or
// as the data of an event) rather than a result.
func (h *heldResponse) refused() bool {
	if h.status != 0 && h.status != http.StatusOK {
		return true
	}
	data := h.body.Bytes()
	if strings.HasPrefix(h.header.Get("Content-Type"), "text/event-stream") {
		for _, line := range bytes.Split(data, []byte("\n")) {
			if d, ok := bytes.CutPrefix(line, []byte("data:")); ok {
				data = bytes.TrimSpace(d)
			}
		}
	}
	var m struct {
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return true
	}
	return len(m.Error) > 0 || len(m.Result) == 0
}

// beforeInitialize has an initialize over Streamable HTTP
// (Gateway.initialize) that asks for a version not served on it —
// 2024-11-05, whose transport is HTTP+SSE (/sse), or one unknown —
// negotiate the newest served there, 2025-11-25: "If the server supports
// the requested protocol version, it MUST respond with the same version.
// Otherwise, the server MUST respond with another protocol version it
// supports. This SHOULD be the latest version supported by the server"
// (MCP 2025-11-25, Lifecycle, "Version Negotiation"); a client that cannot
// speak it disconnects. mcp-go answered 2024-11-05 with 2024-11-05, a
// session of a revision without this transport. Without a version the
// request is 2025-03-26's, as mcp-go takes it (Transports, "Protocol
// Version Header"); a legacy initialize (/messages) is left as asked.
func beforeInitialize(ctx context.Context, _ any, req *mcp.InitializeRequest) {
	if _, streamable := ctx.Value(recordKey{}).(*negotiation); !streamable {
		return
	}
	if v := req.Params.ProtocolVersion; v != "" && !slices.Contains(sessionlessVersions, v) {
		req.Params.ProtocolVersion = sessionlessVersions[0]
	}
}

// afterInitialize records what initialize negotiated, so that every replica
// can check later requests against it.
func (g *Gateway) afterInitialize(ctx context.Context, _ any, req *mcp.InitializeRequest, res *mcp.InitializeResult) {
	cs := server.ClientSessionFromContext(ctx)
	if cs == nil || cs.SessionID() == "" {
		return
	}
	// Other replicas restore what identifies the client (name, version,
	// title). Its icons — data: URIs can be kilobytes, in every session's
	// record for as long as it lives — and its description and website
	// are never read on the server side, so they are not stored.
	ci := req.Params.ClientInfo
	info, _ := json.Marshal(mcp.Implementation{Name: ci.Name, Version: ci.Version, Title: ci.Title})
	// Of the capabilities, the standard ones (roots, sampling, elicitation,
	// tasks) are kept; experimental capabilities and extensions are free
	// maps — up to the 1 MiB body, in every session's record — that the
	// gateway, which advertises no extension, never reads.
	cc := req.Params.Capabilities
	cc.Experimental, cc.Extensions = nil, nil
	caps, _ := json.Marshal(cc)
	id := cs.SessionID()
	err := g.recordNegotiated(ctx, id, res.ProtocolVersion, string(info), string(caps))
	if err == nil {
		return
	}
	ended, legacy := g.localSSE.Load(id)
	if !legacy {
		// A Streamable HTTP initialize: its answer is held
		// (Gateway.initialize), which refuses it with 503 instead.
		if neg, ok := ctx.Value(recordKey{}).(*negotiation); ok {
			neg.err = err
			return
		}
		g.log.WarnContext(ctx, "could not record the negotiated session", "err", err)
		return
	}
	// A legacy session whose version is not recorded would refuse every
	// request ("session not initialized") and every initialize (its claim
	// is held) until the claim expires, while its client, answered, takes
	// it for initialized. Its stream is ended instead, before the answer
	// is written to it (this hook runs before mcp-go queues the answer):
	// the client sees the stream close and opens a new session with GET
	// /sse, as after any lost stream. The session ends with its stream.
	g.log.WarnContext(ctx, "could not record the negotiated session; its legacy stream is ended so that the client reconnects", "err", err)
	g.streams.end(redisx.Hash(id))
	select {
	case <-ended.(chan struct{}):
	case <-time.After(3 * time.Second):
	}
}

// negotiatedRetries are the pauses between attempts to record what
// initialize negotiated (recordNegotiated): a brief Redis failure (a
// failover, a dropped connection) does not cost the session. Together
// with the attempts they fit in recordNegotiated's 3 s bound.
var negotiatedRetries = []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 600 * time.Millisecond}

// recordNegotiated records what initialize negotiated (Store.Negotiated),
// retried after negotiatedRetries, within 3 s in all; it returns the last
// error.
func (g *Gateway) recordNegotiated(ctx context.Context, id, version, info, caps string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	err := g.sessions.Negotiated(ctx, id, version, info, caps)
	for _, pause := range negotiatedRetries {
		if err == nil {
			return nil
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return err
		}
		err = g.sessions.Negotiated(ctx, id, version, info, caps)
	}
	return err
}

// adoptSession runs when mcp-go registers a session on this replica. A
// session mcp-go's transport registers here (a GET stream it serves when
// listen does not) for a session initialized on another replica is an
// initialized session of the fleet: mark it so, with what was negotiated,
// so that notifications for it are delivered. The gateway's own stream
// sessions (listenSession) are initialized already.
func (g *Gateway) adoptSession(ctx context.Context, cs server.ClientSession) {
	g.metrics.registered.Inc()
	adm := admitted(ctx)
	if adm == nil || adm.rec.ProtocolVersion == "" || cs.Initialized() {
		return
	}
	rec := adm.rec
	cs.Initialize()
	if v, ok := cs.(interface{ SetProtocolVersion(string) }); ok {
		v.SetProtocolVersion(rec.ProtocolVersion)
	}
	if c, ok := cs.(interface{ SetClientInfo(mcp.Implementation) }); ok && rec.ClientInfo != "" {
		var info mcp.Implementation
		if json.Unmarshal([]byte(rec.ClientInfo), &info) == nil {
			c.SetClientInfo(info)
		}
	}
	if l, ok := cs.(server.SessionWithLogging); ok && rec.LogLevel != "" {
		l.SetLogLevel(mcp.LoggingLevel(rec.LogLevel))
	}
	if c, ok := cs.(interface{ SetClientCapabilities(mcp.ClientCapabilities) }); ok && rec.Capabilities != "" {
		var caps mcp.ClientCapabilities
		if json.Unmarshal([]byte(rec.Capabilities), &caps) == nil {
			c.SetClientCapabilities(caps)
		}
	}
}

// resolver gives mcp-go a session-id manager bound to each request.
type resolver struct{ g *Gateway }

func (rs resolver) ResolveSessionIdManager(r *http.Request) server.SessionIdManager {
	if r == nil {
		// mcp-go's idle sweep and shutdown: this replica forgets the
		// session, which lives on in Redis for the others.
		return forgetOnly{}
	}
	return &requestSessions{g: rs.g, ctx: r.Context()}
}

// requestSessions is the session-id manager of one admitted request.
type requestSessions struct {
	g   *Gateway
	ctx context.Context
}

// Generate returns the id the middleware stored for this initialize.
func (m *requestSessions) Generate() string {
	if id, ok := m.ctx.Value(pendingKey{}).(string); ok {
		return id
	}
	// Not reachable through the middleware; an unstored id is never valid.
	return session.NewID()
}

// Validate accepts the session the middleware admitted the request to.
func (m *requestSessions) Validate(id string) (bool, error) {
	if a := admitted(m.ctx); a != nil && a.id != "" && a.id == id {
		return false, nil
	}
	return false, session.ErrNotFound
}

// Terminate ends the session for every replica (DELETE). An error of
// Redis is kept in the request's admission (termErr), which
// streamableSession answers with 503 in place of mcp-go's 500.
func (m *requestSessions) Terminate(id string) (bool, error) {
	a := admitted(m.ctx)
	if a == nil || a.id != id {
		return false, session.ErrNotFound
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx), 3*time.Second)
	defer cancel()
	removed, err := m.g.endSession(ctx, id)
	if err != nil {
		a.termErr = err
		return false, err
	}
	a.removed = removed
	return false, nil
}

// endSession deletes a Streamable HTTP session's record and announces its
// end to every replica (announceTermination). It fails only when the
// record was not deleted. When the record is gone but not its place in
// the (subject, client)'s index of live sessions (Store.Delete's second
// command), the session has ended all the same, and every replica must
// hear so, or one that admitted it from memory would go on admitting it
// until its renewal is due; the failure is logged, and the place frees
// itself when its score, the session's expiry, passes. removed reports
// whether this call removed the record (false: it was already gone — a
// DELETE on another replica, or its expiry — and the end is announced
// again, harmlessly), so that the session is counted deleted once.
func (g *Gateway) endSession(ctx context.Context, id string) (removed bool, err error) {
	deleted, err := g.sessions.Delete(ctx, id)
	switch {
	case err != nil && !deleted:
		return false, err
	case err != nil:
		g.log.WarnContext(ctx, "session ended, but its place in the per-subject session index was not removed; it frees when the session would have expired", "err", err)
	}
	g.announceTermination(ctx, id)
	return deleted, nil
}

// evicted finishes the end of a session the store chose to end to make
// room for a new one of its (subject, client) (session.Store.
// EvictIdleAfter): its record is already deleted; every replica is told,
// as for a DELETE, so that none admits it from memory and its open
// streams close. A later request with its id gets 404 and the client
// initializes again (Streamable HTTP, "Session Management"). When the
// delete failed, the session stays (still counted against the cap) and
// the initialize that needed its place is answered 503.
func (g *Gateway) evicted(ctx context.Context, e session.Evicted) {
	if e.Err != nil {
		g.log.WarnContext(ctx, "could not end an idle session to make room for a new one at the session limit; it stays, and the new one is refused", "err", e.Err)
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), terminationAckWait+time.Second)
	g.announceTerminationHash(actx, e.Hash)
	cancel()
	if e.Ended {
		g.metrics.sessions.WithLabelValues(e.Transport, "evicted").Inc()
		g.log.InfoContext(ctx, "ended the least recently used idle session of a subject and client at the session limit",
			"transport", e.Transport, "limit", g.cfg.SessionLimitPerSubject, "idle_at_least", g.cfg.SessionEvictIdleAfter.String())
	}
}

type forgetOnly struct{}

func (forgetOnly) Generate() string               { return session.NewID() }
func (forgetOnly) Validate(string) (bool, error)  { return false, session.ErrNotFound }
func (forgetOnly) Terminate(string) (bool, error) { return false, nil }

// streamSet tracks the open server-to-client streams of this replica, so
// that a session ended elsewhere, or a shutdown, closes them, and messages
// for a session reach the replica that holds its stream.
type streamSet struct {
	mu     sync.Mutex
	byHash map[string]*localStreams
	closed bool
}

type localStreams struct {
	id      string // the session id, known only to the replicas holding a stream
	cancels map[*int]context.CancelFunc
}

func newStreamSet() *streamSet { return &streamSet{byHash: map[string]*localStreams{}} }

// open returns a context that ends when the session ends anywhere, or on
// shutdown; done must be called when the stream closes.
func (s *streamSet) open(ctx context.Context, id string) (context.Context, func()) {
	return s.openAtMost(ctx, id, 0)
}

// openAtMost is open for a session that may hold at most limit streams on
// this replica (0: no limit). Beyond it, it opens nothing and returns a
// nil done.
func (s *streamSet) openAtMost(ctx context.Context, id string, limit int) (context.Context, func()) {
	h := redisx.Hash(id)
	s.mu.Lock()
	if l := s.byHash[h]; limit > 0 && l != nil && len(l.cancels) >= limit {
		s.mu.Unlock()
		return ctx, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	tok := new(int)
	if s.closed {
		cancel()
	}
	if s.byHash[h] == nil {
		s.byHash[h] = &localStreams{id: id, cancels: map[*int]context.CancelFunc{}}
	}
	s.byHash[h].cancels[tok] = cancel
	s.mu.Unlock()
	return ctx, func() {
		cancel()
		s.mu.Lock()
		if l := s.byHash[h]; l != nil {
			delete(l.cancels, tok)
			if len(l.cancels) == 0 {
				delete(s.byHash, h)
			}
		}
		s.mu.Unlock()
	}
}

// session returns the id of the session whose id hashes to h, if this
// replica holds a stream of it.
func (s *streamSet) session(h string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.byHash[h]; l != nil {
		return l.id, true
	}
	return "", false
}

// end closes the streams of the session whose id hashes to h.
func (s *streamSet) end(h string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.byHash[h]; l != nil {
		for _, cancel := range l.cancels {
			cancel()
		}
	}
}

func (s *streamSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, l := range s.byHash {
		for _, cancel := range l.cancels {
			cancel()
		}
	}
}

// goDecodeError is mcp-go's refusal of initialize params whose JSON type
// is wrong: encoding/json's message, naming Go types.
var goDecodeError = regexp.MustCompile(`cannot unmarshal (\w+)(?: \S+)? into Go struct field \S*?\.(params(?:\.\w+)+) of type (.+)$`)

// clientTerms rewrites a refused initialize whose params have a wrong JSON
// type into the client's terms: which field, what JSON type it must be
// and what was sent ("params.capabilities.roots must be a JSON object,
// not a string"), instead of encoding/json's Go type names. Other
// refusals are left as they are.
func (h *heldResponse) clientTerms() {
	body := h.body.Bytes()
	prefix, data, suffix := []byte(nil), body, []byte(nil)
	if strings.HasPrefix(h.header.Get("Content-Type"), "text/event-stream") {
		i := bytes.Index(body, []byte("data:"))
		if i < 0 {
			return
		}
		end := bytes.IndexByte(body[i:], '\n')
		if end < 0 {
			end = len(body) - i
		}
		prefix, data, suffix = body[:i+len("data:")], bytes.TrimSpace(body[i+len("data:"):i+end]), body[i+end:]
	}
	var msg map[string]json.RawMessage
	var rpcErr struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data,omitempty"`
	}
	if json.Unmarshal(data, &msg) != nil || json.Unmarshal(msg["error"], &rpcErr) != nil {
		return
	}
	m := goDecodeError.FindStringSubmatch(rpcErr.Message)
	if m == nil {
		return
	}
	rpcErr.Message = "invalid initialize request: " + wrongType(m[1], m[2], m[3])
	// marshalJSON keeps msg's id as it stands: a token (an id written
	// otherwise than encoding/json writes it unescaped, "\u003cb\u003e"
	// among them, was rewritten into one before initialize: exactIDs), or
	// an id that survives exactly that re-encoding
	// (TestHTMLEscapedIDsAreEchoedOnRefusedInitialize).
	msg["error"], _ = marshalJSON(rpcErr)
	out, err := marshalJSON(msg)
	if err != nil {
		return
	}
	h.body.Reset()
	h.body.Write(prefix)
	if prefix != nil {
		h.body.WriteByte(' ')
	}
	h.body.Write(out)
	h.body.Write(suffix)
	h.header.Del("Content-Length")
}

// wrongType says, in the client's terms, why field (params.name, …) did
// not decode into goType: "params.name must be a JSON string, not a
// number" — or, for a number of the right JSON type that the Go type
// cannot hold (1e400 into float64, 1.5 or 2^64 into an integer), which
// range it must be in: JSON bounds no number (RFC 8259 §6 leaves the
// range to implementations), so the sender broke no JSON rule.
func wrongType(kind, field, goType string) string {
	want := jsonTypeOfGo(goType)
	if kind == "number" && want == "a JSON number" {
		if bits, ok := strings.CutPrefix(goType, "float"); ok {
			return fmt.Sprintf("%s holds a number beyond the range of a %s-bit floating-point number", field, bits)
		}
		return fmt.Sprintf("%s must be an integer within the range of %s", field, goType)
	}
	return fmt.Sprintf("%s must be %s, not %s", field, want, jsonArticle(kind))
}

// jsonTypeOfGo names the JSON type a Go type decodes from.
func jsonTypeOfGo(t string) string {
	switch {
	case t == "string":
		return "a JSON string"
	case t == "bool":
		return "a JSON boolean"
	case strings.HasPrefix(t, "[]"):
		return "a JSON array"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"), strings.HasPrefix(t, "float"):
		return "a JSON number"
	}
	return "a JSON object" // structs, maps and named types (mcp.Implementation, …)
}

// jsonArticle is encoding/json's name of a JSON value's type with its article.
func jsonArticle(kind string) string {
	switch kind {
	case "object", "array":
		return "an " + kind
	case "bool":
		return "a boolean"
	}
	return "a " + kind
}

// notificationHeaderError is the -32020 message for a stateless
// (2026-07-28) client notification whose Mcp-Method header is absent or
// is not its method ("" when it is). SEP-2243 (MCP 2026-07-28, Streamable
// HTTP, "Standard Headers") requires Mcp-Method on every POST, equal to
// the body's method; mcp-go checks it on requests (400 -32020 "header
// mismatch: …") but the gateway answers a stateless notification itself
// (202) before mcp-go sees it. The answer is mcp-go's, except that a
// header value longer than MaxMethodBytes is counted, not repeated (the
// body's method is bounded by the envelope check). Mcp-Name is only for
// tools/call, prompts/get and resources/read, never a notification.
func notificationHeaderError(header, method string) string {
	e := mcp.HeaderMismatchError{Header: mcp.HeaderMethod}
	switch {
	case header == "":
		e.Reason = "missing required header"
	case header == method:
		return ""
	case len(header) > MaxMethodBytes:
		e.Reason = fmt.Sprintf("header value (%d bytes; no MCP method is longer than %d) does not match body value %q", len(header), MaxMethodBytes, method)
	default:
		e.Reason = fmt.Sprintf("header value %q does not match body value %q", header, method)
	}
	return e.Error()
}

// requestHeaderError is the -32020 message for a stateless (2026-07-28)
// request whose Mcp-Method, or Mcp-Name (tools/call, prompts/get,
// resources/read), header is longer than the body's value may be, so
// cannot match it ("" otherwise: mcp-go checks the rest, SEP-2243, and
// answers as this does). mcp-go's answer repeats the header's value,
// decoded, up to the listener's 64 KiB header limit; this one counts it.
// The body's method and name are bounded before this (the envelope check,
// echoedError), so the answer is too.
func requestHeaderError(h http.Header, msg message, body []byte) string {
	hm := h.Get(mcp.HeaderMethod)
	if len(hm) > MaxMethodBytes {
		return notificationHeaderError(hm, msg.Method)
	}
	method := mcp.MCPMethod(msg.Method)
	if hm != msg.Method || !mcp.MethodRequiresNameHeader(method) {
		return ""
	}
	bound, what := MaxNameBytes, "a name"
	if method == mcp.MethodResourcesRead {
		bound, what = MaxURIBytes, "a resource URI"
	}
	hn := h.Get(mcp.HeaderName)
	if len(hn) <= bound {
		return ""
	}
	decoded, ok := mcp.DecodeHeaderValue(hn)
	if !ok || len(decoded) <= bound {
		return "" // mcp-go's answer ("invalid Base64 encoding", or a short value)
	}
	var p struct {
		Params json.RawMessage `json:"params"`
	}
	if json.Unmarshal(body, &p) != nil {
		return ""
	}
	name, ok := mcp.ExtractHeaderName(method, p.Params)
	if !ok {
		return ""
	}
	size := fmt.Sprintf("%d bytes", len(decoded))
	if decoded != hn {
		size += " decoded"
	}
	return mcp.HeaderMismatchError{Header: mcp.HeaderName,
		Reason: fmt.Sprintf("header value (%s; %s is at most %d) does not match body value %q", size, what, bound, name)}.Error()
}

// paramHeaderError is the -32020 message for a stateless (2026-07-28)
// tools/call with an Mcp-Param-* header longer than MaxParamHeaderBytes
// ("" when it has none). Such a header mirrors a tool argument its input
// schema annotates x-mcp-header (SEP-2243); mcp-go checks it against the
// argument and, when they differ, answers with the header's value whole
// ("header value %q does not match body value"), up to the listener's
// 64 KiB header limit. No tool the gateway serves annotates one today (the
// registry's schemas come from proto descriptors), so mcp-go ignores these
// headers; the bound holds whatever a later tool annotates.
func paramHeaderError(h http.Header, msg message) string {
	if msg.Method != string(mcp.MethodToolsCall) {
		return ""
	}
	for name, values := range h {
		if len(name) <= len(mcp.HeaderParamPrefix) || !strings.EqualFold(name[:len(mcp.HeaderParamPrefix)], mcp.HeaderParamPrefix) {
			continue
		}
		for _, v := range values {
			if len(v) > MaxParamHeaderBytes {
				return mcp.HeaderMismatchError{Header: name,
					Reason: fmt.Sprintf("header value (%d bytes) is longer than a parameter header may be (%d bytes)", len(v), MaxParamHeaderBytes)}.Error()
			}
		}
	}
	return ""
}

// refuseVersionForm answers a /mcp request whose Mcp-Protocol-Version
// header, or — on a stateless (2026-07-28) request — whose _meta
// io.modelcontextprotocol/protocolVersion, is no protocol version, and
// reports whether it did: 400 with a JSON-RPC error naming the supported
// versions and the value's length, never the value (versionError). Every
// answer about a version repeated it: mcp-go's stateless checks ("header
// … does not match request … ", "unsupported protocol version: %q", with
// the value in data.requested too) and the gateway's own (initialize's
// unsupported header, a session's negotiated version) — up to the
// listener's 64 KiB header limit, or the body's 1 MiB for the _meta value.
// A value of the form passes on to those checks, which repeat its 10
// bytes.
func (g *Gateway) refuseVersionForm(w http.ResponseWriter, header string, msg message, modern, sessionless bool, method string) bool {
	what, size := "", 0
	switch meta := msg.Params.Meta.ProtocolVersion(); {
	case header != "" && !versionForm(header):
		what, size = "the "+mcp.HeaderProtocolVersion+" header", len(header)
	case modern && meta != "" && !versionForm(meta):
		what, size = "_meta "+mcp.MetaKeyProtocolVersion, len(meta)
	default:
		return false
	}
	g.metrics.request(transportStreamable, methodLabel(method), "unsupported_version")
	text := versionError(what, size, "supported: ", mcp.ValidProtocolVersions)
	if !modern {
		if sessionless {
			// Only the versions served without a session, as a
			// version of the form not served so is answered
			// (sessionlessVersionError).
			text = versionError(what, size, "supported without a session: ", sessionlessVersions)
		}
		// As initialize's unsupported header is answered.
		writeRPCError(w, http.StatusBadRequest, msg.ID, mcp.INVALID_REQUEST, text)
		return true
	}
	// As mcp-go answers a stateless request's unsupported version
	// (UnsupportedProtocolVersionError), without data.requested.
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusBadRequest)
	writeJSON(w, map[string]any{
		"jsonrpc": "2.0", "id": answerID(msg.ID),
		"error": map[string]any{"code": mcp.UNSUPPORTED_PROTOCOL_VERSION, "message": text,
			"data": map[string]any{"supported": mcp.ValidProtocolVersions}},
	})
	return true
}

// versionError is the message for a protocol version value (what: where it
// was sent) of size bytes that is no version, naming the versions
// supported where it was sent.
func versionError(what string, size int, supportedWhere string, supported []string) string {
	return fmt.Sprintf("unsupported protocol version: %s (%d bytes) is not a protocol version, a date YYYY-MM-DD; %s%s",
		what, size, supportedWhere, strings.Join(supported, ", "))
}

// versionForm reports whether v has the form of an MCP protocol version: a
// date, YYYY-MM-DD (MCP, Versioning).
func versionForm(v string) bool {
	if len(v) != len("2006-01-02") {
		return false
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case i == 4 || i == 7:
			if c != '-' {
				return false
			}
		case c < '0' || c > '9':
			return false
		}
	}
	return true
}

// metaLogLevelError is the -32602 message for a stateless (2026-07-28)
// request whose _meta io.modelcontextprotocol/logLevel is not a
// LoggingLevel ("" when it is one, null or absent). The schema's
// RequestMetaObject types it LoggingLevel, the RFC 5424 names, and MCP's
// Logging ("Error Handling") answers an invalid log level with -32602
// Invalid params; mcp-go read any other value as no level and the request
// silently got no log messages. The value is named when it is a short
// string, counted when longer than MaxLevelBytes, typed otherwise: never
// repeated whole.
func metaLogLevelError(msg message) string {
	if msg.Params.Meta == nil {
		return ""
	}
	v, ok := msg.Params.Meta.AdditionalFields[mcp.MetaKeyLogLevel]
	if !ok || v == nil {
		return ""
	}
	got := ""
	switch x := v.(type) {
	case string:
		if _, known := logLevels[mcp.LoggingLevel(x)]; known {
			return ""
		}
		if len(x) > MaxLevelBytes {
			got = fmt.Sprintf("a string of %d bytes", len(x))
		} else {
			got = strconv.Quote(x)
		}
	case bool:
		got = "a boolean"
	case float64, json.Number:
		got = "a number"
	case []any:
		got = "an array"
	default:
		got = "an object"
	}
	return fmt.Sprintf("invalid params: _meta %s must be a logging level (debug, info, notice, warning, error, critical, alert or emergency), not %s", mcp.MetaKeyLogLevel, got)
}

// logLevels are MCP's LoggingLevel values.
var logLevels = map[mcp.LoggingLevel]struct{}{
	mcp.LoggingLevelDebug: {}, mcp.LoggingLevelInfo: {}, mcp.LoggingLevelNotice: {}, mcp.LoggingLevelWarning: {},
	mcp.LoggingLevelError: {}, mcp.LoggingLevelCritical: {}, mcp.LoggingLevelAlert: {}, mcp.LoggingLevelEmergency: {},
}

package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/mcp-gateway/internal/session"
	"github.com/tollgate/tollgate/services/platform/logging"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// openSSE serves GET /sse (the 2024-11-05 transport): the session is stored
// in Redis, owned by this replica, for as long as the stream is open.
func (g *Gateway) openSSE(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeHTTPError(w, http.StatusMethodNotAllowed, mcp.INVALID_REQUEST, "use GET to open the event stream")
		return
	}
	if g.checkGetMedia(w, r, transportSSE) {
		return
	}
	claims, _ := tokens.FromContext(r.Context())
	id := session.NewID()
	rec := session.Record{Subject: claims.Subject, ClientID: claims.ClientID, Transport: session.LegacySSE, Replica: g.replica}
	if err := g.sessions.Create(r.Context(), id, rec); err != nil {
		g.createFailed(w, r, transportSSE, r.Method, nil, err)
		return
	}
	g.metrics.sessions.WithLabelValues(transportSSE, "created").Inc()
	ended := make(chan struct{})
	bl := newBacklog()
	g.backlogs.Store(id, bl)
	g.localSSE.Store(id, ended)
	ctx, done := g.streams.open(context.WithValue(r.Context(), pendingKey{}, id), id)
	// The stream, and with it the session, ends when its token is revoked
	// or expires.
	ctx, unauthorize := g.authorize(ctx, transportSSE, claims)
	g.metrics.streams.WithLabelValues(transportSSE).Inc()
	defer func() {
		unauthorize()
		done()
		g.metrics.streams.WithLabelValues(transportSSE).Dec()
		g.localSSE.Delete(id)
		g.backlogs.Delete(id)
		// mcp-go drops the answers still on their way: their tokens go.
		bl.close()
		// The stream was the session: it ends with it.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 3*time.Second)
		defer cancel()
		removed, err := g.sessions.Delete(dctx, id)
		if err != nil && !removed {
			// The record outlives the stream (postMessage and
			// deliverRelayed end it later): counted apart, so that
			// "deleted" counts only sessions whose record is gone.
			g.log.WarnContext(r.Context(), "could not delete ended SSE session", "err", err)
			g.metrics.sessions.WithLabelValues(transportSSE, "delete_failed").Inc()
			return
		}
		if err != nil {
			g.log.WarnContext(r.Context(), "SSE session ended, but its place in the per-subject session index was not removed; it frees when the session would have expired", "err", err)
		}
		if removed {
			// Counted once per session: a record already gone was
			// ended (and counted) by whoever removed it — an eviction
			// (event "evicted"), or its expiry.
			g.metrics.sessions.WithLabelValues(transportSSE, "deleted").Inc()
		}
	}()
	defer close(ended) // first: the handler writes nothing more
	// Every write of the stream has STREAM_WRITE_TIMEOUT: a client that
	// stops reading loses its stream, and with it the session. Each answer
	// written gives back its place in the session's backlog
	// (legacyPendingAnswers).
	// What mcp-go encodes is written without HTML escaping (unescapingWriter),
	// and then its ids restored (idWriter): a client's id is written as
	// sent, its escapes too ("\u003c" came back as "<" when it was restored
	// first: TestHTMLEscapedIDsAreEchoed).
	sw := &backlogWriter{ResponseWriter: newUnescapingWriter(&idWriter{ResponseWriter: newDeadlineWriter(w, g.cfg.StreamWriteTimeout), ids: g.ids}), b: bl, log: g.log}
	g.serve(transportSSE, r.Method, g.sse.SSEHandler(), sw, r.WithContext(ctx))
}

// postMessage serves POST /messages?sessionId=…: the message is handled
// here when this replica holds the session's stream, and otherwise relayed
// through Redis to the replica that does; the response reaches the client
// on its stream either way.
func (g *Gateway) postMessage(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeHTTPError(w, http.StatusMethodNotAllowed, mcp.INVALID_REQUEST, "use POST to send a message")
		return
	}
	claims, _ := tokens.FromContext(r.Context())
	body, msg, ok := readBody(w, r)
	if !ok {
		return
	}
	if rf := checkEnvelope(body); rf != nil {
		g.refuse(w, transportSSE, rf)
		return
	}
	if wrapped, ok := wrapMessageProgressTokens(body, msg); ok {
		// A progress token mcp-go would not echo exactly travels wrapped
		// (progresstoken.go), relayed so too; the message is read again.
		body, msg = wrapped, message{}
		msg.decoded = json.Unmarshal(body, &msg) == nil
	}
	method := msg.Method
	if method == "" {
		method = "POST"
	}
	e := paramsError(msg, body)
	if e == "" {
		e = wrongTypedParams(body, msg)
	}
	if e == "" {
		e = initializeParamsError(msg, body)
	}
	if e == "" {
		e = g.toolNameError(msg)
	}
	if e != "" {
		// Refused on the POST, as mcp-go refuses a message it cannot
		// parse: the stream never sees it.
		g.metrics.request(transportSSE, methodLabel(method), "invalid_params")
		writeRPCError(w, http.StatusBadRequest, msg.ID, mcp.INVALID_PARAMS, e)
		return
	}
	id := r.URL.Query().Get("sessionId")
	if id == "" {
		g.metrics.request(transportSSE, methodLabel(method), "missing_session")
		writeHTTPError(w, http.StatusBadRequest, mcp.INVALID_REQUEST, "the sessionId query parameter is required; open GET /sse first")
		return
	}
	rec, err := g.sessions.Get(r.Context(), id)
	if g.legacySessionFailed(w, r, method, err) {
		return
	}
	if !ownedBy(rec, claims) || rec.Transport != session.LegacySSE {
		g.metrics.request(transportSSE, methodLabel(method), "unknown_session")
		writeHTTPError(w, http.StatusNotFound, mcp.INVALID_REQUEST, "session not found; open a new stream with GET /sse")
		return
	}
	if _, local := g.localSSE.Load(id); !local && rec.Replica == g.replica {
		// The session's stream was on this replica and has ended, and its
		// record outlived it: the delete at the stream's end failed
		// (Redis was unavailable then). The message would be accepted and
		// never answered; the session ends now instead.
		g.endLegacyRecord(r.Context(), id)
		g.metrics.request(transportSSE, methodLabel(method), "unknown_session")
		writeHTTPError(w, http.StatusNotFound, mcp.INVALID_REQUEST, "session not found; open a new stream with GET /sse")
		return
	}
	if msg.Method == "" && len(msg.ID) > 0 {
		// A client's response (the envelope check lets through only an id
		// with a result or an error): the legacy transport has no handler
		// waiting for one — its pings' answers are dropped — and mcp-go
		// would answer an error response on the stream as an unknown
		// method, with the client's id, which the client could take for
		// the answer to its own request of that id. Accepted, dropped.
		g.metrics.request(transportSSE, methodLabel(method), "202")
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if msg.Method == string(mcp.MethodServerDiscover) && len(msg.ID) > 0 && string(msg.ID) != "null" {
		// server/discover (2026-07-28, SEP-2575) is no method of this
		// 2024-11-05 transport. A client that speaks both eras sends it
		// first and falls back to initialize on an error that is not a
		// modern server's (MCP 2026-07-28, Versioning, "Backward
		// compatibility"); the Go MCP SDK's SSE client does so before
		// initialize. The error has to come on the stream, where this
		// transport answers every request: refused on the POST ("session
		// not initialized"), it never reached the SDK, which failed (EOF).
		// Its _meta is dropped, so that mcp-go answers -32601 "requires
		// protocol version 2026-07-28 or later" with its id, initialized or
		// not, and never a modern discover result on a legacy stream.
		body = []byte(`{"jsonrpc":"2.0","id":` + string(msg.ID) + `,"method":"server/discover"}`)
	}
	initialize := msg.Method == string(mcp.MethodInitialize)
	claim, accepted := "", false // the initialize's claim, and whether it went on
	if len(msg.ID) > 0 && !initialize && msg.Method != string(mcp.MethodPing) && msg.Method != string(mcp.MethodServerDiscover) && rec.ProtocolVersion == "" {
		// A request before the session's initialize was answered: mcp-go's
		// legacy handler served it (a resources/subscribe was kept and
		// answered {}), as if the session were initialized. MCP's
		// lifecycle (2024-11-05 to 2025-11-25, "Initialization") has the
		// client send nothing but pings until the server has answered
		// initialize; on /mcp a request without a session is refused
		// ("Mcp-Session-Id header is required; send initialize first").
		// The negotiated version, recorded before mcp-go sends the
		// answer (afterInitialize), says so on every replica.
		// Notifications, never answered, pass.
		g.metrics.request(transportSSE, methodLabel(method), "not_initialized")
		writeRPCError(w, http.StatusBadRequest, msg.ID, mcp.INVALID_REQUEST, notInitializedMessage)
		return
	}
	// An initialize without an id is a notification to mcp-go
	// (HandleMessage: ID == nil), which ignores it: it initializes nothing
	// and answers nothing. Accepted and handed on as on /mcp (202, no
	// session), and it takes no claim — a claim it took would never be
	// given back, and the session could never be initialized.
	if initialize && len(msg.ID) > 0 && string(msg.ID) != "null" {
		// A second initialize of a legacy session: mcp-go would initialize
		// the session again (client, capabilities, version replaced
		// mid-session). The legacy transport (2024-11-05) has one session
		// per stream and no way to replace it; a new session is a new GET
		// /sse (on /mcp, initialize starts a new session instead). The
		// record's negotiated version refuses it without another Redis
		// command once the first was answered; before that, concurrent
		// initializes (on any replicas) race for the session's claim
		// (Store.ClaimInitialize), taken before the message goes on to
		// mcp-go, and all but one lose. Refused on the POST, as other
		// refusals of /messages, with the request's id; mcp-go's client
		// never sends one of its own (Client.Initialize sends one per
		// call).
		//
		// An initialize mcp-go will refuse (initializeFails) takes no
		// claim: mcp-go answers it with an error on the stream and
		// initializes nothing, and the client may send initialize again —
		// as on /mcp, where a refused initialize leaves no session behind.
		// (mcp-go's OnError hook would tell after the fact, but any such
		// hook sends every tools/call through HandleMessage: callHooks.)
		version := rec.ProtocolVersion
		decodes := !initializeFails(body)
		if version == "" && decodes {
			var err error
			claim, version, err = g.sessions.ClaimInitialize(r.Context(), id)
			if g.legacySessionFailed(w, r, method, err) {
				return
			}
		}
		if claim == "" && (decodes || version != "") {
			g.metrics.request(transportSSE, methodLabel(method), "already_initialized")
			writeRPCError(w, http.StatusBadRequest, msg.ID, mcp.INVALID_REQUEST, alreadyInitialized(version))
			return
		}
		if claim != "" {
			// The claim is given back if the initialize goes no further
			// than here (the stream's replica is gone, Redis failed); after
			// a relay whose delivery is unknown, only if the stream's
			// replica has not confirmed it (relayedInitializeDelivered).
			defer func() {
				if !accepted {
					g.releaseInitialize(r.Context(), id, claim)
				}
			}()
			w = &acceptance{ResponseWriter: w, accepted: &accepted}
		}
	}
	if g.refuseScopes(w, r, transportSSE, claims, msg, rec.ProtocolVersion, rec.ClientName) {
		// Refused on the POST (SCOPE_CHALLENGE=http only), before the
		// message is accepted: the stream never sees it.
		return
	}
	if g.legacySubscription(w, r, id, msg) {
		return
	}
	if !msg.decoded && !json.Valid(body) {
		// Not JSON text (RFC 8259 §2: one value, then only whitespace —
		// mcp-go reads the first value and ignores what follows, which
		// let a message past the gateway's own checks, as the envelope
		// could not be read): mcp-go's legacy handler answers 400 -32700
		// "Parse error" on the POST of the replica that holds the stream. On
		// another replica the relay could not be encoded (its body is a
		// json.RawMessage), and the POST was 503 with Retry-After — a
		// message that will never parse, told to retry; relayed, the
		// stream's replica could only have answered "dropped". The same
		// answer on every replica, before anything is relayed.
		g.metrics.requestStatus(transportSSE, methodLabel(method), http.StatusBadRequest)
		writeHTTPError(w, http.StatusBadRequest, mcp.PARSE_ERROR, "Parse error")
		return
	}
	if _, local := g.localSSE.Load(id); local {
		lr, ok := g.reserveLegacy(id, body, msg)
		if !ok {
			// The session's backlog is full (legacyPendingAnswers): refused
			// on the POST; its stream and the answers on their way carry on.
			g.refuseBacklog(w, method, msg.ID)
			return
		}
		seen := &statusSeen{ResponseWriter: w}
		if err := g.serveLegacyMessage(r.Context(), id, lr, func(req *http.Request) {
			req.Header = r.Header.Clone()
			g.serve(transportSSE, method, g.sse.MessageHandler(), seen, req)
		}); err != nil {
			g.unavailable(w, r, transportSSE, method, err)
		}
		if seen.status != http.StatusAccepted {
			lr.giveBack() // mcp-go refused it: no answer will come on the stream
		}
		return
	}
	nonce, outcome := g.expectRelayOutcome()
	defer g.pendingRelays.Delete(nonce)
	n, err := g.relay(r.Context(), rec.Replica, relayed{Session: id, Token: claims.Raw, Body: body, RequestID: logging.RequestID(r.Context()), Claim: claim,
		Answer: g.replica + " " + nonce})
	if err != nil {
		if claim != "" && g.relayedInitializeDelivered(r.Context(), id, claim) {
			g.metrics.relayed.WithLabelValues("sent").Inc()
			g.metrics.request(transportSSE, methodLabel(method), "202")
			w.WriteHeader(http.StatusAccepted)
			return
		}
		g.unavailable(w, r, transportSSE, method, &relayFailure{replica: rec.Replica, err: err})
		return
	}
	if n == 0 {
		// The replica that held the stream is gone, and the session with it.
		_, _ = g.sessions.Delete(r.Context(), id)
		g.metrics.relayed.WithLabelValues("dropped").Inc()
		g.metrics.request(transportSSE, methodLabel(method), "unknown_session")
		writeHTTPError(w, http.StatusNotFound, mcp.INVALID_REQUEST, "session not found; open a new stream with GET /sse")
		return
	}
	g.metrics.relayed.WithLabelValues("sent").Inc()
	// The stream's replica tells whether it handed the message on
	// (deliverRelayed): a 202 promises an answer on the stream, which a
	// message it dropped never gets.
	switch got := g.awaitRelay(r.Context(), outcome); got {
	case relayGone:
		// The stream had ended there (its record outlived it: the delete
		// failed), or it ended because the initialize's claim could not be
		// confirmed; the record is deleted there.
		g.metrics.request(transportSSE, methodLabel(method), "unknown_session")
		writeHTTPError(w, http.StatusNotFound, mcp.INVALID_REQUEST, "session not found; open a new stream with GET /sse")
	case relayRefused:
		// Its token was refused there (revoked or expired since it was
		// verified here); the stream opened with it ends with it.
		g.metrics.request(transportSSE, methodLabel(method), "unauthorized")
		g.unauthorized(w, transportSSE, "the access token is no longer accepted")
	case relayBacklog:
		// The session's backlog is full there (legacyPendingAnswers).
		g.refuseBacklog(w, method, msg.ID)
	case relayDropped:
		// An initialize whose claim was no longer held there, and whose
		// stream could not take the error answer: not handled; sent
		// again, it is. The 503 carries the request's id, as the other
		// refusals of a /messages request do (JSON-RPC 2.0 §5: null only
		// when the id could not be read).
		g.unavailableFor(w, r, transportSSE, method, msg.ID, &relayFailure{replica: rec.Replica, err: errors.New("not handled there: " + got)})
	default:
		// Handed on, or no answer in time (a replica of an earlier version
		// answers none; a slow one may yet deliver it): accepted, as
		// before the stream's replica answered.
		g.metrics.request(transportSSE, methodLabel(method), "202")
		w.WriteHeader(http.StatusAccepted)
	}
}

// The outcomes of a relayed message, as the stream's replica answers them
// (deliverRelayed) on the sender's acks channel: "<nonce> <outcome>".
const (
	relayDelivered = "delivered" // handed to the session's stream (mcp-go answered 202)
	relayGone      = "gone"      // no stream for the session there: the session has ended
	relayRefused   = "refused"   // the token was refused there
	relayDropped   = "dropped"   // not handled (an initialize whose claim is not held, mcp-go refused it)
	relayBacklog   = "backlog"   // refused: the session's answers waiting for its stream are at their bound
	relayUnknown   = "unknown"   // no outcome within relayAnswerWait
)

// relayAnswerWait bounds how long a relayed /messages POST waits for the
// stream's replica to say what it did with the message; it covers that
// replica's confirmation of an initialize's claim (3 s at most).
const relayAnswerWait = 5 * time.Second

// expectRelayOutcome registers a relay this replica is about to send: the
// nonce the stream's replica answers with, and the channel its outcome
// arrives on. The caller deletes the nonce from pendingRelays when done.
func (g *Gateway) expectRelayOutcome() (string, chan string) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	nonce := hex.EncodeToString(b[:])
	ch := make(chan string, 1)
	g.pendingRelays.Store(nonce, ch)
	return nonce, ch
}

// awaitRelay waits, up to relayAnswerWait, for a relayed message's
// outcome; relayUnknown when none came.
func (g *Gateway) awaitRelay(ctx context.Context, ch chan string) string {
	timer := time.NewTimer(relayAnswerWait)
	defer timer.Stop()
	select {
	case o := <-ch:
		return o
	case <-timer.C:
		g.log.WarnContext(ctx, "the stream's replica did not say what it did with a relayed message in time; accepted")
	case <-ctx.Done():
	}
	return relayUnknown
}

// answerRelay tells the replica that relayed m what became of it (a
// message relayed without Answer, by an earlier version, gets nothing).
func (g *Gateway) answerRelay(ctx context.Context, m relayed, outcome string) {
	replica, nonce, ok := strings.Cut(m.Answer, " ")
	if !ok {
		return
	}
	// In its own goroutine, bounded at 3 s: the caller is the Subscribe
	// loop, which also delivers terminations, notifications and this
	// replica's own answers — a slow Redis must not hold them up.
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		defer cancel()
		if err := g.rdb.Publish(ctx, g.acks(replica), nonce+" "+outcome).Err(); err != nil {
			g.log.WarnContext(ctx, "could not tell the sender what became of a relayed message", "err", err)
		}
	}()
}

// relayedInitializeDelivered settles a legacy initialize whose relay
// failed (the PUBLISH errored: it may or may not have reached the
// stream's replica) by its claim, and reports whether it was delivered.
// The stream's replica confirms the claim before it hands the initialize
// to mcp-go (deliverRelayed, Store.ConfirmInitialize); this replica gives
// back a claim that is not confirmed (Store.ReleaseUnconfirmed), and a
// late delivery then finds it gone and drops the message. One script
// each, so exactly one wins: given back, the initialize was not handled
// and the client's retry is accepted at once; confirmed, it is being
// answered on the stream and the POST is accepted (202). When Redis
// cannot tell either, the claim stays and expires
// (session.InitializeClaimTTL). postMessage's deferred release, which
// runs after a 503, gives back an unconfirmed claim only, as this does.
func (g *Gateway) relayedInitializeDelivered(ctx context.Context, id, claim string) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	got, err := g.sessions.ReleaseUnconfirmed(ctx, id, claim)
	if err != nil {
		g.log.WarnContext(ctx, "could not release the claim of a legacy initialize whose relay failed; it expires", "err", err)
	}
	return err == nil && got == session.Confirmed
}

// endLegacyRecord deletes the record of a legacy session whose stream
// ended on this replica but whose delete then failed (openSSE); a failure
// is logged, and the next POST to the session tries again.
func (g *Gateway) endLegacyRecord(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	if _, err := g.sessions.Delete(ctx, id); err != nil {
		g.log.WarnContext(ctx, "could not delete the record of an ended SSE session", "err", err)
		return
	}
	g.log.InfoContext(ctx, "deleted the record of an SSE session whose stream had ended here")
}

// initializeFails reports whether mcp-go answers the initialize in body
// with an error, having initialized nothing (HandleMessage): its params do
// not decode as an InitializeRequest (capabilities that are no object…),
// or its _meta names a stateless version (2026-07-28), whose era has no
// initialize. Its decoding is mcp-go's, of the same bytes (the id, which
// the gateway may rewrite, is not part of an InitializeRequest): as
// extractRequestProtocolInfo, params whose _meta does not decode (a
// duplicate "_meta" whose last value is no object) are of the legacy era,
// and mcp-go initializes.
func initializeFails(body []byte) bool {
	if json.Unmarshal(body, new(mcp.InitializeRequest)) != nil {
		return true
	}
	var m struct {
		Params struct {
			Meta *mcp.Meta `json:"_meta"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &m) != nil {
		return false
	}
	return mcp.IsModernProtocol(m.Params.Meta.ProtocolVersion())
}

// notInitializedMessage refuses a legacy request (other than ping) sent
// before the session's initialize was answered.
const notInitializedMessage = "session not initialized; send initialize first (until it is answered, only ping is served)"

// alreadyInitialized refuses a legacy session's second initialize; version
// is the negotiated one, "" while the first initialize is being answered.
func alreadyInitialized(version string) string {
	state := "protocol version " + version
	if version == "" {
		state = "its first initialize is being answered"
	}
	return "session already initialized (" + state + "); a legacy HTTP+SSE session is initialized once: open a new stream with GET /sse to start another session"
}

// acceptance records, in *accepted, whether a /messages POST was answered
// 202: the message went on to the session's stream.
type acceptance struct {
	http.ResponseWriter
	accepted *bool
}

func (a *acceptance) WriteHeader(code int) {
	if code == http.StatusAccepted {
		*a.accepted = true
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *acceptance) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// releaseInitialize gives back a legacy session's initialize claim
// (Store.ReleaseInitialize) once its initialize went no further; a
// failure to is logged (the session then refuses initialize until the
// claim expires: session.InitializeClaimTTL).
func (g *Gateway) releaseInitialize(ctx context.Context, id, claim string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	if err := g.sessions.ReleaseInitialize(ctx, id, claim); err != nil {
		g.log.WarnContext(ctx, "could not release a failed initialize of a legacy session", "err", err)
	}
}

// legacySubscription keeps a legacy session's resources/subscribe and
// resources/unsubscribe in its session record, as direct does for a
// Streamable HTTP session (directSession): the legacy initialize declares
// the same capabilities.resources.subscribe, and mcp-go's legacy session
// kept nothing — any URI, made up or not, was answered {}. A URI that
// names no resource is refused -32002, a subscription beyond the
// session's cap -32602, as on /mcp; refused on the POST (400, the
// request's id), as /messages refuses what it will not hand to mcp-go,
// and 503 when Redis cannot tell. It reports whether it answered; an
// accepted request goes on to mcp-go, which answers {} on the stream.
func (g *Gateway) legacySubscription(w http.ResponseWriter, r *http.Request, id string, msg message) bool {
	subscribe := msg.Method == string(mcp.MethodResourcesSubscribe)
	if len(msg.ID) == 0 || (!subscribe && msg.Method != string(mcp.MethodResourcesUnsubscribe)) {
		return false
	}
	var uri string
	if json.Unmarshal(msg.Params.URI, &uri) != nil || uri == "" {
		return false // refused by paramsError already
	}
	var err error
	switch {
	case !subscribe:
		err = g.sessions.Unsubscribe(r.Context(), id, uri)
	case !g.namesResource(uri):
		g.metrics.request(transportSSE, methodLabel(msg.Method), "invalid_params")
		writeRPCError(w, http.StatusBadRequest, msg.ID, mcp.RESOURCE_NOT_FOUND, resourceNotNamed(uri))
		return true
	default:
		err = g.sessions.Subscribe(r.Context(), id, uri)
	}
	switch {
	case err == nil:
		return false
	case errors.Is(err, session.ErrTooManySubscriptions):
		g.metrics.request(transportSSE, methodLabel(msg.Method), "invalid_params")
		writeRPCError(w, http.StatusBadRequest, msg.ID, mcp.INVALID_PARAMS, tooManySubscriptions(err))
	default:
		g.legacySessionFailed(w, r, msg.Method, err)
	}
	return true
}

// relayed is a legacy message on its way to the replica holding the stream.
// It carries the caller's token, which the receiving replica verifies again
// and forwards to capability-core.
type relayed struct {
	Session string          `json:"session"`
	Token   string          `json:"token"`
	Body    json.RawMessage `json:"body"`
	// RequestID names the POST on the replica that received it, so that
	// both replicas' log lines of the message share it.
	RequestID string `json:"request_id,omitempty"`
	// Claim is the token of an initialize's claim (Store.ClaimInitialize),
	// which the receiving replica gives back if it refuses the token.
	Claim string `json:"claim,omitempty"`
	// Answer is "<sender replica> <nonce>": the receiving replica
	// publishes "<nonce> <outcome>" on the sender's acks channel
	// (answerRelay), so that the sender answers the POST by what became of
	// the message.
	Answer string `json:"answer,omitempty"`
}

func (g *Gateway) inbox(replica string) string { return g.rdb.Key("mcp", "replica", replica) }
func (g *Gateway) terminations() string        { return g.rdb.Key("mcp", "terminated") }

func (g *Gateway) notifications() string { return g.rdb.Key("mcp", "notify") }

// notification is a server-to-client message for one session (Session is
// the hash of its id) or, with Session empty, for every session.
type notification struct {
	Session string         `json:"session,omitempty"`
	Method  string         `json:"method"`
	Params  map[string]any `json:"params,omitempty"`
}

// Notify sends a notification to a session's server-to-client stream,
// whichever replica holds it (GET /mcp or GET /sse). It reports an error
// only when Redis could not be told; a session with no open stream
// anywhere gets nothing, as in mcp-go.
func (g *Gateway) Notify(ctx context.Context, sessionID, method string, params map[string]any) error {
	return g.publishNotification(ctx, notification{Session: redisx.Hash(sessionID), Method: method, Params: params})
}

// Broadcast sends a notification to every session with an open stream on
// any replica (for example notifications/tools/list_changed).
func (g *Gateway) Broadcast(ctx context.Context, method string, params map[string]any) error {
	return g.publishNotification(ctx, notification{Method: method, Params: params})
}

func (g *Gateway) publishNotification(ctx context.Context, n notification) error {
	b, err := marshalJSON(n)
	if err != nil {
		return err
	}
	return g.rdb.Publish(ctx, g.notifications(), b).Err()
}

// deliverNotification hands a published notification to the local streams.
func (g *Gateway) deliverNotification(payload string) {
	var n notification
	if err := json.Unmarshal([]byte(payload), &n); err != nil || n.Method == "" {
		g.log.Warn("malformed notification", "err", err)
		return
	}
	if n.Session == "" {
		g.mcp.SendNotificationToAllClients(n.Method, n.Params)
		return
	}
	if id, ok := g.streams.session(n.Session); ok {
		if err := g.mcp.SendNotificationToSpecificClient(id, n.Method, n.Params); err != nil {
			g.log.Info("notification not delivered", "err", err)
		}
	}
}

// relay publishes m to replica and returns how many subscribers got it.
func (g *Gateway) relay(ctx context.Context, replica string, m relayed) (int64, error) {
	// The body as the client wrote it (marshalRaw): its id is echoed so.
	b, err := marshalRaw(m)
	if err != nil {
		return 0, err
	}
	return g.rdb.Publish(ctx, g.inbox(replica), b).Result()
}

// acks is the channel on which replica hears that the others have seen
// a termination it announced.
func (g *Gateway) acks(replica string) string { return g.rdb.Key("mcp", "acks", replica) }

// terminationAckWait bounds how long a DELETE waits for every replica to
// acknowledge the session's end.
const terminationAckWait = 2 * time.Second

// announceTermination tells every replica that a session ended and waits,
// up to terminationAckWait, until each one subscribed has acknowledged it
// (dropped the session from memory and closed its streams), so that once
// the DELETE is answered no replica admits the session from memory. The
// message is "<hashed id> <this replica> <nonce>"; each replica answers
// the nonce on this replica's acks channel.
func (g *Gateway) announceTermination(ctx context.Context, id string) {
	g.announceTerminationHash(ctx, redisx.Hash(id))
}

// announceTerminationHash is announceTermination of the session whose id
// hashes to hash.
func (g *Gateway) announceTerminationHash(ctx context.Context, hash string) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	nonce := hex.EncodeToString(b[:])
	seen := make(chan struct{}, 64)
	g.pendingAcks.Store(nonce, seen)
	defer g.pendingAcks.Delete(nonce)
	// PUBLISH answers how many subscribers the node that took it has. On a
	// Redis Cluster that is one node's count: the announcement goes to the
	// master of the terminations channel's slot, where every replica's
	// subscription is (Subscribe names that channel first, and go-redis
	// connects a cluster subscription to its first channel's master).
	var publisher redis.Cmdable = g.rdb.UniversalClient
	if cc, ok := g.rdb.UniversalClient.(*redis.ClusterClient); ok {
		if node, err := cc.MasterForKey(ctx, g.terminations()); err == nil {
			publisher = node
		}
	}
	n, err := publisher.Publish(ctx, g.terminations(), hash+" "+g.replica+" "+nonce).Result()
	if err != nil {
		g.log.WarnContext(ctx, "could not announce a session's end", "err", err)
		return
	}
	timer := time.NewTimer(terminationAckWait)
	defer timer.Stop()
	for acked := int64(0); acked < n; acked++ {
		select {
		case <-seen:
		case <-timer.C:
			g.log.WarnContext(ctx, "not every replica acknowledged a session's end in time", "acknowledged", acked, "subscribers", n)
			return
		case <-ctx.Done():
			return
		}
	}
	g.log.DebugContext(ctx, "session end acknowledged", "subscribers", n)
}

// terminated handles an announced termination: this replica forgets the
// session, closes its streams here, and acknowledges to the announcer.
func (g *Gateway) terminated(ctx context.Context, payload string) {
	f := strings.Fields(payload)
	if len(f) == 0 {
		return
	}
	g.sessions.Forget(f[0])
	g.streams.end(f[0])
	if len(f) == 3 {
		if err := g.rdb.Publish(ctx, g.acks(f[1]), f[2]).Err(); err != nil {
			g.log.WarnContext(ctx, "could not acknowledge a session's end", "err", err)
		}
	}
}

// acknowledged counts an acknowledgement of a termination this replica
// announced ("<nonce>"), or hands on the outcome of a message it relayed
// ("<nonce> <outcome>": answerRelay).
func (g *Gateway) acknowledged(payload string) {
	if nonce, outcome, ok := strings.Cut(payload, " "); ok {
		if ch, ok := g.pendingRelays.Load(nonce); ok {
			select {
			case ch.(chan string) <- outcome:
			default:
			}
		}
		return
	}
	nonce := payload
	if ch, ok := g.pendingAcks.Load(nonce); ok {
		select {
		case ch.(chan struct{}) <- struct{}{}:
		default:
		}
	}
}

// Subscribe listens for relayed messages, terminations, their
// acknowledgements and notifications (redisx.Client.Listen, which
// replaces a subscription that breaks or goes silent: its PING
// unanswered). It returns once the subscription is confirmed, or after 3
// s (it keeps trying in the background), and serves until ctx ends.
//
// The session store admits sessions from memory only while this
// replica receives every termination announced (session.Store.Follow):
// from the confirmation of a subscription to all four channels until
// that subscription is found lost — silent or broken, when terminations
// may have been missed from some time before — or ctx ends. Each new
// confirmation makes the store confirm every remembered session with
// Redis once more before admitting it from memory again.
func (g *Gateway) Subscribe(ctx context.Context) {
	// terminations first: on a Redis Cluster the subscription connects to
	// that channel's master, where announceTermination publishes.
	channels := []string{g.terminations(), g.inbox(g.replica), g.notifications(), g.acks(g.replica)}
	first := make(chan struct{})
	var once sync.Once
	go func() {
		defer g.sessions.Follow(false)
		g.rdb.Listen(ctx, channels, redisx.PubSubHandler{
			Kind: "mcp",
			Subscribed: func(context.Context) {
				g.sessions.Follow(true)
				once.Do(func() { close(first) })
			},
			Lost: func(err error) {
				g.sessions.Follow(false)
				g.log.Warn("relay subscription lost: sessions are confirmed with Redis until it is made again", "err", err)
			},
			Message: func(ctx context.Context, m *redis.Message) {
				switch m.Channel {
				case g.terminations():
					g.terminated(ctx, m.Payload)
				case g.acks(g.replica):
					g.acknowledged(m.Payload)
				case g.notifications():
					g.deliverNotification(m.Payload)
				default:
					g.deliverRelayed(ctx, m.Payload)
				}
			},
		})
	}()
	timer := time.NewTimer(3 * time.Second)
	defer timer.Stop()
	select {
	case <-first:
	case <-timer.C:
		g.log.Warn("relay subscription not confirmed yet; retrying in the background")
	case <-ctx.Done():
	}
}

// deliverRelayed hands a relayed message to the local SSE session, after
// verifying its token again.
func (g *Gateway) deliverRelayed(ctx context.Context, payload string) {
	var m relayed
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		g.log.Warn("malformed relayed message", "err", err)
		return
	}
	if _, local := g.localSSE.Load(m.Session); !local {
		// Relayed here because the session's record names this replica,
		// but its stream has ended: the record outlived it (its delete
		// failed). The sender answered 202; the record goes now, so that
		// the client's next POST, on any replica, is 404; so is this one
		// (answerRelay): the sender waits to hear.
		// In its own goroutine: this loop also delivers terminations and
		// notifications, which a slow Redis must not hold up.
		g.metrics.relayed.WithLabelValues("dropped").Inc()
		go func() {
			g.endLegacyRecord(ctx, m.Session)
			g.answerRelay(ctx, m, relayGone)
		}()
		return
	}
	ctx = logging.WithRequestID(ctx, logging.RequestIDOrNew(m.RequestID))
	var msg message
	_ = json.Unmarshal(m.Body, &msg)
	claims, err := g.verifier.Verify(ctx, m.Token)
	if err != nil {
		g.log.InfoContext(ctx, "relayed message with a refused token", "err", err)
		g.metrics.relayed.WithLabelValues("dropped").Inc()
		if m.Claim != "" {
			g.releaseInitialize(ctx, m.Session, m.Claim) // claimed by the replica it was posted to
		}
		g.answerRelay(ctx, m, relayRefused)
		return
	}
	lr, ok := g.reserveLegacy(m.Session, m.Body, msg)
	if !ok {
		// The session's backlog is full (legacyPendingAnswers): not
		// handled; its sender refuses the POST as this replica would.
		g.metrics.relayed.WithLabelValues("dropped").Inc()
		if m.Claim != "" {
			g.releaseInitialize(ctx, m.Session, m.Claim)
		}
		g.answerRelay(ctx, m, relayBacklog)
		return
	}
	if m.Claim != "" {
		// A relayed initialize: taken over from the replica it was posted
		// to, unless that one gave its claim back because its PUBLISH
		// failed (relayedInitializeDelivered); its client was answered 503
		// and may have sent initialize again.
		// Bounded as the sender's release is (relayedInitializeDelivered):
		// this loop also delivers terminations and notifications.
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		ok, err := g.sessions.ConfirmInitialize(cctx, m.Session, m.Claim)
		cancel()
		if err != nil {
			// Unconfirmed, it must not be handled (its sender may give
			// the claim back), and its client, answered 202, would wait
			// for an answer that never comes while the claim blocks its
			// next initialize: the stream is ended instead, as when the
			// negotiated version cannot be recorded (afterInitialize), and
			// the client opens a new session.
			g.log.WarnContext(ctx, "could not confirm a relayed initialize's claim; its legacy stream is ended so that the client reconnects", "err", err)
			g.metrics.relayed.WithLabelValues("dropped").Inc()
			lr.giveBack()
			g.streams.end(redisx.Hash(m.Session))
			g.answerRelay(ctx, m, relayGone)
			return
		}
		if !ok {
			// Its claim is no longer this initialize's: it expired
			// (session.InitializeClaimTTL) while the message was on its
			// way — its client, answered 202, waits for an answer on the
			// stream — or its sender gave it back after a failed PUBLISH
			// (that client was answered 503). Not handled: another
			// initialize may hold the claim now. It is answered on the
			// stream with a JSON-RPC error carrying its id, as 2024-11-05's
			// HTTP+SSE transport answers every request ("server messages
			// ... as SSE message events"), so that the client's wait ends
			// and it may send initialize again.
			g.log.InfoContext(ctx, "relayed initialize not handled: its claim is not held (given back after a failed relay, or expired); answered with an error on the stream")
			g.metrics.relayed.WithLabelValues("dropped").Inc()
			// Its answer, written on the stream, gives back its place in
			// the backlog.
			if g.answerOnStream(m.Session, lr, mcp.INTERNAL_ERROR, lateInitializeMessage) {
				g.answerRelay(ctx, m, relayDelivered)
			} else {
				lr.giveBack()
				g.answerRelay(ctx, m, relayDropped)
			}
			return
		}
	}
	g.metrics.relayed.WithLabelValues("received").Inc()
	d := &discard{h: http.Header{}}
	if err := g.serveLegacyMessage(tokens.NewContext(ctx, claims), m.Session, lr, func(req *http.Request) {
		g.sse.MessageHandler().ServeHTTP(d, req)
	}); err != nil {
		g.log.InfoContext(ctx, "relayed message not delivered", "err", err)
	}
	if d.status != http.StatusAccepted {
		lr.giveBack()
	}
	_, local := g.localSSE.Load(m.Session)
	switch {
	case d.status == http.StatusAccepted:
		g.answerRelay(ctx, m, relayDelivered)
	case !local:
		// The stream ended while the message was on its way (mcp-go
		// answers 400 "Invalid session ID" then): the session is gone,
		// as it would be had the stream ended before — not a message to
		// send again.
		g.answerRelay(ctx, m, relayGone)
	default:
		g.answerRelay(ctx, m, relayDropped)
	}
}

// lateInitializeMessage answers, on the stream, a relayed initialize whose
// claim was no longer held when it reached the stream's replica.
const lateInitializeMessage = "initialize not handled: it reached the session's stream after its claim had expired or been given back; send initialize again"

// answerOnStream writes a JSON-RPC error answering the relayed request lr
// on the stream of session here, with the id reserveLegacy gave it (an id
// mcp-go would not echo is a token, which the stream's writer restores:
// exactIDs), and reports whether it was queued (false: no id, or the
// stream is gone or full). Written, the answer gives back lr's place.
func (g *Gateway) answerOnStream(session string, lr *legacyRequest, code int, text string) bool {
	if len(lr.id) == 0 {
		return false
	}
	answer := struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}{JSONRPC: mcp.JSONRPC_VERSION, ID: lr.id}
	answer.Error.Code, answer.Error.Message = code, text
	if err := g.sse.SendEventToSession(session, answer); err != nil {
		g.log.Info("could not answer a relayed request on its stream", "err", err)
		return false
	}
	return true
}

// discard is the response of a relayed message: its status tells the
// replica it was posted to what became of it (answerRelay); its body goes
// nowhere.
type discard struct {
	h      http.Header
	status int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(code int) {
	if d.status == 0 {
		d.status = code
	}
}

// ownedBy reports whether the verified access token may use the session:
// the session belongs to the subject and the client (the token's sub and
// client_id) that created it. Another app of the same user holds its own
// sessions — a session id it learned is not a way into the first app's
// session (MCP Security Best Practices, session hijacking: bind sessions to
// user-specific information from the verified token).
func ownedBy(rec session.Record, claims *tokens.Claims) bool {
	return rec.Subject == claims.Subject && rec.ClientID == claims.ClientID
}

// legacyRequestTypes are the requests HandleMessage decodes into an mcp-go
// type, by method: what wrongTypedParams decodes a /messages POST into.
var legacyRequestTypes = map[string]func() any{
	string(mcp.MethodPing):                   func() any { return new(mcp.PingRequest) },
	string(mcp.MethodSetLogLevel):            func() any { return new(mcp.SetLevelRequest) },
	string(mcp.MethodResourcesList):          func() any { return new(mcp.ListResourcesRequest) },
	string(mcp.MethodResourcesTemplatesList): func() any { return new(mcp.ListResourceTemplatesRequest) },
	string(mcp.MethodResourcesRead):          func() any { return new(mcp.ReadResourceRequest) },
	string(mcp.MethodResourcesSubscribe):     func() any { return new(mcp.SubscribeRequest) },
	string(mcp.MethodResourcesUnsubscribe):   func() any { return new(mcp.UnsubscribeRequest) },
	string(mcp.MethodPromptsList):            func() any { return new(mcp.ListPromptsRequest) },
	string(mcp.MethodPromptsGet):             func() any { return new(mcp.GetPromptRequest) },
	string(mcp.MethodToolsList):              func() any { return new(mcp.ListToolsRequest) },
	string(mcp.MethodToolsCall):              func() any { return new(mcp.CallToolRequest) },
	string(mcp.MethodTasksGet):               func() any { return new(mcp.GetTaskRequest) },
	string(mcp.MethodTasksList):              func() any { return new(mcp.ListTasksRequest) },
	string(mcp.MethodTasksResult):            func() any { return new(mcp.TaskResultRequest) },
	string(mcp.MethodTasksCancel):            func() any { return new(mcp.CancelTaskRequest) },
	string(mcp.MethodCompletionComplete):     func() any { return new(mcp.CompleteRequest) },
}

// wrongTypedParams is the -32602 message for a /messages request whose
// params has a member of the wrong JSON type ("" when it has none): the
// message a Streamable HTTP session gets for it (paramsInClientTerms),
// from the same decoding HandleMessage does. mcp-go's legacy handler
// answered -32600 "unparsable … request" on the stream. Params that are no
// object stay mcp-go's -32600, as on /mcp.
func wrongTypedParams(body []byte, msg message) string {
	if len(msg.ID) == 0 {
		return "" // a notification: never answered
	}
	mk, ok := legacyRequestTypes[msg.Method]
	if !ok {
		return ""
	}
	err := json.Unmarshal(body, mk())
	if err == nil {
		return ""
	}
	res := paramsInClientTerms(mcp.JSONRPCError{Error: mcp.NewJSONRPCErrorDetails(mcp.INVALID_REQUEST,
		fmt.Sprintf("unparsable %s request: %s", msg.Method, err), nil)})
	if e, ok := res.(mcp.JSONRPCError); ok && e.Error.Code == mcp.INVALID_PARAMS {
		return e.Error.Message
	}
	return ""
}

// legacySessionFailed answers a POST /messages whose session read (or
// initialize claim) failed — 404 for a session that is gone, 503 with
// Retry-After when Redis could not answer — and reports whether it did;
// err nil answers nothing.
func (g *Gateway) legacySessionFailed(w http.ResponseWriter, r *http.Request, method string, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, session.ErrNotFound):
		g.metrics.request(transportSSE, methodLabel(method), "unknown_session")
		writeHTTPError(w, http.StatusNotFound, mcp.INVALID_REQUEST, "session not found; open a new stream with GET /sse")
	default:
		g.unavailable(w, r, transportSSE, method, err)
	}
	return true
}

package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/tollgate/tollgate/services/mcp-gateway/internal/session"
)

// listenStreamPrefix begins the stream id of every GET /mcp stream the
// gateway serves itself (listen); mcp-go's stream ids are UUIDs. Their
// events are renewed while the stream is open (session.Events.Renew).
const listenStreamPrefix = "listen-"

// listenNotifications is the buffer of notifications waiting for a
// session's GET streams on this replica; more are dropped (mcp-go reports
// ErrNotificationChannelBlocked to the sender), as in mcp-go's transport.
const listenNotifications = 64

// listeners are the sessions with an open GET /mcp stream on this replica.
// A session is registered with mcp-go (so that SendNotificationToSpecificClient
// and broadcasts reach it) while at least one of its streams is open here,
// and unregistered when the last one closes: an idle session costs this
// replica nothing once its streams are gone (issue 12).
type listeners struct {
	mu   sync.Mutex
	byID map[string]*listenSession
}

// listenSession is the ClientSession of a session's GET streams on this
// replica. Its streams share one notification channel: each notification
// goes out on exactly one of them (Streamable HTTP: a message is sent on
// one stream only).
type listenSession struct {
	id    string
	notes chan mcp.JSONRPCNotification
	store *session.Store
	refs  int // open streams, under listeners.mu
}

var _ server.SessionWithLogging = (*listenSession)(nil)

// GetLogLevel is the level in the session record (set on any replica;
// mcp-go's default, error, if none), for SendLogMessageToSpecificClient.
func (s *listenSession) GetLogLevel() mcp.LoggingLevel {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if l, err := s.store.LogLevel(ctx, s.id); err == nil && l != "" {
		return mcp.LoggingLevel(l)
	}
	return mcp.LoggingLevelError
}

// SetLogLevel is not reached: logging/setLevel is answered by direct,
// which keeps the level in the session record.
func (s *listenSession) SetLogLevel(mcp.LoggingLevel) {}

func (s *listenSession) SessionID() string { return s.id }
func (s *listenSession) Initialize()       {}
func (s *listenSession) Initialized() bool { return true }
func (s *listenSession) NotificationChannel() chan<- mcp.JSONRPCNotification {
	return s.notes
}

// attachListener returns the session's listenSession, registering it with mcp-go
// for its first stream; release must be called when the stream closes.
// It fails when mcp-go already holds a session of that id (one its own
// transport registered): the caller then leaves the stream to mcp-go.
func (g *Gateway) attachListener(ctx context.Context, id string) (*listenSession, func(), error) {
	l := &g.listeners
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.byID[id]
	if s == nil {
		s = &listenSession{id: id, notes: make(chan mcp.JSONRPCNotification, listenNotifications), store: g.sessions}
		if err := g.mcp.RegisterSession(ctx, s); err != nil {
			return nil, nil, err
		}
		if l.byID == nil {
			l.byID = map[string]*listenSession{}
		}
		l.byID[id] = s
	}
	s.refs++
	return s, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if s.refs--; s.refs == 0 {
			delete(l.byID, id)
			g.mcp.UnregisterSession(context.WithoutCancel(ctx), id)
		}
	}, nil
}

// pingIDs numbers the keep-alive pings of the gateway's own streams.
var pingIDs atomic.Int64

// listen serves a GET /mcp event stream of the session the request was
// admitted to (streamableSession) without mcp-go's transport, which would
// keep about 12 KB per session (its session, channels and a goroutine)
// until its idle sweep, after the stream has closed. It reports false,
// having written nothing, for a request it leaves to the transport: a
// Last-Event-ID of a stream the transport made (the answer stream of a
// POST), an unsupported protocol version (refused there), a session id
// mcp-go already holds.
//
// What the client sees is what the transport sends: notifications as
// "event: message" with an event id recorded in Redis (session.Events), a
// ping request every SSE_KEEPALIVE_INTERVAL (no event id, not recorded).
// A GET with Last-Event-ID of a stream served here (on any replica) gets
// the events recorded after it and then continues that stream live; an
// event id of another session, or any id that is no recorded event of the
// session, is refused with writeUnknownEventID's answer, whichever path would
// have served the stream.
func (g *Gateway) listen(w http.ResponseWriter, r *http.Request, id string) bool {
	if v := r.Header.Get(mcp.HeaderProtocolVersion); v != "" && !validVersion(v) {
		return false
	}
	if _, ok := w.(http.Flusher); !ok {
		return false
	}
	ctx := r.Context()
	streamID := ""
	lastEventID := r.Header.Get("Last-Event-ID")
	if lastEventID != "" {
		if !strings.HasPrefix(lastEventID, listenStreamPrefix) {
			return g.refusedEventID(w, r, id, lastEventID)
		}
	} else {
		var b [12]byte
		_, _ = rand.Read(b[:])
		streamID = listenStreamPrefix + hex.EncodeToString(b[:])
	}
	s, release, err := g.attachListener(ctx, id)
	if err != nil {
		if lastEventID != "" {
			return g.refusedEventID(w, r, id, lastEventID)
		}
		return false
	}
	defer release()
	// Registered before the replay is read: a notification from now on
	// waits in the channel and is recorded after the replay, so none is
	// lost or sent twice.
	var replay []replayed
	if lastEventID != "" {
		streamID, err = g.events.ReplayEventsAfter(ctx, id, lastEventID, func(eventID string, m json.RawMessage) error {
			replay = append(replay, replayed{eventID, m})
			return nil
		})
		switch {
		case errors.Is(err, server.ErrUnknownEventID):
			writeUnknownEventID(w)
			return true
		case err != nil:
			g.unavailable(w, r, transportStreamable, r.Method, err)
			return true
		}
	}
	// A new stream starts with its priming event (primes, writePriming), recorded
	// before anything else on the stream.
	primeID := ""
	if lastEventID == "" && primes(r) {
		if primeID, err = g.events.StoreEvent(ctx, id, streamID, nil); err != nil {
			// Not primed rather than refused: an id that is not recorded
			// could not be resumed from.
			g.log.WarnContext(ctx, "could not record a stream's priming event", "err", err)
			primeID = ""
		}
	}
	// Each write has STREAM_WRITE_TIMEOUT (deadlineWriter's reason).
	rc := http.NewResponseController(w)
	deadline := func() { _ = rc.SetWriteDeadline(time.Now().Add(g.cfg.StreamWriteTimeout)) }
	deadline()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	flush := w.(http.Flusher).Flush
	if primeID != "" {
		if writePriming(w, primeID) != nil {
			return true
		}
	}
	flush()
	for _, e := range replay {
		if len(e.message) == 0 {
			continue // a priming event: never sent again
		}
		deadline()
		// Events mcp-go recorded are encoded with HTML escaping: written
		// without it, as every answer (jsonout.go). The message is this
		// replay's own copy.
		if writeSSE(w, e.id, unescapeHTML(e.message)) != nil {
			return true
		}
	}
	if len(replay) > 0 {
		flush()
	}
	ping := time.NewTicker(g.cfg.KeepAlive)
	defer ping.Stop()
	// The stream's events are renewed while it is open (session.Events):
	// one quiet for longer than SESSION_IDLE_TTL can still be resumed.
	renew := time.NewTicker(g.events.RenewEvery())
	defer renew.Stop()
	renewFailed := false
	for {
		select {
		case <-ctx.Done():
			return true
		case <-renew.C:
			if err := g.events.Renew(ctx, id, streamID); err != nil && !renewFailed && ctx.Err() == nil {
				// The stream carries on; its events may expire one idle
				// TTL after the last renewal that worked.
				renewFailed = true
				g.log.WarnContext(ctx, "could not renew a stream's events", "err", err)
			}
		case n := <-s.notes:
			data, err := marshalJSON(n)
			if err != nil {
				g.log.ErrorContext(ctx, "could not encode a notification", "err", err)
				continue
			}
			eventID, err := g.events.StoreEvent(ctx, id, streamID, data)
			if err != nil {
				// Sent live without an id rather than dropped, as mcp-go does.
				g.log.WarnContext(ctx, "could not record a stream event", "err", err)
				eventID = ""
			}
			deadline()
			if writeSSE(w, eventID, data) != nil {
				return true
			}
			flush()
		case <-ping.C:
			deadline()
			msg := `{"jsonrpc":"2.0","id":` + strconv.FormatInt(pingIDs.Add(1), 10) + `,"method":"ping"}`
			if writeSSE(w, "", json.RawMessage(msg)) != nil {
				return true
			}
			flush()
		}
	}
}

// primingVersion is the first protocol version whose clients take an SSE
// event with an empty data field for what it is (2025-11-25, Streamable
// HTTP, "Sending Messages to the Server" item 6, where the priming event
// is asked of a stream the server starts; "Listening for Messages from the
// Server" item 4 has a GET stream follow the same polling behavior, which
// a recorded first id makes resumable); an earlier client may try to
// parse it as a message.
const primingVersion = "2025-11-25"

// primes reports whether a new GET /mcp stream of the request's session
// starts with a priming event: the session was negotiated at
// primingVersion or a later version this server supports (the official
// TypeScript SDK's server draws the same line).
func primes(r *http.Request) bool {
	a := admitted(r.Context())
	if a == nil {
		return false
	}
	v := a.rec.ProtocolVersion
	return v >= primingVersion && validVersion(v) && !mcp.IsModernProtocol(v)
}

// writePriming writes a stream's priming event: its event id and an empty
// data field (2025-11-25, Streamable HTTP, "Sending Messages to the
// Server" item 6: the server SHOULD immediately send one, to prime the
// client to reconnect with Last-Event-ID). Clients record the id and
// dispatch nothing (the SSE standard; mcp-go's and the TypeScript SDK's
// clients skip an event without data). The id is an event recorded in
// session.Events, so a client whose stream broke before its first message
// resumes from it and gets every notification since.
func writePriming(w io.Writer, eventID string) error {
	_, err := io.WriteString(w, "id: "+eventID+"\ndata: \n\n")
	return err
}

// unknownEventIDMessage is the message of the answer to a GET /mcp whose
// Last-Event-ID is no event of the session's streams.
const unknownEventIDMessage = "unknown Last-Event-ID: not an event of this session's streams; open a new stream without Last-Event-ID"

// writeUnknownEventID answers a GET /mcp whose Last-Event-ID is no event
// recorded on the session's streams (malformed, never sent, trimmed past
// STREAM_HISTORY_EVENTS, expired, or another session's): 400 with a
// JSON-RPC error, code -32600 (invalid request), id null. The Streamable
// HTTP transport ("Resumability and Redelivery") leaves this answer to the
// server; it is the same whichever path would have resumed the stream.
func writeUnknownEventID(w http.ResponseWriter) {
	writeHTTPError(w, http.StatusBadRequest, mcp.INVALID_REQUEST, unknownEventIDMessage)
}

// refusedEventID answers, and reports true, when lastEventID — of a
// stream listen leaves to mcp-go's transport (the answer stream of a
// POST) — is no event of the session, or Redis cannot tell; mcp-go's own
// refusal is a plain-text "Unknown Last-Event-ID". It reports false,
// having written nothing, for a recorded event: the transport resumes it.
func (g *Gateway) refusedEventID(w http.ResponseWriter, r *http.Request, id, lastEventID string) bool {
	switch err := g.events.Known(r.Context(), id, lastEventID); {
	case errors.Is(err, server.ErrUnknownEventID):
		writeUnknownEventID(w)
		return true
	case err != nil:
		g.unavailable(w, r, transportStreamable, r.Method, err)
		return true
	}
	return false
}

// openGETStream registers a GET /mcp stream of the session id on this
// replica (streamSet) and returns its context and the done to call when it
// closes; or, with a nil done, refuses it, having answered, when the
// session already holds STREAM_LIMIT_PER_SESSION streams here.
//
// MCP Streamable HTTP (2025-06-18 and 2025-11-25, "Multiple Connections")
// lets a client "remain connected to multiple SSE streams simultaneously"
// and has the server send each message on one of them; it bounds neither
// how many, nor says what a server that will hold no more answers.
// "Listening for Messages from the Server" gives 405 to a server that
// offers no GET stream at all, which would tell the client never to try
// again; so a GET beyond the limit is a conflict with the session's state
// instead: 409 with a JSON-RPC error (-32600, id null) naming the limit,
// and the streams already open carry on. The limit is per replica, where a
// stream costs a goroutine, a connection and its buffers.
func (g *Gateway) openGETStream(ctx context.Context, w http.ResponseWriter, id string) (context.Context, func()) {
	ctx, done := g.streams.openAtMost(ctx, id, g.cfg.StreamLimitPerSession)
	if done == nil {
		g.metrics.request(transportStreamable, "GET", "stream_limit")
		writeHTTPError(w, http.StatusConflict, mcp.INVALID_REQUEST, fmt.Sprintf(
			"this session already has %d open GET streams on this server (STREAM_LIMIT_PER_SESSION); close one before opening another", g.cfg.StreamLimitPerSession))
	}
	return ctx, done
}

// deadlineWriter gives each Write and Flush of a server-to-client stream a
// write deadline of timeout from then. A client that stops reading (its
// TCP window closed) would otherwise hold the stream's goroutine in a
// Write — with its connection, its buffers and, for GET /sse, the session
// itself — for as long as it keeps the connection open: the session's
// DELETE and the replica's shutdown cancel the request's context, which
// does not interrupt a blocked Write, and a legacy stream is never
// DELETEd. A Write that misses the deadline fails, net/http then cancels
// the request's context, and the stream's handler returns. listen sets
// the same deadline itself; the legacy stream, written by mcp-go's
// SSEServer, gets it through this writer.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func newDeadlineWriter(w http.ResponseWriter, timeout time.Duration) *deadlineWriter {
	return &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: timeout}
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	_ = d.rc.SetWriteDeadline(time.Now().Add(d.timeout))
	return d.ResponseWriter.Write(p)
}

func (d *deadlineWriter) Flush() {
	_ = d.rc.SetWriteDeadline(time.Now().Add(d.timeout))
	_ = d.rc.Flush()
}

func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }

type replayed struct {
	id      string
	message json.RawMessage
}

// writeSSE writes one "event: message" with its id, if any.
func writeSSE(w io.Writer, eventID string, data []byte) error {
	buf := make([]byte, 0, len(eventID)+len(data)+32)
	if eventID != "" {
		buf = append(append(append(buf, "id: "...), eventID...), '\n')
	}
	buf = append(append(append(buf, "event: message\ndata: "...), data...), "\n\n"...)
	_, err := w.Write(buf)
	return err
}

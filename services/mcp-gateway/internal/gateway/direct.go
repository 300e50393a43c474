package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// messageKey carries the *message streamableSession parsed from the body.
type messageKey struct{}

// directMethods are the requests served by direct. Others (logging,
// subscriptions, completions, anything new) keep going through mcp-go's
// transport, whose per-session state they may need.
var directMethods = map[string]bool{
	string(mcp.MethodInitialize): true, string(mcp.MethodPing): true,
	string(mcp.MethodToolsList): true, string(mcp.MethodToolsCall): true,
	string(mcp.MethodResourcesList): true, string(mcp.MethodResourcesTemplatesList): true,
	string(mcp.MethodResourcesRead): true, string(mcp.MethodPromptsList): true,
}

// directNotifications bounds the notifications a directly served request
// may send before its answer; more are dropped (mcp-go reports
// ErrNotificationChannelBlocked to the sender).
const directNotifications = 16

// direct answers, without mcp-go's Streamable HTTP transport, the POSTs of
// a session (admitted by streamableSession) that need neither a stream of
// their own nor per-session state in mcp-go: initialize, ping, and the
// tools, resources and prompts requests, when the client did not ask for
// progress. mcp-go's MCPServer still handles the message (HandleMessage);
// only the transport is bypassed, for two reasons (issue 12):
//
//   - the transport builds a throwaway session per request on every replica
//     that did not initialize the session (about 10 KB: buffered channels
//     for notifications, sampling, elicitation and roots);
//   - on the replica that did, it registers the session at initialize and
//     keeps it for the idle TTL (9–13 KB per idle session), although every
//     replica serves every session from Redis and only a GET stream needs
//     a registered session (which mcp-go still registers for the stream's
//     life).
//
// The answer is what the transport sends: the JSON-RPC response as JSON,
// Mcp-Session-Id on initialize; notifications a handler sends while the
// request runs (progress is not served here, but a handler may log) are
// kept, up to directNotifications, and sent first on an SSE answer when the
// client accepts one. Everything else goes to next (the transport).
func (g *Gateway) direct(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := directSessionID(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			next.ServeHTTP(w, r) // unreachable: streamableSession buffered the body
			return
		}
		msg, _ := r.Context().Value(messageKey{}).(*message)
		if msg == nil {
			msg = &message{}
			if json.Unmarshal(body, msg) != nil {
				msg = &message{}
			}
		}
		if !directMethods[msg.Method] || len(msg.ID) == 0 || string(msg.ID) == "null" ||
			(msg.Params.Meta != nil && msg.Params.Meta.ProgressToken != nil) {
			r.Body = io.NopCloser(bytes.NewReader(body))
			next.ServeHTTP(w, r)
			return
		}
		sess := &directSession{id: id}
		res := g.mcp.HandleMessage(g.mcp.WithContext(r.Context(), sess), body)
		if msg.Method == string(mcp.MethodInitialize) {
			w.Header().Set(server.HeaderKeySessionID, id)
		}
		if res == nil {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		if notes := sess.drain(); len(notes) > 0 && acceptsEventStream(r) {
			if jsonOnly, _ := r.Context().Value(jsonOnlyKey{}).(bool); !jsonOnly {
				w.Header().Set("Content-Type", "text/event-stream")
				w.Header().Set("Cache-Control", "no-cache")
				w.WriteHeader(http.StatusOK)
				for _, n := range notes {
					writeEvent(w, n)
				}
				writeEvent(w, res)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_ = json.NewEncoder(w).Encode(res)
	})
}

// directSessionID returns the session a POST was admitted to (or is
// creating, for initialize) when direct may serve it.
func directSessionID(r *http.Request) (string, bool) {
	if r.Method != http.MethodPost {
		return "", false
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return "", false // the transport answers the refusal
	}
	if v := r.Header.Get(mcp.HeaderProtocolVersion); v != "" && !validVersion(v) {
		return "", false // likewise
	}
	if id, ok := r.Context().Value(liveKey{}).(string); ok && id != "" {
		return id, true
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

func writeEvent(w io.Writer, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	_, _ = io.WriteString(w, "event: message\ndata: ")
	_, _ = w.Write(b)
	_, _ = io.WriteString(w, "\n\n")
}

// directSession is the ClientSession of one directly served request: the
// session id and, only if a handler sends one, a small buffer of
// notifications. It lives as long as the request.
type directSession struct {
	id    string
	once  sync.Once
	notes chan mcp.JSONRPCNotification
}

var _ server.ClientSession = (*directSession)(nil)

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

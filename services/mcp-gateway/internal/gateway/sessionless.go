package gateway

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/tollgate/tollgate/services/platform/tokens"
)

// defaultProtocolVersion is the version of a Streamable HTTP request
// without MCP-Protocol-Version that no session names: a server "SHOULD
// assume protocol version 2025-03-26" (MCP 2025-06-18 and 2025-11-25,
// Transports, "Protocol Version Header").
const defaultProtocolVersion = "2025-03-26"

// sessionlessVersions are the protocol versions served without a session,
// newest first: those whose transport is Streamable HTTP with sessions
// (2025-03-26 introduced it). 2024-11-05 has no Streamable HTTP — its
// transport is HTTP+SSE (/sse) — and 2026-07-28's requests carry no
// session by design (the stateless path, not this one).
var sessionlessVersions = []string{mcp.ProtocolVersion20251125, mcp.ProtocolVersion20250618, mcp.ProtocolVersion20250326}

// sessionlessVersionError is the refusal of a request without a session
// whose MCP-Protocol-Version v, of the form of a version, is not one of
// sessionlessVersions: 400 -32600 (MCP 2025-06-18 and 2025-11-25,
// Transports, "Protocol Version Header": an invalid or unsupported version
// is 400 Bad Request), for one message (Gateway.sessionless) and a batch
// (Gateway.serveBatch) alike.
func sessionlessVersionError(v string) string {
	text := "unsupported MCP-Protocol-Version " + strconv.Quote(v) + "; supported without a session: " + strings.Join(sessionlessVersions, ", ")
	if v == mcp.ProtocolVersion20241105 {
		text += " (2024-11-05 has no Streamable HTTP: its transport is HTTP+SSE, GET /sse)"
	}
	return text
}

// sessionMethods are the requests whose effect lives in a session and is
// read by later requests or a server-to-client stream: without a session
// they would be answered and have no effect.
var sessionMethods = map[string]bool{
	string(mcp.MethodSetLogLevel):          true,
	string(mcp.MethodResourcesSubscribe):   true,
	string(mcp.MethodResourcesUnsubscribe): true,
}

// sessionless serves a POST /mcp without Mcp-Session-Id that is not
// initialize, under a protocol version that has sessions (2025-03-26 to
// 2025-11-25), unless SESSION_REQUIRED. The specification lets a server
// assign a session id at initialize (MAY) and has only a server that
// requires one answer such a request 400 (MCP 2025-06-18 and 2025-11-25,
// Transports, "Session Management"); connectors exist that never send the
// id back — ChatGPT's while it creates a connector
// (oaslananka/kicad-studio-kit#34), Claude's custom connectors
// (anthropics/claude-ai-mcp#975), Copilot CLI (github/copilot-cli#3668).
//
// The request has been authenticated (audience, expiry, revocation) and
// counted against the subject's rate limit like any other; it is served
// without a session record, so it takes no place of
// SESSION_LIMIT_PER_SUBJECT. Its version is its MCP-Protocol-Version
// header or 2025-03-26; one not in sessionlessVersions is 400
// (sessionlessVersionError). A
// notification or a client's response is accepted (202) and dropped:
// nothing of a session is there to cancel or to answer. A request whose
// state lives in a session (sessionMethods) is 400 -32600. Everything
// else — ping, tools, resources, prompts, completions — is answered on
// the POST itself, as in a session: by direct or, with a progress token
// or for a method direct leaves to the transport, by mcp-go's stateless
// transport (Gateway.statelessHTTP), which stores no events for
// resumption. Each request reaches that transport with an internal
// session id of its own (never answered): mcp-go keys a stateless
// request's session on its Mcp-Session-Id, "" for all of them, and a
// handler sending the client a request (the conformance fixtures'
// elicitation) registers that session under "" for the request's life,
// so another user's request would be served with it and its
// notifications written to the first user's stream
// (TestSessionlessRequestsShareNoSession). Such a request of the server
// gets no answer here: a client's response without a session is dropped.
// The notifications a handler sends (progress) are written into the POST's
// event stream at once, before its answer (withAnswerStream): mcp-go's
// transport without an event store has its forwarder take a notification
// off the request's channel and drop it when the answer was written first
// (mark3labs/mcp-go#969, open), which lost a call's last progress
// notification (TestSessionlessProgressPrecedesItsAnswer).
// Counted in tollgate_mcp_requests_total by its result (the status
// answered, or the refusal's name) as a request in a session is, and in
// tollgate_mcp_sessionless_requests_total by the status answered
// (streamableSession counts it there, a rate-limited one too).
func (g *Gateway) sessionless(w http.ResponseWriter, r *http.Request, claims *tokens.Claims, msg message, body []byte,
	header, method string, badArguments func() bool, next http.Handler) {
	label := methodLabel(method)
	v := header
	if v == "" {
		v = defaultProtocolVersion
	}
	if !slices.Contains(sessionlessVersions, v) {
		g.metrics.request(transportStreamable, label, "unsupported_version")
		writeRPCError(w, http.StatusBadRequest, msg.ID, mcp.INVALID_REQUEST, sessionlessVersionError(v))
		return
	}
	if len(msg.ID) == 0 || msg.Method == "" {
		// A notification (notifications/initialized, /cancelled: no
		// request of this client is tied to a session it could name) or a
		// response to a request the gateway never sent without a session.
		g.metrics.requestStatus(transportStreamable, label, http.StatusAccepted)
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if sessionMethods[msg.Method] {
		g.metrics.request(transportStreamable, label, "missing_session")
		writeRPCError(w, http.StatusBadRequest, msg.ID, mcp.INVALID_REQUEST,
			msg.Method+" needs a session: send initialize, then its Mcp-Session-Id header with this request")
		return
	}
	if badArguments() || g.refuseScopes(w, r, transportStreamable, claims, msg, v, "") {
		return
	}
	adm := &admission{sessionless: true, version: v, post: true, msg: msg, body: body}
	if acceptsEventStream(r) {
		// Its notifications are written into its answer stream before its
		// answer (notifyClient), as a stateless (2026-07-28) request's:
		// through mcp-go's stateless transport, which keeps no event store,
		// the last one was lost to the answer (mark3labs/mcp-go#969).
		next = withAnswerStream(next)
	}
	g.serveCtx(context.WithValue(r.Context(), liveKey{}, adm), transportStreamable, method, next, w, r)
}

// sessionlessContext readies the throwaway session mcp-go's stateless
// transport made for a sessionless request (Gateway.statelessHTTP): it is
// initialized at the request's version with no client capabilities, so a
// handler that asks the client for something (sampling, elicitation)
// finds that the client offered nothing, as in a session whose client
// declared nothing.
func sessionlessContext(ctx context.Context, _ *http.Request) context.Context {
	a := admitted(ctx)
	cs := server.ClientSessionFromContext(ctx)
	if a == nil || !a.sessionless || cs == nil {
		return ctx
	}
	cs.Initialize()
	if s, ok := cs.(interface{ SetProtocolVersion(string) }); ok {
		s.SetProtocolVersion(a.version)
	}
	return ctx
}

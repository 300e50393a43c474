package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/tollgate/tollgate/services/mcp-gateway/internal/session"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// protocolWithBatches is the one protocol version with JSON-RPC batches:
// MCP 2025-03-26 has every implementation support receiving them
// ("JSON-RPC Batching"); 2025-06-18 removed them. mcp-go supports none.
const protocolWithBatches = "2025-03-26"

// maxBatch bounds the messages of one batch: each is a request of its own
// through the whole path (a rate-limit token, a session check), so a
// 1 MiB body of tiny messages would otherwise be some 25 000 of them.
const maxBatch = 64

// isBatch reports whether body is a JSON array: a JSON-RPC batch.
func isBatch(body []byte) bool {
	t := bytes.TrimSpace(body)
	return len(t) > 0 && t[0] == '[' && json.Valid(t)
}

// serveBatch answers a batch POSTed in a session negotiated at 2025-03-26
// (or without a session, at 2025-03-26: Gateway.sessionless), and reports whether it answered; false leaves the batch to the envelope
// check, which refuses it (-32600: every later version removed batches).
// Each message of the batch is served by self — the whole /mcp path: rate
// limit, session, envelope, answer — as a POST of its own with JSON
// answers only, and the answers are returned together (JSON-RPC 2.0 §6):
// 200 with an array of the requests' responses, or 202 and no body when
// the batch holds only notifications and responses. An initialize in a
// batch is refused (2025-03-26, "Lifecycle": it MUST NOT be part of one).
func (g *Gateway) serveBatch(w http.ResponseWriter, r *http.Request, body []byte, self http.Handler) bool {
	id := r.Header.Get(server.HeaderKeySessionID)
	if id == "" {
		// Without a session (Gateway.sessionless) the batch is 2025-03-26's
		// when MCP-Protocol-Version says so or is absent (the version
		// assumed without it); each message is then served sessionless.
		// A version not served without a session (2024-11-05, one no
		// release has) is refused as one message of it would be, not as a
		// batch of a version without batches.
		v := r.Header.Get(mcp.HeaderProtocolVersion)
		if g.cfg.SessionRequired {
			return false
		}
		if v != "" && !versionForm(v) {
			if !mcp.IsModernProtocol(v) {
				// Counted as one message of it is (streamableSession).
				g.metrics.sessionlessAnswered("POST", http.StatusBadRequest)
			}
			return g.refuseVersionForm(w, v, message{}, mcp.IsModernProtocol(v), true, "POST")
		}
		if v != "" && !mcp.IsModernProtocol(v) && !slices.Contains(sessionlessVersions, v) {
			g.metrics.sessionlessAnswered("POST", http.StatusBadRequest)
			g.metrics.request(transportStreamable, "POST", "unsupported_version")
			writeRPCError(w, http.StatusBadRequest, nil, mcp.INVALID_REQUEST, sessionlessVersionError(v))
			return true
		}
		if v != "" && v != protocolWithBatches {
			return false
		}
	} else {
		claims, _ := tokens.FromContext(r.Context())
		rec, err := g.sessions.Admit(r.Context(), id, nil)
		switch {
		case errors.Is(err, session.ErrNotFound), err == nil && (!ownedBy(rec, claims) || rec.Transport != session.Streamable):
			// As for any request of a session that is not the caller's.
			g.metrics.request(transportStreamable, "POST", "unknown_session")
			writeHTTPError(w, http.StatusNotFound, mcp.INVALID_REQUEST, "session not found; initialize a new session")
			return true
		case err != nil:
			g.unavailable(w, r, transportStreamable, "POST", err)
			return true
		case rec.ProtocolVersion != protocolWithBatches:
			return false
		}
	}
	var msgs []json.RawMessage
	if json.Unmarshal(body, &msgs) != nil {
		return false
	}
	if len(msgs) == 0 {
		g.refuse(w, transportStreamable, &refusal{code: mcp.INVALID_REQUEST, msg: "an empty batch is not a request (JSON-RPC 2.0 section 6)"})
		return true
	}
	if len(msgs) > maxBatch {
		g.refuse(w, transportStreamable, &refusal{code: mcp.INVALID_REQUEST, msg: fmt.Sprintf("a batch holds at most %d messages; send the others in further requests", maxBatch)})
		return true
	}
	var answers [][]byte
	challenge := ""
	for _, m := range msgs {
		m = bytes.TrimSpace(m)
		var probe message
		_ = json.Unmarshal(m, &probe) // members of the wrong type leave the others read
		// An initialize whose envelope is invalid is refused as any message (self).
		if probe.Method == string(mcp.MethodInitialize) && checkEnvelope(m) == nil {
			answers = append(answers, rpcErrorJSON(probe.ID, mcp.INVALID_REQUEST, "initialize must not be part of a batch"))
			continue
		}
		if len(m) > 0 && m[0] == '[' {
			answers = append(answers, rpcErrorJSON(nil, mcp.INVALID_REQUEST, "a batch must not hold a batch"))
			continue
		}
		sub := r.Clone(withBatch(r.Context()))
		sub.Body, sub.ContentLength = newBody(m), int64(len(m))
		sub.Header.Set("Accept", "application/json")
		held := &heldResponse{header: http.Header{}}
		self.ServeHTTP(held, sub)
		if c := held.header.Get("WWW-Authenticate"); c != "" {
			challenge = c
		}
		if a := bytes.TrimSpace(held.body.Bytes()); len(a) > 0 && a[0] == '{' && json.Valid(a) {
			answers = append(answers, a)
		}
	}
	if challenge != "" {
		w.Header().Set("WWW-Authenticate", challenge)
	}
	if len(answers) == 0 {
		w.WriteHeader(http.StatusAccepted)
		return true
	}
	out := append([]byte{'['}, bytes.Join(answers, []byte{','})...)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(out, ']', '\n'))
	return true
}

// rpcErrorJSON is a JSON-RPC error response for id (null if none).
func rpcErrorJSON(id json.RawMessage, code int, msg string) []byte {
	id = answerID(id)
	b, _ := marshalRaw(map[string]any{"jsonrpc": "2.0", "id": id, "error": map[string]any{"code": code, "message": msg}})
	return b
}

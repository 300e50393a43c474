package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/tollgate/tollgate/services/mcp-gateway/internal/config"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// A tools/call whose token lacks the tool's scopes is refused in one of two
// forms (SCOPE_CHALLENGE, docs/reference/mcp.md "Per-tool scopes and
// step-up"):
//
//   - HTTP 403 Forbidden with WWW-Authenticate: Bearer
//     error="insufficient_scope", scope, resource_metadata and
//     error_description, and the OAuth error body the 401s have — MCP
//     2025-11-25 authorization, "Scope Challenge Handling" (RFC 6750 §3.1).
//     The official MCP TypeScript SDK's transports re-authorize with the
//     challenge's scope on a 403 only.
//   - HTTP 200 with a tool error result carrying the same challenge in
//     _meta["mcp/www_authenticate"] (and the header): the OpenAI Apps SDK's
//     form, from which ChatGPT shows its linking UI; it does not step up on
//     a 403. catalog.call builds it.
//
// Either way the call is refused: which form a request gets never depends
// on anything but how the client wants to hear it, and the token's scopes
// stay the only authority on access.

// scopedTool is what a scope check needs of a listed tool.
type scopedTool struct {
	name   string   // the registry's (dotted) name, the metric label
	scopes []string // the scopes it needs
}

// scopedTools are the served tools (catalog.tools' answer) that need
// scopes, by wire name. A registry tool the gateway does not serve is left
// out: a call of it is answered as an unknown tool, not refused for scopes.
func (c *catalog) scopedTools(served []server.ServerTool) map[string]scopedTool {
	names := make(map[string]bool, len(served))
	for _, s := range served {
		names[s.Tool.Name] = true
	}
	m := map[string]scopedTool{}
	for _, t := range c.reg.Tools() {
		if n := c.name(t); len(t.RequiredScopes) > 0 && names[n] {
			m[n] = scopedTool{name: t.Name, scopes: t.RequiredScopes}
		}
	}
	return m
}

// chatGPTProduct is the product name ChatGPT's MCP client gives as its
// User-Agent ("openai-mcp/1.0.0") and its initialize clientInfo.name.
const chatGPTProduct = "openai-mcp"

// fromChatGPT reports whether a request carries one of ChatGPT's own marks:
// its User-Agent product token, its clientInfo.name at initialize
// (clientName: the session record's ClientName, which Store.Admit keeps
// in memory — "" without a session; a stateless request's is in its
// _meta), or a
// client-provided _meta key of the Apps SDK ("openai/locale",
// "openai/userAgent", "openai/subject", …). Any one is enough: a mark
// wrongly present gives a client the tool-result form, which every client
// reads as a refused call (what every client got before SCOPE_CHALLENGE);
// a mark missing from ChatGPT would give it a 403, on which it shows no
// linking UI. No standard client sends any of them.
func fromChatGPT(r *http.Request, clientName string, meta *mcp.Meta) bool {
	ua := r.Header.Get("User-Agent")
	if product, _, _ := strings.Cut(ua, "/"); strings.EqualFold(strings.TrimSpace(product), chatGPTProduct) {
		return true
	}
	if strings.EqualFold(clientName, chatGPTProduct) {
		return true
	}
	if meta != nil {
		for k, v := range meta.AdditionalFields {
			if strings.HasPrefix(k, "openai/") {
				return true
			}
			// A stateless (2026-07-28) request's clientInfo.
			if ci, ok := v.(map[string]any); ok && k == "io.modelcontextprotocol/clientInfo" {
				if name, _ := ci["name"].(string); strings.EqualFold(name, chatGPTProduct) {
					return true
				}
			}
		}
	}
	return false
}

// inBatchKey marks a message served as part of a JSON-RPC batch: its
// refusal is an answer in the batch's array (the tool-result form), not a
// 403 that would refuse the batch's other messages.
type inBatchKey struct{}

// Forms of a scope refusal: the form label of
// tollgate_mcp_scope_challenges_total.
const (
	formHTTP403    = "http_403"
	formToolResult = "tool_result"
)

// stepUpVersion is the first MCP revision that specifies Scope Challenge
// Handling (2025-11-25, Authorization): a client that negotiated an
// earlier one, or speaks the 2024-11-05 SSE transport, cannot be expected
// to step up on a 403 (the TypeScript SDK's SSEClientTransport acts on a
// 401 only). Versions are dates: they compare as strings.
const stepUpVersion = "2025-11-25"

// refuseScopes answers with 403 and the insufficient_scope challenge a
// tools/call whose token lacks its tool's scopes, when the request gets the
// HTTP form (httpForm), and reports whether it did; either way it counts
// the form chosen (tollgate_mcp_scope_challenges_total). protocolVersion
// is the session's negotiated version, or a stateless request's;
// clientName the session's clientInfo.name (fromChatGPT). Anything else —
// another method, a tool that needs nothing more, the tool-result form
// (catalog.call answers it) — is left to the caller.
func (g *Gateway) refuseScopes(w http.ResponseWriter, r *http.Request, transport string, claims *tokens.Claims, msg message, protocolVersion, clientName string) bool {
	if msg.Method != string(mcp.MethodToolsCall) || claims == nil {
		return false
	}
	tools := g.scoped.Load()
	if tools == nil {
		return false
	}
	t, ok := (*tools)[msg.Params.Name]
	if !ok {
		return false
	}
	missing := claims.MissingScopes(t.scopes)
	if len(missing) == 0 {
		return false
	}
	if !g.httpForm(r, transport, msg, protocolVersion, clientName) {
		g.metrics.scopeChallenge(transport, formToolResult)
		return false
	}
	g.metrics.scopeChallenge(transport, formHTTP403)
	g.metrics.toolCall(t.name, "insufficient_scope")
	g.metrics.request(transport, methodLabel(msg.Method), "insufficient_scope")
	ch := g.challengerFor(transport)
	w.Header().Set("WWW-Authenticate", ch.insufficientScope(t.scopes, claims.Scopes))
	writeScopeError(w, msg.ID, t.scopes, scopeMessage(t.scopes, missing))
	return true
}

// codeInsufficientScope is the JSON-RPC error code of a tools/call refused
// with 403 for its token's scopes (implementation-defined server error
// range; MCP names none).
const codeInsufficientScope = -32003

// writeScopeError writes the 403's body: a JSON-RPC error with the
// request's id, so that a client ties the refusal to its call — the Go MCP
// SDK (v1.8.0) reads a non-2xx body as the call's error when it is one, and
// otherwise ends its session; the TypeScript SDK steps up from the
// WWW-Authenticate challenge and does not read the body. data keeps the
// OAuth error the body was before (RFC 6750 §3.1: error,
// error_description) and the challenge's scope.
func writeScopeError(w http.ResponseWriter, id json.RawMessage, scopes []string, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusForbidden)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"jsonrpc": "2.0", "id": answerID(id),
		"error": map[string]any{"code": codeInsufficientScope, "message": "insufficient_scope: " + desc,
			"data": map[string]string{"error": "insufficient_scope", "error_description": desc, "scope": strings.Join(scopes, " ")}},
	})
}

// httpForm reports whether a refused tools/call is answered 403 rather
// than with the tool result. A batch member never is (inBatchKey).
// SCOPE_CHALLENGE=http and tool-result decide alone; under auto the 403
// goes only where the client can be expected to step up: on /mcp, in a
// session negotiated at stepUpVersion or later (a stateless request's
// version is its own), and without a ChatGPT mark.
func (g *Gateway) httpForm(r *http.Request, transport string, msg message, protocolVersion, clientName string) bool {
	if batch, _ := r.Context().Value(inBatchKey{}).(bool); batch {
		return false
	}
	switch g.cfg.ScopeChallenge {
	case config.ScopeChallengeHTTP:
		return true
	case config.ScopeChallengeToolResult:
		return false
	}
	return transport == transportStreamable && protocolVersion >= stepUpVersion && !fromChatGPT(r, clientName, msg.Params.Meta)
}

// scopeMessage tells the user what a refused call lacks, in both forms.
func scopeMessage(required, missing []string) string {
	return "This tool needs the scopes \"" + strings.Join(required, " ") + "\"; the current authorization lacks \"" +
		strings.Join(missing, " ") + "\". Reconnect the app to grant them."
}

// withBatch marks ctx as a batch member's (inBatchKey).
func withBatch(ctx context.Context) context.Context {
	return context.WithValue(ctx, inBatchKey{}, true)
}

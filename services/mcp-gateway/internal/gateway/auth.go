package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tollgate/tollgate/services/platform/logging"
	"github.com/tollgate/tollgate/services/platform/telemetry"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// challenger builds the WWW-Authenticate challenges of one endpoint of the
// MCP resource: /mcp, or the legacy /sse and /messages, whose challenges
// name the metadata of the /sse resource identifier (RFC 9728 §3.3).
type challenger struct {
	metadataURL string // protected resource metadata of /mcp
	resource    string // the MCP resource identifier (RFC 8707), for hints
	// scopes are what a client should ask for when it has nothing, and
	// supported every scope it may ask for (askScopes); they follow the
	// capability registry (Gateway.UseRegistry).
	scopes    atomic.Pointer[[]string]
	supported atomic.Pointer[[]string]
}

func newChallenger(metadataURL, resource string, scopes, supported []string) *challenger {
	c := &challenger{metadataURL: metadataURL, resource: resource}
	c.setScopes(scopes, supported)
	return c
}

func (c *challenger) setScopes(s, supported []string) {
	c.scopes.Store(&s)
	c.supported.Store(&supported)
}

// scopeList is the current list of scopes to ask for.
func (c *challenger) scopeList() []string { return *c.scopes.Load() }

// supportedList is the current list of every scope a tool needs.
func (c *challenger) supportedList() []string { return *c.supported.Load() }

// invalidToken is the challenge of a 401 for a token that was sent but
// refused, on every transport; desc (RFC 6750 §3 error_description) says
// why, as the JSON body does.
func (c *challenger) invalidToken(desc string) string {
	return fmt.Sprintf(`Bearer error="invalid_token", resource_metadata=%q, scope=%q, error_description=%q`,
		c.metadataURL, strings.Join(c.scopeList(), " "), tokens.ChallengeText(desc))
}

// invalidRequest is the challenge of a 400 for a malformed bearer request
// (two Authorization headers, a token in the query): RFC 6750 §3.1's
// invalid_request, naming the metadata (RFC 9728 §5.1) as every challenge
// of the resource does, so a client that gets it still finds the
// authorization server.
func (c *challenger) invalidRequest(desc string) string {
	return fmt.Sprintf(`Bearer error="invalid_request", resource_metadata=%q, scope=%q, error_description=%q`,
		c.metadataURL, strings.Join(c.scopeList(), " "), tokens.ChallengeText(desc))
}

// refusal is the error_description of a refused token: the verifier's
// reason (tokens.ErrInvalidToken's message), and for the two a client can
// fix by itself what to do — an expired token is refreshed, a token for
// another resource is requested again with this resource. The reason is
// bounded (tokens.RefusalReason): parts of it (a kid) come from the token.
func (c *challenger) refusal(err error) string {
	reason := tokens.RefusalReason(err)
	desc := "access token rejected: " + reason
	switch reason {
	case "token expired":
		desc += "; refresh it or sign in again"
	case "wrong audience":
		desc += "; this is the MCP resource " + c.resource + ": request the token with resource=" + c.resource + " (RFC 8707)"
	}
	return desc
}

// noCredentials is the challenge of a 401 for a request without a bearer
// token (none, or another scheme such as Basic): RFC 6750 §3.1 — such a
// request gets no error code, only where to find the authorization server
// (RFC 9728 §5.1 resource_metadata) and what to ask for.
func (c *challenger) noCredentials() string {
	return fmt.Sprintf(`Bearer resource_metadata=%q, scope=%q`, c.metadataURL, strings.Join(c.scopeList(), " "))
}

// insufficientScope asks for required plus what the token already has, so
// that stepping up does not lose earlier grants.
func (c *challenger) insufficientScope(required, granted []string) string {
	want := append([]string(nil), granted...)
	for _, s := range required {
		if !contains(want, s) {
			want = append(want, s)
		}
	}
	return fmt.Sprintf(`Bearer error="insufficient_scope", resource_metadata=%q, scope=%q, error_description=%q`,
		c.metadataURL, strings.Join(want, " "), "the tool needs more scopes than the access token grants")
}

// challengerKey carries the challenger of the endpoint a request came to.
type challengerKey struct{}

// forRequest is the challenger of the endpoint ctx's request came to
// (/sse and /messages have their own metadata), or c.
func (c *challenger) forRequest(ctx context.Context) *challenger {
	if ch, ok := ctx.Value(challengerKey{}).(*challenger); ok {
		return ch
	}
	return c
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// challengeBox lets a tool handler attach a challenge to the HTTP response
// that carries its result.
type challengeBox struct {
	mu sync.Mutex
	v  string
}

type challengeKey struct{}

func (c *challenger) set(ctx context.Context, v string) {
	if b, ok := ctx.Value(challengeKey{}).(*challengeBox); ok {
		b.mu.Lock()
		b.v = v
		b.mu.Unlock()
	}
}

func (b *challengeBox) get() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.v
}

// recorder wraps the response: it notes the status for metrics and adds a
// challenge set by a tool before the header goes out. It keeps streaming
// working (Flush, Unwrap for http.ResponseController).
type recorder struct {
	http.ResponseWriter
	box    challengeBox // in the request's context (challengeKey)
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
		if v := r.box.get(); v != "" {
			r.Header().Set("WWW-Authenticate", v)
		}
		if strings.HasPrefix(r.Header().Get("Content-Type"), "text/event-stream") {
			// A buffering reverse proxy (nginx) would hold events back.
			r.Header().Set("X-Accel-Buffering", "no")
		}
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Flush() {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// authenticate admits a request only with exactly one valid bearer token for
// the MCP resource, and puts its claims in the request context.
func (g *Gateway) authenticate(transport string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, err := tokens.FromRequest(r)
		switch {
		case errors.Is(err, tokens.ErrDuplicateAuthorization), errors.Is(err, tokens.ErrQueryToken):
			g.metrics.request(transport, methodLabel(r.Method), "bad_request")
			w.Header().Set("WWW-Authenticate", g.challengerFor(transport).invalidRequest(err.Error()))
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", err.Error())
			return
		case err != nil:
			g.metrics.request(transport, methodLabel(r.Method), "unauthorized")
			w.Header().Set("WWW-Authenticate", g.challengerFor(transport).noCredentials())
			writeOAuthError(w, http.StatusUnauthorized, "invalid_token", "a bearer access token is required")
			return
		}
		claims, err := g.verifier.Verify(r.Context(), raw)
		switch {
		case errors.Is(err, tokens.ErrKeysUnavailable):
			g.log.WarnContext(r.Context(), "token verification unavailable", "err", err)
			g.metrics.request(transport, methodLabel(r.Method), "unavailable")
			w.Header().Set("Retry-After", "5")
			writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "token verification is temporarily unavailable")
			return
		case err != nil:
			g.refused(r, err)
			g.metrics.request(transport, methodLabel(r.Method), "unauthorized")
			g.unauthorized(w, transport, g.challengerFor(transport).refusal(err))
			return
		}
		ctx := tokens.NewContext(r.Context(), claims)
		if transport != transportStreamable {
			// /mcp's challenger is the catalog's own, what forRequest
			// falls back to: no context value needed on the call path.
			ctx = context.WithValue(ctx, challengerKey{}, g.challengerFor(transport))
		}
		telemetry.LogAttrs(ctx, slog.String("client_id", claims.ClientID))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// refused writes the bounded WARN line "access token refused"
// (logging.RefusalLog, as the Actions API writes it) for r, whose token
// the verifier refused with err: the reason as a code
// (tokens.RefusalCode), the trusted client address (platform/clientip),
// method, path and, through the context, the request id; the grant and
// client only from a token whose signature verified
// (tokens.RefusedClaims) — never the token, nor anything of one that did
// not verify (its kid, its claims: the sender's own text).
func (g *Gateway) refused(r *http.Request, err error) {
	rf := logging.Refusal{Reason: tokens.RefusalCode(err), ClientAddress: g.addrs.String(r), Method: r.Method, Path: r.URL.Path}
	if c := tokens.RefusedClaims(err); c != nil {
		rf.GrantID, rf.ClientID = c.GrantID, c.ClientID
	}
	g.refusals.Log(r.Context(), rf)
}

// challengerFor is the challenger of transport's endpoints.
func (g *Gateway) challengerFor(transport string) *challenger {
	if transport == transportSSE {
		return g.sseChallenges
	}
	return g.challenges
}

func (g *Gateway) unauthorized(w http.ResponseWriter, transport, desc string) {
	w.Header().Set("WWW-Authenticate", g.challengerFor(transport).invalidToken(desc))
	writeOAuthError(w, http.StatusUnauthorized, "invalid_token", desc)
}

func writeOAuthError(w http.ResponseWriter, code int, errCode, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	writeJSON(w, map[string]string{"error": errCode, "error_description": desc})
}

// writeHTTPError answers a transport-level refusal with a JSON-RPC error
// body (id null), which MCP clients parse, and the HTTP status.
func writeHTTPError(w http.ResponseWriter, code int, rpcCode int, msg string) {
	writeRPCError(w, code, nil, rpcCode, msg)
}

// writeRPCError answers with a JSON-RPC error for request id (null if none).
func writeRPCError(w http.ResponseWriter, code int, id json.RawMessage, rpcCode int, msg string) {
	id = answerID(id)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	// The id as the client wrote it (marshalRaw).
	if b, err := marshalRaw(map[string]any{
		"jsonrpc": "2.0", "id": id,
		"error": map[string]any{"code": rpcCode, "message": msg},
	}); err == nil {
		_, _ = w.Write(append(b, '\n'))
	}
}

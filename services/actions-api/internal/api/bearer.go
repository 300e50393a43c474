package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tollgate/tollgate/services/platform/tokens"
)

// realm names the protection space in Bearer challenges.
const realm = "tollgate-actions"

// challenge renders a WWW-Authenticate Bearer challenge (RFC 6750 section
// 3). code may be empty (no credentials were sent); metadata is the URL of
// the API's protected resource metadata (RFC 9728 section 5.1
// resource_metadata), so a client that starts at the API finds its
// authorization server; scope lists what the operation needs.
func challenge(metadata, code, desc string, scopes []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Bearer realm=%q", realm)
	if metadata != "" {
		fmt.Fprintf(&b, ", resource_metadata=%q", metadata)
	}
	if code != "" {
		fmt.Fprintf(&b, ", error=%q", code)
	}
	if desc != "" {
		fmt.Fprintf(&b, ", error_description=%q", tokens.ChallengeText(desc))
	}
	if len(scopes) > 0 {
		fmt.Fprintf(&b, ", scope=%q", strings.Join(scopes, " "))
	}
	return b.String()
}

// authenticate applies the bearer rules to r: exactly one Authorization
// header with a Bearer token, none in the query, an RS256 token for this
// API's audience from the fleet's issuer, and every scope in required.
func (s *server) authenticate(r *http.Request, required []string) (*tokens.Claims, *apiError) {
	raw, err := tokens.FromRequest(r)
	switch {
	case errors.Is(err, tokens.ErrDuplicateAuthorization), errors.Is(err, tokens.ErrQueryToken):
		e := newError(http.StatusBadRequest, "invalid_request", err.Error())
		e.challenge = challenge(s.metadataURL, "invalid_request", err.Error(), required)
		return nil, e
	case errors.Is(err, tokens.ErrNoToken), errors.Is(err, tokens.ErrNotBearer):
		// No credentials, or another scheme (Basic) or an empty Bearer:
		// RFC 6750 §3.1 — a request without authentication information
		// ("or attempted using an unsupported authentication method")
		// gets a challenge without an error code, as at the gateway.
		desc := "a bearer access token is required"
		if errors.Is(err, tokens.ErrNotBearer) {
			desc = err.Error() + ": " + desc
		}
		e := newError(http.StatusUnauthorized, "invalid_token", desc)
		e.challenge = challenge(s.metadataURL, "", "", required)
		return nil, e
	case err != nil:
		s.refusals.log(s, r, err.Error())
		e := newError(http.StatusUnauthorized, "invalid_token", err.Error())
		e.challenge = challenge(s.metadataURL, "invalid_token", err.Error(), required)
		return nil, e
	}
	claims, err := s.verifier.Verify(r.Context(), raw)
	switch {
	case errors.Is(err, tokens.ErrKeysUnavailable):
		return nil, unavailable("cannot verify access tokens right now; retry later", err)
	case err != nil:
		reason := tokens.RefusalReason(err)
		s.refusals.log(s, r, reason)
		desc := "access token rejected: " + reason
		if reason == "wrong audience" {
			// What the client can do about it, as the gateway says for
			// the opposite case: ask for a token for this resource
			// (RFC 8707), typically it used one obtained for /mcp.
			desc += "; this is the Actions resource " + s.cfg.Audience + ": request the token with resource=" + s.cfg.Audience + " (RFC 8707)"
		}
		e := newError(http.StatusUnauthorized, "invalid_token", desc)
		e.challenge = challenge(s.metadataURL, "invalid_token", desc, required)
		return nil, e
	}
	if missing := claims.MissingScopes(required); len(missing) > 0 {
		desc := "the access token lacks the scopes: " + strings.Join(missing, " ")
		e := newError(http.StatusForbidden, "insufficient_scope", desc)
		e.challenge = challenge(s.metadataURL, "insufficient_scope", desc, required)
		return nil, e
	}
	return claims, nil
}

// refusalLinesPerSecond bounds the "access token refused" lines a replica
// writes per second: an anonymous flood of bad tokens must not fill the
// logs. Refusals beyond it are counted and the count is reported on the
// next line written ("suppressed"); every refusal is still counted in
// tollgate_actions_requests_total (status 401).
const refusalLinesPerSecond = 10

// refusalLog writes one warn line per refused bearer token, at most
// refusalLinesPerSecond per second.
type refusalLog struct {
	mu         sync.Mutex
	window     time.Time
	n          int
	suppressed int
}

// log writes the refusal of r's token for reason (tokens.RefusalReason:
// expired, wrong audience, bad signature, not a JWS, …) with the trusted
// client address and, through the context, the request id — never the
// token. The grant and client are not named: they are read only from a
// token whose signature verified, and Verify gives no claims with its error.
func (l *refusalLog) log(s *server, r *http.Request, reason string) {
	now := time.Now()
	l.mu.Lock()
	if now.Sub(l.window) >= time.Second {
		l.window, l.n = now, 0
	}
	if l.n >= refusalLinesPerSecond {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	l.n++
	suppressed := l.suppressed
	l.suppressed = 0
	l.mu.Unlock()
	s.log.WarnContext(r.Context(), "access token refused", "reason", reason, "client_address", s.addrs.String(r),
		"method", r.Method, "path", r.URL.Path, "suppressed", suppressed)
}

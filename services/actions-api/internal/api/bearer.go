package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/services/platform/logging"
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
	case err != nil:
		// FromRequest's other errors: no credentials (ErrNoToken),
		// another scheme such as Basic (ErrNotBearer), a Bearer without
		// a token (ErrEmptyBearer) or with a space or comma in it
		// (ErrMalformedBearer). RFC 6750 §3.1 — a request without
		// authentication information ("or attempted using an unsupported
		// authentication method") gets a challenge without an error code,
		// as at the gateway; no token was refused, so no refusal line.
		// The description says which: each error's text is true of the
		// header (a Bearer without a token was "not Bearer").
		desc := "a bearer access token is required"
		if !errors.Is(err, tokens.ErrNoToken) {
			desc = err.Error() + ": " + desc
		}
		e := newError(http.StatusUnauthorized, "invalid_token", desc)
		e.challenge = challenge(s.metadataURL, "", "", required)
		return nil, e
	}
	claims, err := s.verifier.Verify(r.Context(), raw)
	switch {
	case errors.Is(err, tokens.ErrKeysUnavailable):
		return nil, unavailable("cannot verify access tokens right now; retry later", err)
	case err != nil:
		s.refuse(r, tokens.RefusalCode(err), tokens.RefusedClaims(err))
		reason := tokens.RefusalReason(err)
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
		s.refuse(r, tokens.ReasonInsufficientScope, claims)
		desc := "the access token lacks the scopes: " + strings.Join(missing, " ")
		e := newError(http.StatusForbidden, "insufficient_scope", desc)
		e.challenge = challenge(s.metadataURL, "insufficient_scope", desc, required)
		return nil, e
	}
	return claims, nil
}

// refuse writes the bounded "access token refused" line
// (logging.RefusalLog, as the mcp-gateway writes it) of r's token for
// reason (a tokens.Reason* code), with the trusted client address and,
// through the context, the request id, and the grant and client of
// verified, the token's claims when its signature verified (nil
// otherwise: nothing of an unverified token is logged) — never the token.
func (s *server) refuse(r *http.Request, reason string, verified *tokens.Claims) {
	rf := logging.Refusal{Reason: reason, ClientAddress: s.addrs.String(r), Method: r.Method, Path: r.URL.Path}
	if verified != nil {
		rf.GrantID, rf.ClientID = verified.GrantID, verified.ClientID
	}
	s.refusals.Log(r.Context(), rf)
}

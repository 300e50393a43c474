package oauth

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/ory/fosite"

	"github.com/tollgate/tollgate/services/auth-server/internal/audit"
	"github.com/tollgate/tollgate/services/platform/revocation"
)

type auditKey struct{}

// withAudit starts the audit record of a browser-facing request: fail and
// redirectError fill in the result, the handler the rest, and logAudit
// writes it when the handler returns.
func (s *Server) withAudit(r *http.Request, rec audit.Record) (*http.Request, *audit.Record) {
	rec.ClientAddr = s.remoteAddr(r)
	p := &rec
	return r.WithContext(context.WithValue(r.Context(), auditKey{}, p)), p
}

// auditOf is the request's audit record, or nil.
func auditOf(r *http.Request) *audit.Record {
	rec, _ := r.Context().Value(auditKey{}).(*audit.Record)
	return rec
}

// setAuditResult records the error answered for the request (the first
// one wins).
func setAuditResult(r *http.Request, code string) {
	if rec := auditOf(r); rec != nil && rec.Result == "" {
		rec.Result = code
	}
}

// revokedGrant is the grant auditingRevoker saw revoked during r, or "".
func revokedGrant(r *http.Request) string {
	if rec := auditOf(r); rec != nil {
		return rec.GrantID
	}
	return ""
}

// logAudit writes rec unless its event was cleared (the request handed
// the event over to a later step).
func (s *Server) logAudit(r *http.Request, rec *audit.Record) {
	if rec.Event == "" {
		return
	}
	s.audit.Log(r.Context(), *rec)
}

// auditEvent records an event of the token, revocation, introspection or
// registration endpoint.
func (s *Server) auditEvent(r *http.Request, rec audit.Record) {
	if held := auditOf(r); held != nil && held.ClientAddr != "" {
		rec.ClientAddr = held.ClientAddr // resolved from the same request
	} else {
		rec.ClientAddr = s.remoteAddr(r)
	}
	rec.ClientAuthenticated = rec.ClientAuthenticated && provedIdentity(r.Context())
	s.audit.Log(r.Context(), rec)
}

// provedIdentity reports whether the client fosite's authentication
// accepted for the request proved its identity. A public client
// (token_endpoint_auth_method "none") passes that authentication by naming
// its id and proves nothing (RFC 6749 §2.1, §10.1; OAuth 2.1 §2.1), so
// its records say client_authenticated:false, as a claimed id's do
// (docs/operations/audit-log.md). Without a clientAuth in ctx (no
// authentication ran through the guard) the record's own value stands.
func provedIdentity(ctx context.Context) bool {
	c := clientAuthFrom(ctx).authenticatedClient()
	return c == nil || !c.IsPublic()
}

// auditRefused records an authorization, registration, token or
// revocation request the guard refused before its handler ran (the
// per-address rate limit, its limiter unavailable, a repeated parameter,
// …), so that every such request has its event: a token request a
// `grant` record, a revocation request a `revocation` record with
// endpoint "revoke" (docs/operations/audit-log.md). No client has
// authenticated yet: client_id is the one claimed, if any
// (client_authenticated false). The introspection and userinfo endpoints
// have no audit event.
func (s *Server) auditRefused(r *http.Request, endpoint, code string) {
	switch endpoint {
	case "authorize":
		s.auditEvent(r, audit.Record{Event: audit.AuthorizationRequest, Result: code, ClientID: r.URL.Query().Get("client_id")})
	case "register":
		s.auditEvent(r, audit.Record{Event: audit.Registration, Result: code})
	case "token":
		s.auditEvent(r, audit.Record{Event: audit.Grant, Result: code, ClientID: claimedClientID(r), GrantType: r.PostForm.Get("grant_type")})
	case "revoke":
		s.auditEvent(r, audit.Record{Event: audit.Revocation, Result: code, ClientID: claimedClientID(r), Endpoint: "revoke"})
	}
}

// claimedClientID is the client id a request claims, before or without
// successful authentication: once fosite's client authentication looked
// a client up, the id it looked up (clientLookups: for private_key_jwt
// without client_id, the assertion's "sub" as fosite read it); before, or
// when it looked up none (an assertion that does not parse), the Basic
// user name or the client_id parameter.
func claimedClientID(r *http.Request) string {
	if id, ok := clientAuthFrom(r.Context()).lookedUpID(); ok {
		return id
	}
	if id, _, ok := r.BasicAuth(); ok && id != "" {
		// RFC 6749 §2.3.1: the Basic user name is form-urlencoded.
		if dec, err := url.QueryUnescape(id); err == nil {
			return dec
		}
		return id
	}
	return r.PostForm.Get("client_id")
}

// authenticatedClientID is the id of the client fosite's authentication
// accepted for r (clientAuth.authenticatedClient) — for use only once it
// did (the revocation endpoint after NewRevocationRequest, a grant revoked
// at the token endpoint), where the revocation audit records name it. A
// private_key_jwt request may send no client_id (RFC 7523 §3), and nothing
// the request carries is read again here: an assertion's claims decoded a
// second time need not be the ones fosite checked. Without a clientAuth
// (none is made outside the token and revocation endpoints) it is the
// claimed id.
func authenticatedClientID(r *http.Request) string {
	if c := clientAuthFrom(r.Context()).authenticatedClient(); c != nil {
		return c.GetID()
	}
	return claimedClientID(r)
}

// auditingRevoker hands every revoked grant on to the fleet-wide revoker
// (nil: none) and writes the revocation audit event of a grant revoked at
// the token endpoint (replayed code, refresh-token reuse). An RFC 7009
// request's grant is not recorded here: the revocation endpoint writes
// the request's one record once fosite's handler is done, from both of its
// revocations' outcome (revocationFailure), so that a request whose
// revocation failed, wholly or in part, is one record, not a failure
// record and a success record or two failure records.
type auditingRevoker struct {
	s    *Server
	next *revocation.Revoker
}

func (a auditingRevoker) Revoke(ctx context.Context, grantID string, tokensEnd time.Time) error {
	var err error
	if a.next != nil {
		err = a.next.RevokeUntil(ctx, grantID, tokensEnd)
	}
	if revocationFailureOf(ctx) != nil {
		return err // an RFC 7009 request: revoke writes its record
	}
	if d, ok := ctx.Value(revocationRecordKey{}).(*audit.Record); ok {
		rec := *d // a user's disconnect (Disconnect), a grant of an issuer no longer accepted (revokeForeignGrant)
		rec.GrantID = grantID
		if err != nil {
			rec.Result = "temporarily_unavailable"
		}
		a.s.audit.Log(ctx, rec)
		return err
	}
	held, _ := ctx.Value(auditKey{}).(*audit.Record)
	if held != nil && held.GrantID == grantID && err == nil {
		return nil // fosite's refresh handler revokes a reused token's grant twice (its refresh and access tokens)
	}
	rec := audit.Record{Event: audit.Revocation, GrantID: grantID, ClientAuthenticated: true}
	if err != nil {
		rec.Result = "temporarily_unavailable"
	}
	if r, ok := ctx.Value(fosite.RequestContextKey).(*http.Request); ok {
		// fosite revokes a grant only for a request whose client
		// authenticated (a replayed code, a reused refresh token), so
		// the record names that client.
		rec.ClientAddr, rec.ClientID = a.s.remoteAddr(r), authenticatedClientID(r)
		rec.ClientAuthenticated = provedIdentity(ctx)
		switch {
		case r.PostForm.Get("grant_type") == "authorization_code":
			rec.Endpoint, rec.Reason = "token", "authorization code replayed (RFC 6749 §4.1.2)"
		case r.PostForm.Get("grant_type") == "refresh_token":
			rec.Endpoint, rec.Reason = "token", "rotated refresh token reused (RFC 9700 §4.14.2)"
			if held != nil {
				rec.TokenClientID = held.TokenClientID // reuseWitness
			}
		}
	}
	if held != nil {
		held.GrantID = grantID
	}
	a.s.audit.Log(ctx, rec)
	return err
}

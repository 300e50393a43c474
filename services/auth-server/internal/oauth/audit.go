package oauth

import (
	"context"
	"net/http"
	"net/url"

	"github.com/tollgate/tollgate/services/auth-server/internal/audit"
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
	rec.ClientAddr = s.remoteAddr(r)
	s.audit.Log(r.Context(), rec)
}

// claimedClientID is the client id a request claims (Basic user name or
// client_id parameter), before or without successful authentication.
func claimedClientID(r *http.Request) string {
	if id, _, ok := r.BasicAuth(); ok && id != "" {
		// RFC 6749 §2.3.1: the Basic user name is form-urlencoded.
		if dec, err := url.QueryUnescape(id); err == nil {
			return dec
		}
		return id
	}
	return r.PostForm.Get("client_id")
}

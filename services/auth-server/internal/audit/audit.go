// Package audit is the auth-server's audit trail: one structured JSON line
// per security-relevant OAuth event (authorization request, consent, code
// issued, grant, refresh-token reuse, revocation, registration, client
// authentication failure).
//
// Audit events have their own logger, separate from the service log: every
// line is JSON (whatever LOG_FORMAT says), carries "log.type":"audit" so a
// log pipeline can route it, and is never filtered by LOG_LEVEL. A line
// holds who (client id, hashed subject, client address), what (event,
// grant type, result) and which grant (grant id) — never a secret, code or
// token. docs/operations/audit-log.md shows one example of each event.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"sync"

	"github.com/tollgate/tollgate/services/platform/logging"
)

// Event names: the value of the "event" attribute.
const (
	// AuthorizationRequest: GET /oauth/authorize was answered — result "ok"
	// (the browser was sent to sign in) or the OAuth error code.
	AuthorizationRequest = "authorization_request"
	// Consent: the user answered the consent page — "ok" (approved),
	// "access_denied" (denied) or the error that stopped the form.
	Consent = "consent"
	// CodeIssued: the sign-in finished — "ok" with the new grant id, or the
	// error sent to the client instead of a code.
	CodeIssued = "code_issued"
	// Grant: a token request (grant_type authorization_code or
	// refresh_token) — "ok" or the OAuth error code.
	Grant = "grant"
	// RefreshReuse: an already rotated refresh token was presented again;
	// the grant is revoked (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2).
	RefreshReuse = "refresh_reuse_detected"
	// Revocation: a grant was revoked (RFC 7009 request, replayed code,
	// refresh reuse, a user's disconnect) — "ok" or the error code.
	Revocation = "revocation"
	// Registration: POST /oauth/register (RFC 7591) — "ok" with the new
	// client id, or the error code.
	Registration = "registration"
	// ClientAuthFailure: a client failed to authenticate at the token,
	// revocation or introspection endpoint; client_id is the one claimed.
	ClientAuthFailure = "client_authentication_failure"
)

// ResultOK is the result of an event that succeeded; otherwise the result
// is the OAuth error code answered (invalid_client, access_denied, …).
const ResultOK = "ok"

// Record is one audit event. Empty fields are left out of the line.
type Record struct {
	Event string
	// Result is ResultOK or the OAuth error code.
	Result string
	// ClientID is the client the event concerns. ClientAuthenticated says
	// whether the request proved it (client authentication at the token,
	// revocation and introspection endpoints); false means the id is only
	// claimed (an authorization request's client_id, a failed login).
	ClientID            string
	ClientAuthenticated bool
	// Subject is the end user's subject; it is logged as its SHA-256
	// (hex, "subject_hash"), never in the clear.
	Subject string
	// GrantID identifies the grant (the authorization's request id, shared
	// by its code, access and refresh tokens).
	GrantID string
	// GrantType is the token request's grant_type (Grant events).
	GrantType string
	// ClientAddr is the requesting client's network address.
	ClientAddr string
	// Endpoint names where a ClientAuthFailure or Revocation happened
	// (token, revoke, introspect, …).
	Endpoint string
	// Reason is a short fixed explanation (never request data).
	Reason string
}

// Logger writes audit events. A nil *Logger discards them.
type Logger struct{ log *slog.Logger }

// New writes audit events to w as JSON lines tagged "log.type":"audit" and
// "service":service. Attributes whose keys name secrets are redacted as in
// the service log, as a second line of defence, and every value is cut to
// logging.MaxValueBytes (a claimed client id is whatever a request sends).
func New(w io.Writer, service string) *Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo, ReplaceAttr: redact})
	return &Logger{log: slog.New(h).With("log.type", "audit", "service", service)}
}

// Log writes r.
func (l *Logger) Log(ctx context.Context, r Record) {
	if l == nil {
		return
	}
	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs, slog.String("event", r.Event))
	result := r.Result
	if result == "" {
		result = ResultOK
	}
	attrs = append(attrs, slog.String("result", result))
	add := func(k, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(k, v))
		}
	}
	add("client_id", r.ClientID)
	if r.ClientID != "" {
		attrs = append(attrs, slog.Bool("client_authenticated", r.ClientAuthenticated))
	}
	if r.Subject != "" {
		add("subject_hash", HashSubject(r.Subject))
	}
	add("grant_id", r.GrantID)
	add("grant_type", r.GrantType)
	add("client_address", r.ClientAddr)
	add("endpoint", r.Endpoint)
	add("reason", r.Reason)
	l.log.LogAttrs(ctx, slog.LevelInfo, "audit", attrs...)
}

// HashSubject is how subjects appear in the audit log: the hex SHA-256 of
// the subject (operators find a user's events with
// `printf %s "$sub" | sha256sum`).
func HashSubject(sub string) string {
	sum := sha256.Sum256([]byte(sub))
	return hex.EncodeToString(sum[:])
}

// fixedValues are the attributes whose values the server makes itself
// from fixed sets or its own identifiers (event and result names, the
// grant type checked against the supported ones, the subject's hash,
// fosite's request ids, endpoint names): scrubbing them
// for secrets (four regular expressions per value) was a tenth of the
// auth-server's CPU outside signatures (docs/benchmarks/auth-server.md).
// Values a request supplies (client_id, client_address) are scrubbed and
// bounded, and so is reason, the one free text.
var fixedValues = map[string]bool{
	"event": true, "result": true, "grant_type": true, "subject_hash": true, "grant_id": true,
	"endpoint": true, "log.type": true, "service": true,
}

func redact(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && fixedValues[a.Key] {
		return a
	}
	if logging.IsSecretKey(a.Key) {
		return slog.String(a.Key, logging.Redacted)
	}
	if a.Value.Kind() == slog.KindString {
		if s := a.Value.String(); s != "" {
			if r := bound(s); r != s {
				return slog.String(a.Key, r)
			}
		}
	}
	return a
}

// boundCache remembers logging.Bound of short values: client ids and
// addresses repeat from line to line, and each Bound runs four regular
// expressions. At most boundCacheSize entries; when full it starts over.
var boundCache struct {
	sync.Mutex
	m map[string]string
}

const (
	boundCacheSize     = 1024
	boundCacheMaxBytes = 256
)

func bound(s string) string {
	if len(s) > boundCacheMaxBytes {
		return logging.Bound(s)
	}
	boundCache.Lock()
	r, ok := boundCache.m[s]
	boundCache.Unlock()
	if ok {
		return r
	}
	r = logging.Bound(s)
	boundCache.Lock()
	if boundCache.m == nil || len(boundCache.m) >= boundCacheSize {
		boundCache.m = make(map[string]string, boundCacheSize)
	}
	boundCache.m[s] = r
	boundCache.Unlock()
	return r
}

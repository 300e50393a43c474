// Package audit is the auth-server's audit trail: one structured JSON line
// per security-relevant OAuth event (authorization request, consent, code
// issued, grant, refresh-token reuse, revocation, registration, consent
// withdrawal, client authentication failure, client registry change).
//
// Audit events have their own logger, separate from the service log: every
// line is JSON (whatever LOG_FORMAT says), carries "log.type":"audit" so a
// log pipeline can route it, and is never filtered by LOG_LEVEL. A line
// holds who (client id, hashed subject, client address), what (event,
// grant type, result), which grant (grant id) and which request
// (request_id: the context's logging.RequestID — the X-Request-Id of an
// HTTP request, the x-request-id metadata of a gRPC call) — never a
// secret, code or token. docs/operations/audit-log.md shows one example of each event.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

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
	// ConsentRevocation: POST /oauth/consent/revoke — the user withdrew
	// their remembered consent to client_id ("ok"), or the request was
	// refused (invalid_request, temporarily_unavailable).
	ConsentRevocation = "consent_revocation"
	// ClientRegistryChange: a CLIENTS_FILE reload added, removed or
	// changed a registered client; reason says which ("added", "removed",
	// "changed: redirect_uris, secret", …), never a secret or its hash.
	ClientRegistryChange = "client_registry_change"
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
	// TokenClientID is the client the presented token was issued to, when
	// that matters and may differ from ClientID: a rotated refresh token
	// presented again (RefreshReuse, and the Revocation it causes at the
	// token endpoint), a Grant refused on a code or refresh token the
	// store found (another client's, a scope or resource beyond its
	// grant), another client's token at the revocation endpoint.
	TokenClientID string
	// Subject is the end user's subject; it is logged as its SHA-256
	// (hex, "subject_hash"), never in the clear.
	Subject string
	// UpstreamIssuer is the verified iss of the upstream IdP's ID token that
	// vouched for Subject (CodeIssued): which provider — for Entra ID
	// multi-tenant, which tenant — signed the user in.
	UpstreamIssuer string
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
	// RedirectURIs are the redirect URIs a client registered
	// (Registration "ok"): where its codes go. Logged as a JSON array of
	// strings ("redirect_uris"), each bounded and scrubbed as client_id.
	RedirectURIs []string
}

// Logger writes audit events. A nil *Logger discards them.
//
// A line is the JSON object slog's JSON handler writes — "time" (RFC 3339
// with exactly three fractional digits, where slog writes up to nine),
// "level":"INFO", "msg":"audit", "log.type", "service", then
// the record's attributes in Log's order — but appended directly into a
// pooled buffer: through slog the formatting was ~2 % of a refresh's CPU
// (docs/benchmarks/auth-server-history.md). One write per line, serialised — or,
// when the writer is a *logging.Output, the line joins the lines of the
// request of Log's context (logging.Output.Hold) and reaches the output
// with its access-log line, in one write, no later than the response
// (see logging.Output for when a held line is written).
type Logger struct {
	mu     sync.Mutex
	w      io.Writer
	out    *logging.Output // w, when it is one
	prefix string          // `,"level":"INFO","msg":"audit","log.type":"audit","service":…`
	now    func() time.Time
}

// New writes audit events to w as JSON lines tagged "log.type":"audit" and
// "service":service. Attributes whose keys name secrets are redacted as in
// the service log, as a second line of defence, and every value a request
// supplies is cut to logging.MaxValueBytes and scrubbed (a claimed client id
// is whatever a request sends: "https://u:pw@h/cb" is recorded as
// "https://[REDACTED]@h/cb", a refresh token sent as client_id as
// "ory_rt_[REDACTED]"; see logging.Scrub).
func New(w io.Writer, service string) *Logger {
	b := []byte(`,"level":"INFO","msg":"audit","log.type":"audit","service":`)
	b = appendJSONString(b, value("service", service))
	out, _ := w.(*logging.Output)
	return &Logger{w: w, out: out, prefix: string(b), now: time.Now}
}

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Log writes r; ctx is the request's (see Logger).
func (l *Logger) Log(ctx context.Context, r Record) {
	if l == nil {
		return
	}
	bp := linePool.Get().(*[]byte)
	b := append((*bp)[:0], `{"time":"`...)
	b = appendRFC3339Millis(b, l.now())
	b = append(b, '"')
	b = append(b, l.prefix...)
	result := r.Result
	if result == "" {
		result = ResultOK
	}
	var requestID string
	if ctx != nil {
		requestID = logging.RequestID(ctx)
	}
	b = appendAttr(b, &attrEvent, r.Event)
	b = appendAttr(b, &attrResult, result)
	if r.ClientID != "" {
		b = appendAttr(b, &attrClientID, r.ClientID)
		b = append(b, `,"client_authenticated":`...)
		b = strconv.AppendBool(b, r.ClientAuthenticated)
	}
	if r.Subject != "" {
		b = appendSubjectHash(b, r.Subject)
	}
	for i, v := range [...]string{r.UpstreamIssuer, r.TokenClientID, r.GrantID, r.GrantType, r.ClientAddr, r.Endpoint, r.Reason, requestID} {
		if v != "" {
			b = appendAttr(b, &attrsAfterSubject[i], v)
		}
	}
	if len(r.RedirectURIs) > 0 {
		b = append(b, `,"redirect_uris":[`...)
		for i, u := range r.RedirectURIs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, attrRedirectURIs.kind.value(u))
		}
		b = append(b, ']')
	}
	b = append(b, '}', '\n')
	if l.out != nil {
		_ = l.out.WriteLine(ctx, b)
	} else {
		l.mu.Lock()
		_, _ = l.w.Write(b)
		l.mu.Unlock()
	}
	if cap(b) <= 4096 {
		*bp = b
		linePool.Put(bp)
	}
}

// attr is an attribute of the line: its key, and what value(key, …) does
// to its values, worked out once (Log writes the same keys every line).
type attr struct {
	key  string
	kind valueKind
}

func newAttr(key string) attr { return attr{key, kindOf(key)} }

// The line's attributes after "service", in their order (subject_hash,
// always fixed, comes after client_authenticated).
var (
	attrEvent         = newAttr("event")
	attrResult        = newAttr("result")
	attrClientID      = newAttr("client_id")
	attrsAfterSubject = [...]attr{
		newAttr("upstream_issuer"), newAttr("token_client_id"), newAttr("grant_id"), newAttr("grant_type"), newAttr("client_address"),
		newAttr("endpoint"), newAttr("reason"), newAttr("request_id"),
	}
	attrRedirectURIs = newAttr("redirect_uris") // last, an array
)

// appendAttr appends ,"key":"value" with value as value(a.key, v) makes it.
func appendAttr(b []byte, a *attr, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, a.key...)
	b = append(b, '"', ':')
	return appendJSONString(b, a.kind.value(v))
}

// appendSubjectHash appends ,"subject_hash":"<HashSubject(sub)>" (a fixed
// value: hex needs no escaping).
func appendSubjectHash(b []byte, sub string) []byte {
	sum := sha256.Sum256([]byte(sub))
	b = append(b, `,"subject_hash":"`...)
	b = hex.AppendEncode(b, sum[:])
	return append(b, '"')
}

// appendRFC3339Millis appends t in RFC 3339 with exactly three fractional
// digits (milliseconds, truncated): the audit line's fixed-width time.
func appendRFC3339Millis(b []byte, t time.Time) []byte {
	const prefixLen = len("2006-01-02T15:04:05.000")
	n := len(b)
	t = t.Truncate(time.Millisecond).Add(time.Millisecond / 10)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b[:n+prefixLen], b[n+prefixLen+1:]...) // drop the fourth digit
}

// appendJSONString appends s as a JSON string (encoding/json's escaping,
// without its HTML escaping, as slog does; invalid UTF-8 becomes U+FFFD).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
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
// for secrets (the logging package's regular expressions, per value) was a tenth of the
// auth-server's CPU outside signatures (docs/benchmarks/auth-server-history.md).
// Values a request supplies (client_id, client_address) are scrubbed and
// bounded, and so is reason, the one free text.
var fixedValues = map[string]bool{
	"event": true, "result": true, "grant_type": true, "subject_hash": true, "grant_id": true,
	"endpoint": true, "log.type": true, "service": true,
	// request_id: the context's id, which logging.ValidRequestID admitted
	// (letters, digits, ". _ : -", at most 128 bytes) or the server made.
	"request_id": true,
}

// value is what the line holds for attribute key with value v: fixed
// values as they are, a secret-named key redacted, any other value bounded
// and scrubbed (logging.Bound).
func value(key, v string) string { return kindOf(key).value(v) }

// valueKind is how value treats the values of a key.
type valueKind uint8

const (
	kindBounded valueKind = iota // bounded and scrubbed
	kindFixed                    // as it is
	kindSecret                   // redacted
)

func kindOf(key string) valueKind {
	switch {
	case fixedValues[key]:
		return kindFixed
	case logging.IsSecretKey(key):
		return kindSecret
	}
	return kindBounded
}

func (k valueKind) value(v string) string {
	switch {
	case k == kindFixed:
		return v
	case k == kindSecret:
		return logging.Redacted
	case v == "":
		return v
	}
	return bound(v)
}

// boundCache remembers logging.Bound of short values: client ids and
// addresses repeat from line to line, and each Bound may run the logging
// package's regular expressions. At most boundCacheSize entries; when full it starts over.
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

// Package logging builds the fleet's slog loggers: JSON in clusters, text on
// a terminal, secrets redacted wherever they appear in attributes, and every
// value bounded in size (MaxValueBytes).
package logging

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// Redacted replaces secret values in logs.
const Redacted = "[REDACTED]"

// secretKeys are attribute keys (compared lower-cased, also after the last
// dot, so "http.authorization" counts) whose values are never logged.
var secretKeys = map[string]bool{
	"authorization": true, "cookie": true, "set-cookie": true, "password": true,
	"secret": true, "client_secret": true, "token": true, "access_token": true,
	"refresh_token": true, "id_token": true, "code_verifier": true,
	"assertion": true, "client_assertion": true, "private_key": true,
	"nonce": true, "session_id": true, "mcp-session-id": true,
}

// bareSecretKeys are secret only as whole keys: "code" is an authorization
// code, but "grpc.code" is a status code.
var bareSecretKeys = map[string]bool{"code": true, "state": true, "key": true}

// secretPatterns catch secrets embedded in free text such as error
// messages; each match becomes repl (${1} keeps the part that says what
// was removed).
var secretPatterns = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`(?i)(bearer|basic)\s+[A-Za-z0-9\-._~+/]+=*`), Redacted},
	{regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*`), Redacted},
	{regexp.MustCompile(`(?i)((?:access_token|refresh_token|id_token|client_secret|code_verifier|password|code)=)[^&\s"]+`), "${1}" + Redacted},
	// The user information of a Redis URL, whose password may hold a
	// "/" (the general form below stops at one).
	{regexp.MustCompile(`(?i)(rediss?://)[^:/@\s]*:[^@\s]+@`), "${1}" + Redacted + "@"},
	// The user information of a URL of any scheme (RFC 3986 §3.2.1:
	// "user:password@", deprecated, or a token as the user name), up to
	// the first "@" before the path, query or fragment; not across a
	// quote or backslash, so a match never runs over the JSON around a
	// URL to a later "@" (a mail address). Any other character a
	// password may hold, even one RFC 3986 would have percent-encoded
	// ("^", "|"), is taken: a secret is better cut too much.
	{regexp.MustCompile(`(?i)([a-z][a-z0-9+.\-]*://)[^\s/?#@"\\]+@`), "${1}" + Redacted + "@"},
	// The auth-server's opaque tokens: fosite's HMAC strategy prefixes
	// access tokens (ory_at_), refresh tokens (ory_rt_) and authorization
	// codes (ory_ac_) to <key>.<mac> (base64url); the prefix is kept. Not
	// inside a word: "memory_rt_cache" is no token.
	{regexp.MustCompile(`\b(ory_(?:at|rt|ac)_)[A-Za-z0-9_.\-]+`), "${1}" + Redacted},
	// Tollgate's own generated client secrets: two crypto/rand.Text
	// values, 52 characters of RFC 4648 base32 (A-Z, 2-7) — what
	// dev-init writes and dynamic registration issues. An operator who
	// pastes one into client_id (fields swapped) would otherwise have it
	// logged as the claimed client id.
	{regexp.MustCompile(`\b[A-Z2-7]{52}\b`), Redacted},
}

// secretRunLen is the length of a Tollgate-generated client secret (see
// secretPatterns): a run of that many base32 characters makes maySecret true.
const secretRunLen = 52

// MaxValueBytes bounds one string (or error) attribute value in a log line:
// a request never decides how large a line gets (a client id of 1 MB in an
// HTTP Basic header used to be written whole, twice per request). Longer
// values keep their first MaxValueBytes bytes and end in "…[N bytes]", N
// being the original length.
const MaxValueBytes = 4096

// Bound scrubs s (Scrub) and cuts the result to MaxValueBytes, at a UTF-8
// boundary, ending it in "…[N bytes]". Scrubbing reads at most
// 4×MaxValueBytes: a secret that starts beyond that is cut away anyway.
func Bound(s string) string {
	n := len(s)
	if n > 4*MaxValueBytes {
		s = s[:4*MaxValueBytes]
	}
	s = Scrub(s)
	if n <= MaxValueBytes && len(s) <= MaxValueBytes {
		return s
	}
	cut := min(len(s), MaxValueBytes)
	for cut > 0 && cut < len(s) && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…[" + strconv.Itoa(n) + " bytes]"
}

// New returns a logger writing to w in the given format ("json" or "text").
// Records logged with a context (InfoContext, …) also carry the context's
// request id (request_id) and trace (trace_id, span_id). When w is an
// *Output, records logged with a request's context inside Output.Hold are
// held and written with the request's other lines (see Output).
func New(w io.Writer, format string, level slog.Leveler, service string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	format1 := func(w io.Writer) slog.Handler {
		if format == "text" {
			return contextHandler{redactHandler{slog.NewTextHandler(w, opts)}}
		}
		return contextHandler{redactHandler{slog.NewJSONHandler(w, opts)}}
	}
	h := format1(w)
	if o, ok := w.(*Output); ok {
		h = &heldHandler{out: o, direct: h, format: format1}
	}
	return slog.New(h).With("service", service)
}

// redactHandler applies redacted to every attribute of the records and of
// the WithAttrs calls it passes on — inside groups too, LogValuer values
// resolved first — and bounds each record's message (Bound), as
// slog.HandlerOptions.ReplaceAttr would with redacted, which is how New
// did it until 2026-12-06. Through ReplaceAttr the JSON and text handlers
// take their slow path for the built-in attributes of every record (the
// level is encoded by encoding/json, ~4 k instructions a line) and call it
// once per attribute; here a record nothing needs to change of is passed
// on as it is (docs/benchmarks/auth-server-history.md, session 41
// "perf15"). The lines are byte for byte those ReplaceAttr wrote
// (TestRedactHandlerAsReplaceAttr).
type redactHandler struct{ slog.Handler }

func (h redactHandler) Handle(ctx context.Context, r slog.Record) error {
	r.Message = Bound(r.Message)
	// One pass: from the first attribute that changes on, the record is
	// copied (the attributes before it hold no LogValuer: each is passed
	// on as it is, and resolved once, by the handler).
	var out slog.Record
	copying, i := false, 0
	r.Attrs(func(a slog.Attr) bool {
		ra, changed := redactAttr(a)
		if changed && !copying {
			copying = true
			out = slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
			j := 0
			r.Attrs(func(b slog.Attr) bool {
				if j == i {
					return false
				}
				out.AddAttrs(b)
				j++
				return true
			})
		}
		if copying {
			out.AddAttrs(ra)
		}
		i++
		return true
	})
	if copying {
		return h.Handler.Handle(ctx, out)
	}
	return h.Handler.Handle(ctx, r)
}

func (h redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	rs := make([]slog.Attr, len(as))
	for i, a := range as {
		rs[i], _ = redactAttr(a)
	}
	return redactHandler{h.Handler.WithAttrs(rs)}
}

func (h redactHandler) WithGroup(name string) slog.Handler {
	return redactHandler{h.Handler.WithGroup(name)}
}

// redactAttr is a with its value resolved and redacted applied to it, or to
// each attribute of its group; changed reports whether that is not a
// itself (a LogValuer counts as changed: its value is then computed once).
func redactAttr(a slog.Attr) (_ slog.Attr, changed bool) {
	if a.Value.Kind() == slog.KindLogValuer {
		a.Value, changed = a.Value.Resolve(), true
	}
	if a.Value.Kind() != slog.KindGroup {
		r, c := redacted(a)
		return r, changed || c
	}
	g := a.Value.Group()
	var rs []slog.Attr
	for i, m := range g {
		r, c := redactAttr(m)
		if c && rs == nil {
			rs = make([]slog.Attr, len(g))
			copy(rs, g[:i])
		}
		if rs != nil {
			rs[i] = r
		}
	}
	if rs == nil {
		return a, changed
	}
	return slog.Attr{Key: a.Key, Value: slog.GroupValue(rs...)}, true
}

// redacted is what a log line holds for the attribute a (not a group) — a
// secret-named key's value redacted, a string or error value bounded and
// scrubbed (Bound) — and whether that differs from a.
func redacted(a slog.Attr) (slog.Attr, bool) {
	if IsSecretKey(a.Key) {
		return slog.String(a.Key, Redacted), true
	}
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); s != "" {
			if r := Bound(s); r != s {
				return slog.String(a.Key, r), true
			}
		}
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			return slog.String(a.Key, Bound(err.Error())), true
		}
	}
	return a, false
}

// IsSecretKey reports whether values under key are secrets.
func IsSecretKey(key string) bool {
	if m := secretKeyCache.m.Load(); m != nil {
		if secret, ok := (*m)[key]; ok {
			return secret
		}
	}
	secret := isSecretKey(key)
	secretKeyCache.add(key, secret)
	return secret
}

// secretKeyCache remembers IsSecretKey's answers for up to
// secretKeyCacheSize keys: the keys of log lines come from the code, a
// small set asked about on every line (an access-log line asks for each
// of its attributes), and each answer took a lower-cased copy and two map
// reads where a remembered one is one read of a map no lock guards (it is
// replaced, never changed, under mu). Past the size, keys are answered
// without being remembered.
var secretKeyCache keyCache

const secretKeyCacheSize = 512

type keyCache struct {
	mu sync.Mutex
	m  atomic.Pointer[map[string]bool]
}

func (c *keyCache) add(key string, secret bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil && len(*old) >= secretKeyCacheSize {
		return
	}
	next := map[string]bool{}
	if old != nil {
		next = maps.Clone(*old)
	}
	next[strings.Clone(key)] = secret // not a part of a larger string kept alive
	c.m.Store(&next)
}

func isSecretKey(key string) bool {
	k := strings.ToLower(key)
	if bareSecretKeys[k] {
		return true
	}
	if i := strings.LastIndexByte(k, '.'); i >= 0 {
		k = k[i+1:]
	}
	return secretKeys[k]
}

// Scrub removes bearer tokens, JWTs, the user information of URLs of any
// scheme ("https://user:pw@host" becomes "https://[REDACTED]@host"),
// the auth-server's opaque tokens and codes ("ory_rt_…" becomes
// "ory_rt_[REDACTED]"), Tollgate-generated client secrets (52 base32
// characters, "[REDACTED]") and secret query parameters from free text.
func Scrub(s string) string {
	if !maySecret(s) {
		return s
	}
	return scrub(s)
}

// scrub is Scrub without maySecret: every expression, always. A value
// with percent-encoded octets (a client id as a Basic header sent it,
// "https%3A%2F%2Fu%3Apw%40h") is also read decoded — its valid %XX
// sequences only, the rest kept as sent: the expressions see no secret in
// the encoded form. When the decoded form holds one, the decoded form,
// scrubbed, is what is returned.
func scrub(s string) string {
	out := scrubPatterns(s)
	if d := unescapeValid(s); d != s {
		if sd := scrubPatterns(d); sd != d {
			return sd
		}
	}
	return out
}

func scrubPatterns(s string) string {
	for _, p := range secretPatterns {
		s = p.re.ReplaceAllString(s, p.repl)
	}
	return s
}

// unescapeValid decodes each "%XX" of s whose XX are two hex digits and
// keeps every other byte as it is ("%zz" stays), where url.QueryUnescape
// would refuse the whole value.
func unescapeValid(s string) string {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c|0x20 && c|0x20 <= 'f'
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c | 0x20 - 'a' + 10
}

// maySecret reports whether s can match one of secretPatterns: each needs
// something most values lack — "bearer" or "basic" (any case), "eyJ", "=",
// "@", "ory_", a "%" (a percent-encoded form of any of them), or a run of
// secretRunLen base32 characters (a generated client secret). A string
// without any of them, and without non-ASCII bytes (under (?i) "s" also
// matches U+017F), is returned by Scrub as it is without running the
// expressions: most values logged are ids, routes,
// methods and short messages, and running them was a third of the CPU of
// an access-log line (docs/benchmarks/auth-server-history.md).
func maySecret(s string) bool {
	run := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' || c >= '2' && c <= '7' {
			if run++; run >= secretRunLen {
				return true
			}
		} else {
			run = 0
		}
		switch c := s[i]; {
		case c >= utf8.RuneSelf, c == '=', c == '@', c == '%':
			return true
		case c == 'e' && strings.HasPrefix(s[i:], "eyJ"):
			return true
		case c == 'o' && strings.HasPrefix(s[i:], "ory_"):
			return true
		case c|0x20 == 'b' && (hasPrefixFold(s[i:], "bearer") || hasPrefixFold(s[i:], "basic")):
			return true
		}
	}
	return false
}

// hasPrefixFold is strings.HasPrefix with ASCII letters compared without
// case; lower is lower-case ASCII.
func hasPrefixFold(s, lower string) bool {
	if len(s) < len(lower) {
		return false
	}
	for i := 0; i < len(lower); i++ {
		if s[i]|0x20 != lower[i] {
			return false
		}
	}
	return true
}

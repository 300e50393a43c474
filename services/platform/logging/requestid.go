package logging

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"

	"go.opentelemetry.io/otel/trace"
)

// Request ids name one request in every log line of every service it
// reaches. HTTP carries them in X-Request-Id, gRPC in x-request-id metadata.
const (
	RequestIDHeader   = "X-Request-Id"
	RequestIDMetadata = "x-request-id"
)

// maxRequestIDLen bounds an accepted request id.
const maxRequestIDLen = 128

type requestIDKey struct{}

// idContext is a context carrying a request id: one allocation where
// context.WithValue made two (its context and the id boxed as a value).
type idContext struct {
	context.Context
	id string
}

// Value answers requestIDKey{} with the idContext itself (a pointer, which
// boxes without allocating) and every other key from the parent.
func (c *idContext) Value(key any) any {
	if key == (requestIDKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// WithRequestID returns ctx carrying id; every line logged with it names it.
func WithRequestID(ctx context.Context, id string) context.Context {
	return &idContext{ctx, id}
}

// RequestID returns the request id of ctx, or "".
func RequestID(ctx context.Context) string {
	if c, ok := ctx.Value(requestIDKey{}).(*idContext); ok {
		return c.id
	}
	return ""
}

// NewRequestID returns a fresh random request id (26 base32 characters, 128 bits).
func NewRequestID() string { return rand.Text() }

// ValidRequestID reports whether id may be taken from a caller: 1 to 128
// characters of letters, digits and ". _ : -". Anything else (spaces,
// quotes, control characters, log-line look-alikes) is replaced by a fresh
// id, so a caller cannot forge or break log lines through it.
func ValidRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// RequestIDOrNew returns id when it is well-formed, else a fresh one.
func RequestIDOrNew(id string) string {
	if ValidRequestID(id) {
		return id
	}
	return NewRequestID()
}

// RequestIDMiddleware gives every request an id: the caller's X-Request-Id
// when it is well-formed (an ingress or a client tracing its own calls),
// else a fresh one. The id is put in the request context and echoed in
// the X-Request-Id response header.
func RequestIDMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := r.Header[RequestIDHeader]
		if len(in) == 1 && ValidRequestID(in[0]) {
			// The caller's id, already the request's one header value.
			w.Header()[RequestIDHeader] = in[:1:1]
		} else {
			var id string
			if len(in) > 0 {
				id = RequestIDOrNew(in[0])
			} else {
				id = NewRequestID()
			}
			// One array for both headers' values; each slice has capacity
			// 1, so an append to one never writes into the other.
			v := []string{id, id}
			r.Header[RequestIDHeader] = v[0:1:1]
			w.Header()[RequestIDHeader] = v[1:2:2]
		}
		id := r.Header[RequestIDHeader][0]
		next.ServeHTTP(w, r.WithContext(WithRequestID(r.Context(), id)))
	})
}

// contextHandler adds the request id and the trace and span ids of the
// record's context to every record logged with a context.
type contextHandler struct{ slog.Handler }

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		if id := RequestID(ctx); id != "" {
			r.AddAttrs(slog.String("request_id", id))
		}
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(as)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}

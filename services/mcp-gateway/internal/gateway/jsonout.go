package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/services/mcp-gateway/internal/session"
)

// The gateway's answers are JSON (application/json) or events of JSON
// (text/event-stream), never HTML: encoding/json's default escaping of
// '<', '>' and '&' as \u003c, \u003e and \u0026, meant for JSON embedded
// in HTML, only made them six times their size. An answer that repeats
// what a client sent (an unknown tool's name, a resource URI, a tool's
// arguments in its result) grew with it: a 150 KB name of '<' came back
// as 900 KB (verify34). Every JSON the gateway writes is therefore
// encoded without that escaping: its own encoders through appendJSON, and
// what mcp-go encodes (its transports, and the Marshalers of its types,
// which call json.Marshal inside any encoder) through unescapeHTML, which
// turns those three escapes back into the characters — the same JSON
// value, as json.Encoder.SetEscapeHTML(false) would write it. U+2028 and
// U+2029, which encoding/json escapes whatever it is told, stay escaped.

// appendJSON appends v to dst as json.Encoder writes it (a trailing
// newline included) without HTML escaping.
func appendJSON(dst []byte, v any) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return dst, err
	}
	out := buf.Bytes()
	return append(out[:len(dst)], unescapeHTML(out[len(dst):])...), nil
}

// marshalJSON is json.Marshal without HTML escaping.
func marshalJSON(v any) ([]byte, error) {
	b, err := appendJSON(nil, v)
	if err != nil {
		return nil, err
	}
	return b[:len(b)-1], nil // the encoder's newline
}

// marshalRaw is marshalJSON for a value no Marshaler of mcp-go's (which
// escape inside) is part of — the gateway's own maps and structs of
// strings, numbers and json.RawMessage: the text of a json.RawMessage, a
// client's id or message, is kept as written, its escapes included, where
// marshalJSON's unescapeHTML turned an id "\u003cb\u003e" into "<b>"
// (TestHTMLEscapedIDsAreEchoed).
func marshalRaw(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return b[:len(b)-1], nil // the encoder's newline
}

// htmlEscape is how encoding/json starts each of its HTML escapes.
var htmlEscape = []byte(`\u00`)

// unescapeHTML turns, in place, the escapes \u003c, \u003e and \u0026 of
// the valid JSON text b back into '<', '>' and '&', and returns the
// shortened text. Other escapes are kept (an escaped backslash followed by
// "u003c" is text, not an escape). JSON without those escapes — almost
// every answer — is returned after one scan, unchanged.
func unescapeHTML(b []byte) []byte {
	i := bytes.Index(b, htmlEscape)
	if i < 0 {
		return b
	}
	// Escapes before i are of other characters; start at the backslash
	// that begins the run i is in: a '\' preceded by an odd number of
	// backslashes is itself escaped.
	for i > 0 && b[i-1] == '\\' {
		i--
	}
	w := i
	for r := i; r < len(b); {
		c := b[r]
		if c != '\\' || r+1 >= len(b) {
			b[w] = c
			w++
			r++
			continue
		}
		if ch, ok := htmlEscaped(b[r:]); ok {
			b[w] = ch
			w++
			r += 6
			continue
		}
		b[w], b[w+1] = c, b[r+1] // an escape of two bytes, or the start of \uXXXX
		w, r = w+2, r+2
	}
	return b[:w]
}

// htmlEscaped reports the character p begins with the escape of, when it
// is \u003c, \u003e or \u0026 (either case of hex digit).
func htmlEscaped(p []byte) (byte, bool) {
	if len(p) < 6 || p[1] != 'u' || p[2] != '0' || p[3] != '0' {
		return 0, false
	}
	switch strings.ToLower(string(p[4:6])) {
	case "3c":
		return '<', true
	case "3e":
		return '>', true
	case "26":
		return '&', true
	}
	return 0, false
}

// unescapingWriter is a response writer whose JSON or event-stream body
// is written through unescapeHTML: what mcp-go's transports write. mcp-go
// writes each message (a JSON body, or one event) in one Write; an escape
// cut between two Writes (carry) is passed through as it is, never taken
// apart, so that the text stays the same JSON whatever the cuts.
type unescapingWriter struct {
	http.ResponseWriter
	decided, json bool
	// carry: the bytes of an escape begun in an earlier Write still to
	// come (-1: a '\' ended it, the next byte tells).
	carry int
	buf   []byte
}

func newUnescapingWriter(w http.ResponseWriter) *unescapingWriter {
	return &unescapingWriter{ResponseWriter: w}
}

func (u *unescapingWriter) Write(p []byte) (int, error) {
	if !u.decided {
		u.decided = true
		ct := u.Header().Get("Content-Type")
		u.json = strings.HasPrefix(ct, "application/json") || strings.HasPrefix(ct, "text/event-stream")
	}
	if !u.json || (u.carry == 0 && !bytes.Contains(p, htmlEscape) && !endsInEscape(p)) {
		return u.ResponseWriter.Write(p)
	}
	out := u.unescape(p)
	if _, err := u.ResponseWriter.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// endsInEscape reports whether p ends inside an escape (a '\' in its last
// five bytes that starts one).
func endsInEscape(p []byte) bool {
	tail := p[max(0, len(p)-5):]
	return bytes.IndexByte(tail, '\\') >= 0
}

// unescape is unescapeHTML for one Write of a stream, into u.buf.
func (u *unescapingWriter) unescape(p []byte) []byte {
	out := u.buf[:0]
	r := 0
	if u.carry == -1 && len(p) > 0 {
		u.carry = 1
		if p[0] == 'u' {
			u.carry = 5
		}
	}
	if u.carry > 0 {
		n := min(u.carry, len(p))
		out = append(out, p[:n]...)
		u.carry -= n
		r = n
	}
	for r < len(p) {
		i := bytes.IndexByte(p[r:], '\\')
		if i < 0 {
			out = append(out, p[r:]...)
			break
		}
		out = append(out, p[r:r+i]...)
		r += i
		rest := p[r:]
		switch {
		case len(rest) == 1:
			out, u.carry, r = append(out, '\\'), -1, len(p)
		case rest[1] != 'u':
			out, r = append(out, rest[:2]...), r+2
		case len(rest) < 6:
			out, u.carry, r = append(out, rest...), 6-len(rest), len(p)
		default:
			if ch, ok := htmlEscaped(rest); ok {
				out = append(out, ch)
			} else {
				out = append(out, rest[:6]...)
			}
			r += 6
		}
	}
	if cap(out) <= 64<<10 {
		u.buf = out // kept for the stream's next event
	}
	return out
}

func (u *unescapingWriter) Flush() {
	if f, ok := u.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (u *unescapingWriter) Unwrap() http.ResponseWriter { return u.ResponseWriter }

// writeJSON writes v as appendJSON encodes it.
func writeJSON(w io.Writer, v any) {
	if b, err := appendJSON(nil, v); err == nil {
		_, _ = w.Write(b)
	}
}

// unescapingEvents is the event store mcp-go's transport records its
// resumable streams in (session.Events), fed unescaped: mcp-go encodes
// each event with json.Marshal, HTML escaping and all, and what it
// recorded was stored so — each '<', '>' and '&' six bytes in Redis and
// against the session's SessionEventBytes — while the client got it
// unescaped (unescapingWriter). The replay (listen, mcp-go's) writes the
// stored text as it is, the live event's bytes; events stored escaped
// before are unescaped as they are written, as ever.
type unescapingEvents struct{ *session.Events }

func (e unescapingEvents) StoreEvent(ctx context.Context, sessionID, streamID string, message json.RawMessage) (string, error) {
	if bytes.Contains(message, htmlEscape) {
		// A copy: mcp-go writes message live after storing it.
		message = unescapeHTML(bytes.Clone(message))
	}
	return e.Events.StoreEvent(ctx, sessionID, streamID, message)
}

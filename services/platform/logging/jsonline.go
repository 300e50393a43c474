package logging

import (
	"context"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// jsonHandler writes the JSON lines slog.JSONHandler writes, byte for
// byte, appending a record straight into a pooled buffer when it and the
// handler's WithAttrs attributes are all of the kinds a line of the fleet
// holds — strings, integers, floats, booleans, durations under a
// non-empty key, no group — and passing any other record, and every
// record after a WithGroup, to slog.JSONHandler itself (slow). slog's
// handler pays per line for state it needs only for groups and for a
// recover guard around every value, and formats a float through
// encoding/json's Encoder (~1.8 k instructions a duration_ms): a token
// request's access-log line took ~10 k instructions in slog's handler,
// ~5 k in this one (docs/benchmarks/auth-server-history.md, session 43
// "perf17"). TestJSONHandlerAsSlogs compares the two on random records,
// so a Go release that changes slog's lines fails it.
//
// Lines from both paths reach w through one lock, one Write a line, as
// slog's do.
type jsonHandler struct {
	slow  slog.Handler // slog.NewJSONHandler(lw, …) with this handler's ops
	lw    *lockedWriter
	level slog.Leveler
	// pre is the WithAttrs attributes, each `,"key":value`, when fast.
	pre  []byte
	fast bool
}

// lockedWriter serialises the Writes of a handler and of those derived
// from it (WithAttrs, WithGroup), as slog's handlers share one mutex.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func newJSONHandler(w io.Writer, opts *slog.HandlerOptions) *jsonHandler {
	lw := &lockedWriter{w: w}
	level := slog.Leveler(slog.LevelInfo)
	if opts != nil && opts.Level != nil {
		level = opts.Level
	}
	fast := opts == nil || opts.ReplaceAttr == nil && !opts.AddSource
	return &jsonHandler{slow: slog.NewJSONHandler(lw, opts), lw: lw, level: level, fast: fast}
}

func (h *jsonHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

var jsonLinePool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func (h *jsonHandler) Handle(ctx context.Context, r slog.Record) error {
	if !h.fast {
		return h.slow.Handle(ctx, r)
	}
	bp := jsonLinePool.Get().(*[]byte)
	b, ok := h.appendRecord((*bp)[:0], r)
	var err error
	if ok {
		_, err = h.lw.Write(b)
	}
	if cap(b) <= 16<<10 {
		*bp = b
		jsonLinePool.Put(bp)
	}
	if !ok {
		return h.slow.Handle(ctx, r)
	}
	return err
}

// appendRecord appends r's line as slog's commonHandler.handle writes it
// (no ReplaceAttr, no source, no group); ok is false for a record this
// path does not write.
func (h *jsonHandler) appendRecord(b []byte, r slog.Record) (_ []byte, ok bool) {
	b = append(b, '{')
	if !r.Time.IsZero() {
		t := r.Time.Round(0)
		if y := t.Year(); y < 0 || y >= 10000 {
			return b, false // slog writes an error value into the line
		}
		b = append(b, `"time":"`...)
		b = t.AppendFormat(b, time.RFC3339Nano)
		b = append(b, `",`...)
	}
	b = append(b, `"level":`...)
	b = AppendJSONString(b, r.Level.String())
	b = append(b, `,"msg":`...)
	b = AppendJSONString(b, r.Message)
	b = append(b, h.pre...)
	ok = true
	r.Attrs(func(a slog.Attr) bool {
		b, ok = appendJSONAttr(b, a)
		return ok
	})
	return append(b, '}', '\n'), ok
}

// appendJSONAttr appends ,"key":value for an attribute of a kind the fast
// path writes; ok is false for any other (its bytes are then not used).
func appendJSONAttr(b []byte, a slog.Attr) (_ []byte, ok bool) {
	if a.Key == "" {
		return b, false
	}
	v := a.Value
	switch v.Kind() {
	case slog.KindString, slog.KindInt64, slog.KindUint64, slog.KindBool, slog.KindDuration:
	case slog.KindFloat64:
		if f := v.Float64(); math.IsInf(f, 0) || math.IsNaN(f) {
			return b, false
		}
	default:
		return b, false
	}
	b = append(b, ',')
	b = AppendJSONString(b, a.Key)
	b = append(b, ':')
	switch v.Kind() {
	case slog.KindString:
		b = AppendJSONString(b, v.String())
	case slog.KindInt64:
		b = strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		b = strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindBool:
		b = strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		b = strconv.AppendInt(b, int64(v.Duration()), 10)
	case slog.KindFloat64:
		b = appendJSONFloat(b, v.Float64())
	}
	return b, true
}

// appendJSONFloat appends a finite f as encoding/json writes a float64
// (what slog's JSON handler calls for one): ES6 number formatting, an
// exponent below 1e-6 and from 1e21, "e-9" not "e-09".
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

func (h *jsonHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h2 := &jsonHandler{slow: h.slow.WithAttrs(as), lw: h.lw, level: h.level, fast: h.fast}
	if !h.fast {
		return h2
	}
	pre := append([]byte(nil), h.pre...)
	for _, a := range as {
		var ok bool
		if pre, ok = appendJSONAttr(pre, a); !ok {
			h2.fast = false
			return h2
		}
	}
	h2.pre = pre
	return h2
}

func (h *jsonHandler) WithGroup(name string) slog.Handler {
	return &jsonHandler{slow: h.slow.WithGroup(name), lw: h.lw, level: h.level}
}

// AppendJSONString appends s as a JSON string as log/slog's JSON handler
// writes one: encoding/json's escaping without its HTML escaping ("<", ">"
// and "&" as they are), U+2028 and U+2029 escaped, each byte of invalid
// UTF-8 as \ufffd.
func AppendJSONString(b []byte, s string) []byte {
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

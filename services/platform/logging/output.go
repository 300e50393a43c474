package logging

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Output is the destination a service's loggers share — the service log,
// the access log and the auth-server's audit log — written one Write at a
// time. With Hold it also gathers the lines logged for one HTTP request and
// writes them together: the access-log line and the lines the handler
// logged before it (the audit line of a token request) reach the output
// in one Write, one system call, instead of one each.
//
// A held line is written no later than the first of:
//   - the request's handler returning or panicking (together with the
//     access-log line, which the access-log middleware inside Hold logs as
//     the handler returns);
//   - the response starting to leave the process before the handler
//     returns: a Flush (http.Flusher, http.ResponseController, every
//     event stream), a Hijack, a ReadFrom (sendfile), a Push, a 1xx
//     header, or a Write that takes the response past HeldResponseBytes
//     (what net/http keeps in its buffers before writing to the
//     connection) — so no byte of the response leaves before the lines the
//     handler logged before writing it;
//   - HoldMax after it was logged (a handler that blocks);
//   - the request's held lines reaching MaxHeldBytes.
//
// Once a request's lines were written early (stream, hijack, large
// response, HoldMax) and after its handler returned, every further line
// logged with its context is written at once. A line is lost only where an
// unheld one would be too: if the process dies before writing it (held
// lines widen that window by at most the request's duration or HoldMax).
// Lines logged without the request's context are never held, so in the
// output they may precede held lines logged earlier; each line carries its
// own time.
type Output struct {
	mu sync.Mutex // one Write at a time
	w  io.Writer

	hmu      sync.Mutex // the list of requests holding lines, and sweeping
	first    *held      // oldest holder (each holder is added when it first holds a line)
	last     *held
	sweeping bool
	holdMax  time.Duration
}

// HoldMax bounds how long a line waits in a request's hold (Output). The
// sweeper that enforces it runs every HoldMax/2 while lines are held, so a
// line waits at most HoldMax plus scheduling delay.
const HoldMax = 100 * time.Millisecond

// MaxHeldBytes bounds the lines one request holds: reaching it writes them.
const MaxHeldBytes = 16 << 10

// HeldResponseBytes is how much of a response (its header lines counted
// as net/http writes them, plus the body) may be written while lines are
// held: net/http keeps a response in its buffers — 2 KiB of body in the
// response's own, then 4 KiB with the header in the connection's (HTTP/1.x),
// 4 KiB per stream (HTTP/2) — until the handler returns or they fill. 512
// bytes are kept for what net/http adds (status line, Date, Content-Type,
// Content-Length or chunk framing).
const HeldResponseBytes = 4096 - 512

// NewOutput writes log lines to w.
func NewOutput(w io.Writer) *Output { return &Output{w: w, holdMax: HoldMax} }

// Write writes p (one or more complete lines) at once.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.w.Write(p)
}

// WriteLine writes one complete line (ending in "\n") logged for the
// request of ctx: held with the request's other lines when ctx is inside
// Hold, else written at once. line may be reused when WriteLine returns.
// It is how loggers that format their own lines (the audit log) join a
// request's write; slog loggers made by New(o, …) do the same.
func (o *Output) WriteLine(ctx context.Context, line []byte) error {
	if h := heldFrom(ctx, o); h != nil {
		_, err := h.Write(line)
		return err
	}
	_, err := o.Write(line)
	return err
}

type heldKey struct{}

// heldFrom returns the hold of ctx's request when it holds lines for o.
func heldFrom(ctx context.Context, o *Output) *held {
	if ctx == nil {
		return nil
	}
	h, _ := ctx.Value(heldKey{}).(*held)
	if h == nil || h.o != o {
		return nil
	}
	return h
}

// Hold is middleware that holds the lines logged for each request (with its
// context) and writes them in one Write, as Output describes. It must wrap
// the access-log middleware, so that the access-log line is logged inside it.
func (o *Output) Hold(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := &held{o: o}
		h.Context = r.Context()
		defer h.end()
		next.ServeHTTP(h.wrap(w), r.WithContext(h))
	})
}

// held is one request's hold, and the request's context with it (Value of
// heldKey{} answers the hold: one allocation where context.WithValue made
// another).
type held struct {
	context.Context
	o *Output

	mu    sync.Mutex
	open  bool   // lines are held (false before the first, after release)
	done  bool   // released for good: write every line at once
	buf   []byte // the held lines
	since time.Time
	// response bytes written, header included (only the handler's goroutine)
	sent int
	// under o.hmu
	listed     bool
	prev, next *held
	// w is the request's response writer (wrap), made with the hold: one
	// allocation for both
	w heldWriter
}

// Value answers heldKey{} with h, every other key from the request's
// context.
func (h *held) Value(key any) any {
	if key == (heldKey{}) {
		return h
	}
	return h.Context.Value(key)
}

var heldPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Write holds p (complete lines) or, once released, writes it.
func (h *held) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done {
		return h.o.Write(p)
	}
	if !h.open {
		h.open = true
		bp := heldPool.Get().(*[]byte)
		h.buf = (*bp)[:0]
		h.since = time.Now()
		h.o.list(h)
	}
	h.buf = append(h.buf, p...)
	if len(h.buf) >= MaxHeldBytes {
		return len(p), h.flushLocked(false)
	}
	return len(p), nil
}

// flushLocked writes the held lines (h.mu held); done makes every later
// line go straight to the output.
func (h *held) flushLocked(done bool) error {
	if done {
		h.done = true
	}
	if !h.open {
		return nil
	}
	h.open = false
	h.o.unlist(h)
	_, err := h.o.Write(h.buf)
	if cap(h.buf) <= MaxHeldBytes*2 {
		b := h.buf[:0]
		heldPool.Put(&b)
	}
	h.buf = nil
	return err
}

// release writes the held lines and stops holding: the response is
// leaving, or the handler is slow.
func (h *held) release() {
	h.mu.Lock()
	if !h.done {
		_ = h.flushLocked(true)
	}
	h.mu.Unlock()
}

// end is the request's end (also on panic): its lines are written.
func (h *held) end() { h.release() }

// holding reports whether lines logged now are still held.
func (h *held) holding() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.done
}

// list adds h to the holders the sweeper watches; unlist removes it.
func (o *Output) list(h *held) {
	o.hmu.Lock()
	defer o.hmu.Unlock()
	h.listed = true
	h.prev, h.next = o.last, nil
	if o.last != nil {
		o.last.next = h
	} else {
		o.first = h
	}
	o.last = h
	if !o.sweeping {
		o.sweeping = true
		go o.sweep()
	}
}

func (o *Output) unlist(h *held) {
	o.hmu.Lock()
	defer o.hmu.Unlock()
	if !h.listed {
		return
	}
	o.unlistLocked(h)
}

func (o *Output) unlistLocked(h *held) {
	if h.prev != nil {
		h.prev.next = h.next
	} else {
		o.first = h.next
	}
	if h.next != nil {
		h.next.prev = h.prev
	} else {
		o.last = h.prev
	}
	h.prev, h.next, h.listed = nil, nil, false
}

// sweep releases holds older than holdMax, every holdMax/2, until no
// request holds a line.
func (o *Output) sweep() {
	for {
		time.Sleep(o.holdMax / 2)
		var old []*held
		o.hmu.Lock()
		if o.first == nil {
			o.sweeping = false
			o.hmu.Unlock()
			return
		}
		cutoff := time.Now().Add(-o.holdMax)
		for h := o.first; h != nil && !h.since.After(cutoff); h = o.first {
			o.unlistLocked(h)
			old = append(old, h)
		}
		o.hmu.Unlock()
		for _, h := range old {
			h.release()
		}
	}
}

// wrap returns w with the hooks that release the hold before any byte of
// the response can leave the process.
func (h *held) wrap(w http.ResponseWriter) http.ResponseWriter {
	h.w.ResponseWriter, h.w.h = w, h
	return &h.w
}

// heldWriter is a hold's response writer: it releases the hold before any
// byte of the response can leave the process, and passes every call on.
// It is written out rather than made by httpsnoop.Wrap, whose hooks cost a
// closure each and a wrapper type chosen at run time per request (issue
// 10; docs/benchmarks/auth-server-history.md, session 40 "perf12"). It
// is an http.Flusher, http.Hijacker, io.ReaderFrom and http.Pusher and
// unwraps (http.ResponseController) whatever w is: a Hijack or Push that
// w does not support fails with http.ErrNotSupported, a Flush it does not
// support does nothing, and ReadFrom copies through w's own.
type heldWriter struct {
	http.ResponseWriter
	h *held
}

func (w *heldWriter) WriteHeader(code int) {
	if code < 200 { // an informational response is sent at once
		w.h.release()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *heldWriter) Write(b []byte) (int, error) {
	w.h.writing(w.ResponseWriter, len(b))
	return w.ResponseWriter.Write(b)
}

func (w *heldWriter) WriteString(s string) (int, error) {
	w.h.writing(w.ResponseWriter, len(s))
	return io.WriteString(w.ResponseWriter, s)
}

func (w *heldWriter) Flush() { _ = w.FlushError() }

func (w *heldWriter) FlushError() error {
	w.h.release()
	return http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *heldWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.h.release()
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w *heldWriter) ReadFrom(src io.Reader) (int64, error) {
	w.h.release()
	return io.Copy(w.ResponseWriter, src)
}

func (w *heldWriter) Push(target string, opts *http.PushOptions) error {
	w.h.release()
	if p, ok := w.ResponseWriter.(http.Pusher); ok {
		return p.Push(target, opts)
	}
	return http.ErrNotSupported
}

func (w *heldWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writing counts n more body bytes and releases the hold when the response
// may no longer fit net/http's buffers (HeldResponseBytes).
func (h *held) writing(w http.ResponseWriter, n int) {
	if h.sent == 0 {
		for k, vs := range w.Header() {
			for _, v := range vs {
				h.sent += len(k) + len(v) + 4 // "k: v\r\n"
			}
		}
	}
	h.sent += n
	if h.sent > HeldResponseBytes {
		h.release()
	}
}

// heldHandler is the slog.Handler of loggers writing to an Output: a record
// logged with the context of a request inside Hold is formatted — by the
// same slog handler, with the same options (redaction, bounds) and the same
// attributes and groups — into the request's hold; any other record is
// written by direct.
type heldHandler struct {
	out    *Output
	direct slog.Handler                 // the handler, with ops applied, writing to out
	format func(io.Writer) slog.Handler // a new handler (without ops) writing to w
	ops    []handlerOp                  // WithAttrs and WithGroup since format
	// formatters are handlers like direct writing to a settable writer,
	// each used by one record at a time (built once, not per request)
	formatters sync.Pool
}

// handlerOp is one WithAttrs (group == "") or WithGroup call.
type handlerOp struct {
	attrs []slog.Attr
	group string
}

// formatter is a handler (with the ops) writing to to.
type formatter struct {
	h  slog.Handler
	to io.Writer
}

func (f *formatter) Write(p []byte) (int, error) { return f.to.Write(p) }

func (h *heldHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.direct.Enabled(ctx, l)
}

func (h *heldHandler) Handle(ctx context.Context, r slog.Record) error {
	hd := heldFrom(ctx, h.out)
	if hd == nil || !hd.holding() {
		return h.direct.Handle(ctx, r)
	}
	f, _ := h.formatters.Get().(*formatter)
	if f == nil {
		f = &formatter{}
		f.h = h.format(f)
		for _, op := range h.ops {
			if op.group != "" {
				f.h = f.h.WithGroup(op.group)
			} else {
				f.h = f.h.WithAttrs(op.attrs)
			}
		}
	}
	f.to = hd
	err := f.h.Handle(ctx, r)
	f.to = nil
	h.formatters.Put(f)
	return err
}

func (h *heldHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	return h.with(handlerOp{attrs: as}, h.direct.WithAttrs(as))
}

func (h *heldHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(handlerOp{group: name}, h.direct.WithGroup(name))
}

func (h *heldHandler) with(op handlerOp, direct slog.Handler) *heldHandler {
	ops := make([]handlerOp, len(h.ops), len(h.ops)+1)
	copy(ops, h.ops)
	return &heldHandler{out: h.out, direct: direct, format: h.format, ops: append(ops, op)}
}

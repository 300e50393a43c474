package logging

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// writes records every Write its Output makes, and signals each.
type writes struct {
	mu     sync.Mutex
	all    []string
	signal chan struct{}
}

func newWrites() *writes { return &writes{signal: make(chan struct{}, 1024)} }

func (w *writes) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.all = append(w.all, string(p))
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (w *writes) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.all...)
}

func (w *writes) text() string { return strings.Join(w.list(), "") }

// waitFor blocks until the output holds s (the test's own timeout bounds it).
func (w *writes) waitFor(t *testing.T, s string) {
	t.Helper()
	for !strings.Contains(w.text(), s) {
		<-w.signal
	}
}

// accessLog stands for telemetry.Middleware's access log: one line logged
// with the request's context after the handler returned.
func accessLog(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r)
		log.InfoContext(r.Context(), "request", "route", r.URL.Path)
	})
}

// gate is a channel the test opens to let a blocked handler go on; serve
// opens it at the latest when the test ends, before its server closes
// (which waits for handlers), so that a failed test does not hang.
func gate() (wait <-chan struct{}, open func()) {
	ch := make(chan struct{})
	var once sync.Once
	return ch, func() { once.Do(func() { close(ch) }) }
}

func serve(t *testing.T, out *Output, log *slog.Logger, h http.HandlerFunc, gates ...func()) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(out.Hold(accessLog(log, h)))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		for _, open := range gates {
			open()
		}
	})
	return srv
}

// TestRequestLinesInOneWrite: a line the handler logs (slog, and a line of
// its own through WriteLine, as the audit log does) and the access-log line
// reach the output in one Write, in the order logged, and before the client
// has the response.
func TestRequestLinesInOneWrite(t *testing.T) {
	w := newWrites()
	out := NewOutput(w)
	log := New(out, "json", slog.LevelInfo, "svc")
	srv := serve(t, out, log, func(rw http.ResponseWriter, r *http.Request) {
		log.InfoContext(r.Context(), "handler line", "k", "v")
		_ = out.WriteLine(r.Context(), []byte(`{"msg":"audit"}`+"\n"))
		_, _ = io.WriteString(rw, strings.Repeat("x", 2500)) // a code grant's response is ~2.5 KB
	})
	res, err := http.Get(srv.URL + "/token")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	got := w.list()
	if len(got) != 1 {
		t.Fatalf("%d writes when the response arrived, want 1: %q", len(got), got)
	}
	lines := strings.Split(strings.TrimSuffix(got[0], "\n"), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `"msg":"handler line"`) || lines[1] != `{"msg":"audit"}` ||
		!strings.Contains(lines[2], `"msg":"request"`) {
		t.Fatalf("lines = %q", lines)
	}
}

// TestHeldLinesLikeDirectOnes: a held record is formatted as the same
// logger formats it outside a request — attributes and groups of With,
// request id, secrets redacted — in both formats.
func TestHeldLinesLikeDirectOnes(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		w := newWrites()
		out := NewOutput(w)
		log := New(out, format, slog.LevelInfo, "svc").With("component", "c").WithGroup("g").With("a", 1)
		logIt := func(ctx context.Context) {
			log.DebugContext(ctx, "hidden")
			log.InfoContext(ctx, "m", "token", "tok-secret", "note", "Bearer abcdefghijk", "n", 2)
		}
		ctx := WithRequestID(context.Background(), "req-1")
		logIt(ctx) // direct
		rec := httptest.NewRecorder()
		out.Hold(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			logIt(WithRequestID(r.Context(), "req-1"))
			if n := len(w.list()); n != 1 {
				t.Errorf("%s: %d writes before the request ended, want 1 (the direct line)", format, n)
			}
		})).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		got := w.list()
		if len(got) != 2 {
			t.Fatalf("%s: writes = %q", format, got)
		}
		strip := func(s string) string { // the time differs
			if format == "json" {
				var m map[string]any
				if err := json.Unmarshal([]byte(s), &m); err != nil {
					t.Fatal(err)
				}
				delete(m, "time")
				b, _ := json.Marshal(m)
				return string(b)
			}
			_, rest, _ := strings.Cut(s, " ")
			return rest
		}
		if strip(got[0]) != strip(got[1]) {
			t.Errorf("%s: held line differs from direct line:\n%s\n%s", format, got[0], got[1])
		}
		for _, want := range []string{"component", "req-1", "svc", Redacted} {
			if !strings.Contains(got[1], want) {
				t.Errorf("%s: held line lacks %q: %s", format, want, got[1])
			}
		}
		if strings.Contains(got[1], "tok-secret") || strings.Contains(got[1], "abcdefghijk") || strings.Contains(got[1], "hidden") {
			t.Errorf("%s: held line leaks: %s", format, got[1])
		}
	}
}

// TestHeldLinesOnPanic: a handler that panics after logging still has its
// line written (the panic goes on to net/http).
func TestHeldLinesOnPanic(t *testing.T) {
	w := newWrites()
	out := NewOutput(w)
	log := New(out, "json", slog.LevelInfo, "svc")
	h := out.Hold(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		log.InfoContext(r.Context(), "before the panic")
		panic("boom")
	}))
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic did not go on")
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}()
	if !strings.Contains(w.text(), "before the panic") {
		t.Fatalf("line lost on panic: %q", w.list())
	}
}

// TestStreamReleasesLines: once a response streams (Flush, as every event
// stream does; ResponseController.Flush), the lines logged before are in
// the output before the client reads a byte, and later lines are written
// at once, while the handler still runs.
func TestStreamReleasesLines(t *testing.T) {
	for _, how := range []string{"Flusher", "ResponseController"} {
		w := newWrites()
		out := NewOutput(w)
		log := New(out, "json", slog.LevelInfo, "svc")
		next, openNext := gate()
		finish, openFinish := gate()
		srv := serve(t, out, log, func(rw http.ResponseWriter, r *http.Request) {
			log.InfoContext(r.Context(), "stream opened")
			rw.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(rw, "data: 1\n\n")
			if how == "Flusher" {
				rw.(http.Flusher).Flush()
			} else if err := http.NewResponseController(rw).Flush(); err != nil {
				t.Error(err)
			}
			<-next
			log.InfoContext(r.Context(), "event sent")
			_, _ = io.WriteString(rw, "data: 2\n\n")
			rw.(http.Flusher).Flush()
			<-finish
		}, openNext, openFinish)
		res, err := http.Get(srv.URL + "/events")
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(res.Body)
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(w.text(), "stream opened") {
			t.Fatalf("%s: the client read the stream before its line was written: %q", how, w.list())
		}
		openNext()
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(l, "data: 2") {
				break
			}
		}
		if !strings.Contains(w.text(), "event sent") {
			t.Fatalf("%s: a line logged during the stream was held: %q", how, w.list())
		}
		openFinish()
		res.Body.Close()
	}
}

// TestLargeResponseReleasesLines: a response larger than net/http keeps
// in its buffers leaves before the handler returns; the lines logged
// before it are in the output before the client reads its first byte.
func TestLargeResponseReleasesLines(t *testing.T) {
	w := newWrites()
	out := NewOutput(w)
	log := New(out, "json", slog.LevelInfo, "svc")
	finish, openFinish := gate()
	srv := serve(t, out, log, func(rw http.ResponseWriter, r *http.Request) {
		log.InfoContext(r.Context(), "large response")
		_, _ = rw.Write(bytes.Repeat([]byte("x"), 64<<10))
		<-finish
	}, openFinish)
	res, err := http.Get(srv.URL + "/large")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := res.Body.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(w.text(), "large response") {
		t.Fatalf("the client read the response before its line was written: %q", w.list())
	}
	openFinish()
	res.Body.Close()
}

// TestHijackReleasesLines: a hijacked connection (WebSocket-like) gets
// bytes to the client outside net/http; the lines come first.
func TestHijackReleasesLines(t *testing.T) {
	w := newWrites()
	out := NewOutput(w)
	log := New(out, "json", slog.LevelInfo, "svc")
	finish, openFinish := gate()
	srv := serve(t, out, log, func(rw http.ResponseWriter, r *http.Request) {
		log.InfoContext(r.Context(), "hijacking")
		c, buf, err := rw.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		_, _ = buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: close\r\n\r\n")
		_ = buf.Flush()
		<-finish
	}, openFinish)
	res, err := http.Get(srv.URL + "/ws")
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", res.StatusCode)
	}
	if !strings.Contains(w.text(), "hijacking") {
		t.Fatalf("the client had the hijacked response before the line was written: %q", w.list())
	}
	openFinish()
	res.Body.Close()
}

// TestSlowHandlerReleasesLines: a handler that blocks does not keep its
// line: it is written after at most HoldMax while the handler still runs
// (the test waits for it; its own timeout is the bound).
func TestSlowHandlerReleasesLines(t *testing.T) {
	w := newWrites()
	out := NewOutput(w)
	log := New(out, "json", slog.LevelInfo, "svc")
	logged := make(chan struct{})
	finish, openFinish := gate()
	srv := serve(t, out, log, func(_ http.ResponseWriter, r *http.Request) {
		log.InfoContext(r.Context(), "then blocked")
		close(logged)
		<-finish
	}, openFinish)
	done := make(chan struct{})
	go func() {
		defer close(done)
		res, err := http.Get(srv.URL + "/slow")
		if err == nil {
			res.Body.Close()
		}
	}()
	<-logged
	w.waitFor(t, "then blocked")
	openFinish()
	<-done
	if got := w.list(); len(got) != 2 || !strings.Contains(got[1], `"msg":"request"`) {
		t.Fatalf("writes = %q, want the released line, then the access line on its own", got)
	}
}

// TestLinesAfterTheRequest: a goroutine that logs with the request's
// context after the request ended writes at once.
func TestLinesAfterTheRequest(t *testing.T) {
	w := newWrites()
	out := NewOutput(w)
	log := New(out, "json", slog.LevelInfo, "svc")
	var ctx context.Context
	out.Hold(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		ctx = context.WithoutCancel(r.Context())
	})).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	log.InfoContext(ctx, "later")
	_ = out.WriteLine(ctx, []byte("own line\n"))
	if got := w.list(); len(got) != 2 {
		t.Fatalf("writes = %q", got)
	}
}

// TestHeldBytesBounded: a request that logs a lot holds at most
// MaxHeldBytes; nothing is lost.
func TestHeldBytesBounded(t *testing.T) {
	w := newWrites()
	out := NewOutput(w)
	line := []byte(strings.Repeat("y", 1000) + "\n")
	out.Hold(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		for range 40 {
			_ = out.WriteLine(r.Context(), line)
		}
	})).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	got := w.list()
	total := 0
	for _, g := range got {
		if len(g) > MaxHeldBytes+len(line) {
			t.Errorf("one write of %d bytes", len(g))
		}
		total += len(g)
	}
	if total != 40*len(line) || len(got) < 3 {
		t.Fatalf("%d bytes in %d writes", total, len(got))
	}
}

// TestOtherOutputNotHeld: a logger on another Output (or on a plain
// writer) is not held by a request held for this one.
func TestOtherOutputNotHeld(t *testing.T) {
	w1, w2 := newWrites(), newWrites()
	o1, o2 := NewOutput(w1), NewOutput(w2)
	plain := new(bytes.Buffer)
	log2, logPlain := New(o2, "json", slog.LevelInfo, "svc"), New(plain, "json", slog.LevelInfo, "svc")
	o1.Hold(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		log2.InfoContext(r.Context(), "other")
		logPlain.InfoContext(r.Context(), "plain")
		if len(w2.list()) != 1 || !strings.Contains(plain.String(), "plain") {
			t.Error("a line for another output was held")
		}
	})).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
}

// TestHoldAllocations: holding a request's lines costs a fixed two
// allocations — the hold with its response writer and the request's
// context (until 2026-12-06 a context.WithValue of its own), and the
// request's copy — not a wrapper per interface and a closure per hook
// (httpsnoop.Wrap's, 13 more); and the writer still passes on what the
// response writer beneath does and does not do (Push, Hijack refused with
// http.ErrNotSupported when it cannot).
func TestHoldAllocations(t *testing.T) {
	out := NewOutput(io.Discard)
	var gotW http.ResponseWriter
	h := out.Hold(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		gotW = w
		w.WriteHeader(http.StatusNoContent)
	}))
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	w := &nopWriter{header: http.Header{}}
	h.ServeHTTP(w, r)
	if p, ok := gotW.(http.Pusher); ok && !errors.Is(p.Push("/x", nil), http.ErrNotSupported) {
		t.Errorf("Push on a writer that cannot push: want http.ErrNotSupported")
	}
	if _, _, err := http.NewResponseController(gotW).Hijack(); !errors.Is(err, http.ErrNotSupported) {
		t.Errorf("Hijack on a writer that cannot hijack: %v, want http.ErrNotSupported", err)
	}
	if raceEnabled {
		return
	}
	n := testing.AllocsPerRun(100, func() { h.ServeHTTP(w, r) })
	t.Logf("%.0f allocations per request", n)
	if n > 2 {
		t.Errorf("%.0f allocations per request, want at most 2", n)
	}
}

type nopWriter struct{ header http.Header }

func (w *nopWriter) Header() http.Header         { return w.header }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}

package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRequestIDIsTakenOnlyWhenWellFormed(t *testing.T) {
	for _, id := range []string{"abc", "0f8fad5b-d9cb-469f-a165-70867728950e", "req.1:2_3", strings.Repeat("a", 128)} {
		if !ValidRequestID(id) || RequestIDOrNew(id) != id {
			t.Errorf("%q refused", id)
		}
	}
	for _, id := range []string{"", " ", "a b", "id\nlevel=ERROR", `x"y`, "é", strings.Repeat("a", 129), "<script>"} {
		if ValidRequestID(id) {
			t.Errorf("%q accepted", id)
		}
		if got := RequestIDOrNew(id); got == id || !ValidRequestID(got) {
			t.Errorf("RequestIDOrNew(%q) = %q", id, got)
		}
	}
	if a, b := NewRequestID(), NewRequestID(); a == b || len(a) < 16 {
		t.Errorf("fresh ids %q %q", a, b)
	}
}

func TestRequestIDMiddleware(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, "json", slog.LevelInfo, "svc")
	h := RequestIDMiddleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.InfoContext(r.Context(), "handled")
	}))
	for in, keep := range map[string]bool{"caller-id-1": true, "bad id\r\nx": false, "": false} {
		buf.Reset()
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if in != "" {
			req.Header.Set(RequestIDHeader, in)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got := rec.Header().Get(RequestIDHeader)
		if keep != (got == in) || !ValidRequestID(got) {
			t.Errorf("X-Request-Id %q answered %q", in, got)
		}
		var line map[string]any
		if err := json.Unmarshal(buf.Bytes(), &line); err != nil || line["request_id"] != got {
			t.Errorf("log line %s does not carry request_id %q", buf.String(), got)
		}
	}
}

func TestLinesWithoutRequestContextHaveNoRequestID(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, "text", slog.LevelInfo, "svc").With("k", "v")
	log.InfoContext(WithRequestID(context.Background(), "r-1"), "with")
	log.Info("without")
	out := buf.String()
	if !strings.Contains(out, "msg=with service=svc k=v request_id=r-1") || strings.Count(out, "request_id") != 1 {
		t.Errorf("unexpected log:\n%s", out)
	}
}

// TestRequestIDMiddlewareAllocations: what RequestIDMiddleware adds to a
// request — a fresh id, its header values, the request's copy and its
// context — costs at most 4 allocations (6 before: the id's header values
// were two, its context value two), 2 when the caller's id is kept (5).
func TestRequestIDMiddlewareAllocations(t *testing.T) {
	var seen string
	h := RequestIDMiddleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = RequestID(r.Context())
	}))
	w := httptest.NewRecorder()
	for _, tc := range []struct {
		callerID string
		max      float64
	}{{"", 4}, {"caller-id-1", 2}} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		n := testing.AllocsPerRun(100, func() {
			clear(w.Header())
			if tc.callerID == "" {
				delete(r.Header, RequestIDHeader)
			} else {
				r.Header[RequestIDHeader] = []string{tc.callerID}
			}
		})
		m := testing.AllocsPerRun(100, func() {
			clear(w.Header())
			if tc.callerID == "" {
				delete(r.Header, RequestIDHeader)
			} else {
				r.Header[RequestIDHeader] = []string{tc.callerID}
			}
			h.ServeHTTP(w, r)
		}) - n
		t.Logf("caller id %q: %.0f allocations", tc.callerID, m)
		if m > tc.max && !raceEnabled {
			t.Errorf("caller id %q: %.0f allocations per request, want at most %.0f", tc.callerID, m, tc.max)
		}
		if !ValidRequestID(seen) || (tc.callerID != "" && seen != tc.callerID) || w.Header().Get(RequestIDHeader) != seen || r.Header.Get(RequestIDHeader) != seen {
			t.Errorf("caller id %q: handler saw %q, response header %q, request header %q", tc.callerID, seen, w.Header().Get(RequestIDHeader), r.Header.Get(RequestIDHeader))
		}
	}
}

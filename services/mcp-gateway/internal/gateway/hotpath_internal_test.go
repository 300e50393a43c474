package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// okResult (one allocation, pointers inside) answers byte for byte as the
// plain values it stands for: through the gateway's own encoding and
// through json.Encoder (HandleMessage's path), with and without the
// _meta a card's tool adds.
func TestOKResultEncodesAsValues(t *testing.T) {
	for _, out := range []string{`{"sub":"u1","name":"Ada"}`, `{"name":"<b>&</b>"}`, `{"a":"x\n\u0001"}`, `{}`} {
		values := &mcp.CallToolResult{Content: []mcp.Content{mcp.NewTextContent(out)}, StructuredContent: compactJSON(out)}
		pointers := okResult([]byte(out))
		for _, id := range []any{7, "req-1"} {
			want := encode(t, mcp.NewJSONRPCResultResponse(mcp.NewRequestId(id), values))
			if got := encode(t, mcp.NewJSONRPCResultResponse(mcp.NewRequestId(id), pointers)); !bytes.Equal(got, want) {
				t.Errorf("%s: encoder:\n got %s\nwant %s", out, got, want)
			}
			got, fast := appendToolAnswer(nil, mcp.NewJSONRPCResultResponse(mcp.NewRequestId(id), pointers))
			_, wantFast := appendToolAnswer(nil, mcp.NewJSONRPCResultResponse(mcp.NewRequestId(id), values))
			if fast != wantFast || (fast && !bytes.Equal(got, want)) {
				t.Errorf("%s: gateway encoding (%v, want %v):\n got %s\nwant %s", out, fast, wantFast, got, want)
			}
		}
		pointers.Meta = mcp.NewMetaFromMap(map[string]any{"tollgate/actions": map[string]string{"reload": "x"}})
		values.Meta = mcp.NewMetaFromMap(map[string]any{"tollgate/actions": map[string]string{"reload": "x"}})
		if got, want := encode(t, pointers), encode(t, values); !bytes.Equal(got, want) {
			t.Errorf("%s with _meta:\n got %s\nwant %s", out, got, want)
		}
	}
}

// acceptsEventStream reads Accept case-insensitively (as strings.ToLower
// would), a type's quality being that of the most specific range matching
// it (RFC 9110 §12.5.1: exact type, then type/*, then */*), q=0 admitting
// nothing (§12.4.2), without allocating.
func TestAcceptsEventStream(t *testing.T) {
	for _, c := range []struct {
		values []string
		want   bool
	}{
		{nil, false}, {[]string{""}, false}, {[]string{"application/json"}, false},
		{[]string{"application/json, text/event-stream"}, true}, {[]string{"text/event-stream;q=0.5"}, true},
		{[]string{" TEXT/Event-Stream "}, true}, {[]string{"text/*"}, true}, {[]string{"*/*"}, true},
		{[]string{"*/*;q=0"}, false}, {[]string{"application/json", "text/event-stream"}, true},
		{[]string{"text/event-streams"}, false}, {[]string{"text/event-strea"}, false},
		{[]string{"text/\u212aevent-stream"}, false}, {[]string{"text/event-\u017ftream"}, false},
		{[]string{"te\u212at/*"}, false}, {[]string{",,,"}, false}, {[]string{"text/event-stream,"}, true},
		{[]string{"application/json;q=1, */*"}, true}, {[]string{"text/html; charset=utf-8"}, false},
		{[]string{"application/json, text/event-stream;q=0"}, false},
		{[]string{"text/event-stream; Q=0.0, application/json"}, false}, {[]string{"text/*;q=0.001"}, true},
		// The most specific matching range decides.
		{[]string{"text/event-stream;q=0, */*"}, false}, {[]string{"text/event-stream;q=0", "*/*"}, false},
		{[]string{"*/*, text/event-stream;q=0"}, false}, {[]string{"text/event-stream;q=0, text/*"}, false},
		{[]string{"TEXT/*;q=0, */*"}, false}, {[]string{"text/*;q=0, text/event-stream"}, true},
		{[]string{"*/*;q=0, text/event-stream"}, true}, {[]string{"*/*;q=0, text/*;q=0.1"}, true},
	} {
		r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
		for _, v := range c.values {
			r.Header.Add("Accept", v)
		}
		if got := acceptsEventStream(r); got != c.want {
			t.Errorf("Accept %q: %v, want %v", c.values, got, c.want)
		}
	}
	r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
	r.Header.Set("Accept", "application/json, text/event-stream")
	if raceEnabled {
		return // allocation counts need a build without -race (race_on_test.go)
	}
	if n := testing.AllocsPerRun(100, func() { _ = acceptsEventStream(r) }); n != 0 {
		t.Errorf("acceptsEventStream allocates %v times", n)
	}
}

// A steady-state tools/call through direct (callTool) makes a bounded,
// small number of allocations: issue 12's call path. 7 with Go 1.26: the
// tool's result (okResult: 2), the call's session, its context value and
// cancellation, its in-flight key; the answer's buffer is pooled.
func TestCallToolAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts need a build without -race (race_on_test.go)")
	}
	out := []byte(`{"sub":"u1","name":"Ada Lovelace"}`)
	g := callGateway(t, &bytes.Buffer{}, server.ServerTool{Tool: mcp.NewTool("t"),
		Handler: func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) { return okResult(out), nil }})
	body := `{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"t","arguments":{}}}`
	var m message
	m.decoded = json.Unmarshal([]byte(body), &m) == nil
	r := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json, text/event-stream")
	r = r.WithContext(context.WithValue(r.Context(), liveKey{}, &admission{id: "s", post: true, msg: m, body: []byte(body)}))
	h := g.direct(http.NotFoundHandler())
	w := &discardWriter{header: http.Header{}}
	before := CallToolAnswers()
	h.ServeHTTP(w, r)
	if CallToolAnswers() != before+1 || !bytes.Contains(w.last, []byte(`"id":12,"result"`)) {
		t.Fatalf("not answered by callTool: %s", w.last)
	}
	n := testing.AllocsPerRun(200, func() { h.ServeHTTP(w, r) })
	t.Logf("%.0f allocations per call", n)
	if n > 10 {
		t.Errorf("%.0f allocations per call, want at most 10", n)
	}
}

type discardWriter struct {
	header http.Header
	last   []byte
}

func (w *discardWriter) Header() http.Header { return w.header }
func (w *discardWriter) Write(p []byte) (int, error) {
	w.last = append(w.last[:0], p...)
	return len(p), nil
}
func (w *discardWriter) WriteHeader(int) {}

// callTool's context carries CORE_CALL_TIMEOUT's deadline when it is set
// (the catalog's handler then bounds its capability call with it instead
// of a context of its own), none otherwise; either way it is cancelled by
// its cancel (notifications/cancelled) and with its parent.
func TestCallContext(t *testing.T) {
	for _, timeout := range []time.Duration{0, time.Minute} {
		g := &Gateway{}
		g.cfg.CoreTimeout = timeout
		ctx, cancel := g.callContext(context.Background())
		dl, ok := ctx.Deadline()
		if ok != (timeout > 0) || (ok && time.Until(dl) > timeout) {
			t.Errorf("timeout %v: deadline %v %v", timeout, dl, ok)
		}
		cancel()
		if ctx.Err() != context.Canceled {
			t.Errorf("timeout %v: after cancel: %v", timeout, ctx.Err())
		}
		parent, end := context.WithCancel(context.Background())
		ctx, cancel = g.callContext(parent)
		end()
		if ctx.Err() != context.Canceled {
			t.Errorf("timeout %v: after the parent ended: %v", timeout, ctx.Err())
		}
		cancel()
	}
}

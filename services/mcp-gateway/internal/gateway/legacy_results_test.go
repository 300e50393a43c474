package gateway_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
)

// rawLegacy is a legacy session's GET /sse stream read only when the test
// asks: while it does not, the stream's writes block once the sockets'
// buffers are full, and the answers wait in the gateway.
type rawLegacy struct {
	t    *testing.T
	sc   *bufio.Scanner
	path string // the /messages path
	tok  string
}

func openRawLegacy(t *testing.T, g *gw, tok string) *rawLegacy {
	t.Helper()
	hr, _ := http.NewRequest("GET", g.URL+"/sse", nil)
	hr.Header.Set("Accept", "text/event-stream")
	hr.Header.Set("Authorization", "Bearer "+tok)
	res, err := (&http.Client{}).Do(hr)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET /sse: %v %v", err, res)
	}
	t.Cleanup(func() { res.Body.Close() })
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 32<<20), 32<<20)
	s := &rawLegacy{t: t, sc: sc, tok: tok}
	if s.path = s.next(); !strings.HasPrefix(s.path, "/messages?sessionId=") {
		t.Fatalf("endpoint event %q", s.path)
	}
	if r := s.post(g, `{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"legacy","version":"1"}}}`); r.Status != 202 {
		t.Fatalf("initialize: %d %s", r.Status, r.Body)
	}
	if d := s.next(); !strings.Contains(d, `"id":"init"`) {
		t.Fatalf("initialize answer: %.300s", d)
	}
	if r := s.post(g, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); r.Status != 202 {
		t.Fatalf("initialized: %d", r.Status)
	}
	return s
}

// next is the next event's data, the server's pings skipped.
func (s *rawLegacy) next() string {
	s.t.Helper()
	data := ""
	for s.sc.Scan() {
		line := s.sc.Text()
		if line == "" && data != "" {
			if strings.Contains(data, `"method":"ping"`) {
				data = ""
				continue
			}
			return data
		}
		if d, ok := strings.CutPrefix(line, "data:"); ok {
			data += strings.TrimSpace(d)
		}
	}
	s.t.Fatalf("stream ended: %v", s.sc.Err())
	return ""
}

func (s *rawLegacy) post(g *gw, body string) *resp {
	s.t.Helper()
	return g.do(s.t, req{Method: "POST", Path: s.path, Token: s.tok, Body: body})
}

// toolCallBody is a tools/call of tool with the backend's request text.
func toolCallBody(id, tool, text string) string {
	return `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"` + tool + `","arguments":{"text":"` + text + `"}}}`
}

// streamAnswer is one JSON-RPC answer read from the stream.
type streamAnswer struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (s *rawLegacy) answer() (streamAnswer, string) {
	s.t.Helper()
	d := s.next()
	var a streamAnswer
	if err := json.Unmarshal([]byte(d), &a); err != nil {
		s.t.Fatalf("answer: %v %.300s", err, d)
	}
	return a, d
}

// A legacy client whose ids mcp-go does not echo exactly ('"<k>"',
// integers of more than 15 digits) and which reads its stream gets every
// tool result, however large: each result counts against the session's
// bound on waiting results (legacyPendingResultBytes) under its request's
// own id until its answer is written. Session 36's bound (c006edb,
// reverted) counted it under one rewrite's token and gave it back under
// another's: the results stayed counted, and 4 of 6 were dropped. Here six
// calls of 3 MB results, one at a time, each read before the next — three
// posted to the stream's replica, three relayed from another.
func TestLegacyResultsOfOddIDsAreAllDelivered(t *testing.T) {
	f := newFleet(t)
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	env := []string{"CAPABILITY_BACKENDS", "capability-core=" + f.CoreAddr + ",notes=" + notes.Addr, "RATE_LIMIT_PER_MINUTE", "100000", "CORE_CALL_TIMEOUT", "60s"}
	a, b := f.Gateway(env...), f.Gateway(env...)
	tok := f.Token("user-1", "openid notes.read")
	s := openRawLegacy(t, a, tok)

	ids := []string{`"<k0>"`, `12345678901234567890`, `"<k1>"`, `12345678901234567891`, `"<k2>"`, `12345678901234567892`}
	for i, id := range ids {
		g := a
		if i%2 == 1 {
			g = b
		}
		if r := s.post(g, toolCallBody(id, "notes.list", registrytest.BigReplyText(1_500_000))); r.Status != 202 {
			t.Fatalf("call %s: %d %s", id, r.Status, r.Body)
		}
		got, d := s.answer()
		if string(got.ID) != id || got.Result == nil || len(d) < 3_000_000 {
			t.Fatalf("answer %d of %d (id %s): %.300s", i+1, len(ids), id, d)
		}
	}
}

// A legacy session's tool results waiting for its stream are bounded by
// bytes (legacyPendingResultBytes): a request that comes while they are at
// the bound is refused on its POST, before the tool runs — on the stream's
// replica and relayed from another — and the backend never sees it. A
// tool that is not read-only runs one call at a time, only below the
// bound, and its result is always taken: a second notes.add, accepted
// while the first was held at its backend and the bound not reached,
// waits for the first, then finds the bound reached and is not run — its
// backend never sees it — and the first's result is delivered (before, it
// was dropped after the note was added). A read-only tool's result that
// would take them past the bound is dropped after its tool ran, and the
// error says so, with the size the client would have received (HTML
// characters unescaped), and that it may be called again. Here a 7.8 MB
// result (none waited: it is taken) waits for a stream its client does
// not read, while notes.add and notes.list were held at their backend.
func TestLegacyResultsAreBoundedByBytes(t *testing.T) {
	f := newFleet(t)
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	todo := registrytest.Start(t, "todo", []registrytest.Service{notesService("todo")})
	env := []string{"CAPABILITY_BACKENDS", "capability-core=" + f.CoreAddr + ",notes=" + notes.Addr + ",todo=" + todo.Addr,
		"RATE_LIMIT_PER_MINUTE", "100000", "CORE_CALL_TIMEOUT", "60s", "STREAM_WRITE_TIMEOUT", "60s"}
	a, b := f.Gateway(env...), f.Gateway(env...)
	tok := f.Token("user-1", "openid notes.read notes.write todo.read")
	s := openRawLegacy(t, a, tok)

	entered, release := notes.Hold()
	released := false
	t.Cleanup(func() {
		if !released {
			release()
		}
	})
	htmlText := strings.Repeat("<&>", 1000) // escaped six times over by encoding/json
	for _, c := range []string{toolCallBody(`"add"`, "notes.add", "first"), toolCallBody(`"list"`, "notes.list", htmlText)} {
		if r := s.post(a, c); r.Status != 202 {
			t.Fatalf("%s: %d %s", c, r.Status, r.Body)
		}
		select {
		case <-entered:
		case <-time.After(30 * time.Second):
			t.Fatal("the call did not reach its backend")
		}
	}
	// Accepted (nothing waits yet), it waits for the first notes.add.
	if r := s.post(b, toolCallBody(`"add-w"`, "notes.add", "second")); r.Status != 202 {
		t.Fatalf("second notes.add: %d %s", r.Status, r.Body)
	}
	if r := s.post(a, toolCallBody(`"big"`, "todo.list", registrytest.BigReplyText(3_900_000))); r.Status != 202 {
		t.Fatalf("big call: %d %s", r.Status, r.Body)
	}
	// The big result is taken (no result waited) and waits for the stream:
	// requests are refused from then on. Pings probe it, further apart each
	// time up to 5 s (a bound on the wait of ~2 minutes, not a speed
	// assertion: the result is encoded twice, under the race detector, on
	// a machine that may be loaded), within the 32 requests a session may
	// have waiting.
	pings, refused := 0, false
	for i := 0; i < 28 && !refused; i++ {
		r := s.post(a, fmt.Sprintf(`{"jsonrpc":"2.0","id":"p-%d","method":"ping"}`, i))
		switch r.Status {
		case 202:
			pings++
			time.Sleep(time.Duration(min(i+1, 5)) * time.Second)
		case 429:
			refused = true
		default:
			t.Fatalf("ping: %d %s", r.Status, r.Body)
		}
	}
	if !refused {
		t.Fatal("no request refused while the 7.8 MB result waited")
	}
	for name, g := range map[string]*gw{"stream's replica": a, "relayed": b} {
		r := s.post(g, toolCallBody(`"add-2"`, "notes.add", "third"))
		m := r.rpc(t)
		if r.Status != 429 || m.Error == nil || m.Error.Code != -32029 || string(m.ID) != `"add-2"` ||
			!strings.Contains(m.Error.Message, "4194304 bytes of tool results") {
			t.Errorf("%s: notes.add while the results are at their bound: %d %s; want 429 -32029 naming the bound", name, r.Status, r.Body)
		}
	}
	release()
	released = true

	got := map[string]streamAnswer{}
	for len(got) < 4+pings {
		a, d := s.answer()
		if string(a.ID) == `"big"` && (a.Result == nil || len(d) < 7_800_000) {
			t.Fatalf("big result: %.300s", d)
		}
		got[string(a.ID)] = a
	}
	if a := got[`"add"`]; a.Error != nil || a.Result == nil {
		t.Errorf("notes.add that ran below the bound: %+v, want its result", a)
	}
	for id, want := range map[string][]string{
		`"add-w"`: {"notes.add", "was not run", "4194304 bytes", "call it again"},
		`"list"`:  {"notes.list", "dropped", "4194304 bytes", "call it again"},
	} {
		a := got[id]
		if a.Error == nil {
			t.Errorf("%s: %+v, want an error", id, a)
			continue
		}
		for _, w := range want {
			if !strings.Contains(a.Error.Message, w) {
				t.Errorf("%s: %q does not say %q", id, a.Error.Message, w)
			}
		}
	}
	var adds []string
	for _, c := range notes.Calls() {
		if strings.HasSuffix(c.Method, "/AddNote") {
			adds = append(adds, c.Text)
		}
	}
	if len(adds) != 1 || adds[0] != "first" {
		t.Errorf("notes.add reached its backend with %q, want only \"first\" (the one not run and the one refused never)", adds)
	}
	// Read, the results leave the bound: the session takes calls again.
	if r := s.post(b, toolCallBody(`"add-3"`, "notes.add", "third")); r.Status != 202 {
		t.Fatalf("notes.add after the stream was read: %d %s", r.Status, r.Body)
	}
	if a, d := s.answer(); string(a.ID) != `"add-3"` || a.Result == nil {
		t.Errorf("notes.add after the stream was read: %.300s", d)
	}
	// The dropped result's size is the one the client receives for the
	// same call now.
	if r := s.post(a, toolCallBody(`"list-again"`, "notes.list", htmlText)); r.Status != 202 {
		t.Fatalf("notes.list again: %d %s", r.Status, r.Body)
	}
	again, d := s.answer()
	if string(again.ID) != `"list-again"` || again.Result == nil {
		t.Fatalf("notes.list again: %.300s", d)
	}
	if e := got[`"list"`].Error; e != nil {
		if m := regexp.MustCompile(`\((\d+) bytes\)`).FindStringSubmatch(e.Message); m == nil || m[1] != strconv.Itoa(len(again.Result)) {
			t.Errorf("dropped notes.list result: %q; the client receives %d bytes for it", e.Message, len(again.Result))
		}
	}
}

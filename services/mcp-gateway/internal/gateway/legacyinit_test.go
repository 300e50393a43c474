package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Concurrent initializes of one legacy HTTP+SSE session, posted to the
// replica holding its stream and to another (relayed), all got past the
// refusal of a second initialize, which read the negotiated version
// recorded only once mcp-go had answered: two or three of four were
// accepted and the session's version was replaced mid-session. The
// session's initialize is now claimed in Redis before the message goes
// on to mcp-go: exactly one is accepted and answered on the stream, the
// others are refused on the POST (400, -32600 "session already
// initialized", each with its id), and a later initialize names the
// version the accepted one negotiated. A few sessions, so that the race
// is run more than once.
func TestConcurrentLegacyInitializesAcceptOne(t *testing.T) {
	f := newFleet(t)
	a, b := f.Gateway("RATE_LIMIT_PER_MINUTE", "100000"), f.Gateway("RATE_LIMIT_PER_MINUTE", "100000")
	tok := f.Token("user-7", allScopes)
	versions := []string{"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"}
	const sessions, initializes = 4, 8
	for round := range sessions {
		s := a.openStream(t, "/sse", tok, nil)
		path := s.endpoint()
		inits := make([]map[string]any, initializes)
		answers := make([]*resp, initializes)
		for i := range inits {
			inits[i] = call("initialize", map[string]any{"protocolVersion": versions[i%len(versions)], "capabilities": map[string]any{},
				"clientInfo": map[string]any{"name": fmt.Sprintf("client-%d", i), "version": "1"}})
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range inits {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				answers[i] = []*gw{a, b}[i%2].do(t, req{Method: "POST", Path: path, Token: tok, Body: inits[i]})
			}()
		}
		close(start)
		wg.Wait()
		accepted := -1
		for i, r := range answers {
			if r == nil {
				t.Fatalf("round %d: initialize %d not answered", round, i)
			}
			if r.Status == http.StatusAccepted {
				if accepted >= 0 {
					t.Fatalf("round %d: initializes %d and %d both accepted", round, accepted, i)
				}
				accepted = i
				continue
			}
			m := r.rpc(t)
			wantID, _ := json.Marshal(inits[i]["id"])
			if r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32600 ||
				!strings.Contains(m.Error.Message, "session already initialized") || string(m.ID) != string(wantID) {
				t.Fatalf("round %d: initialize %d: %d %s, want 400 -32600 session already initialized", round, i, r.Status, r.Body)
			}
		}
		if accepted < 0 {
			t.Fatalf("round %d: no initialize accepted", round)
		}
		e := s.next(response(inits[accepted]["id"]))
		won := versions[accepted%len(versions)]
		if !strings.Contains(e.Data, `"protocolVersion":"`+won+`"`) {
			t.Fatalf("round %d: answer to the accepted initialize: %s", round, e.Data)
		}
		again := call("initialize", map[string]any{"protocolVersion": "2024-11-05", "capabilities": map[string]any{},
			"clientInfo": map[string]any{"name": "late", "version": "1"}})
		r := b.do(t, req{Method: "POST", Path: path, Token: tok, Body: again})
		if m := r.rpc(t); r.Status != http.StatusBadRequest || m.Error == nil || !strings.Contains(m.Error.Message, "(protocol version "+won+")") {
			t.Fatalf("round %d: a later initialize: %d %s, want the refusal naming %s", round, r.Status, r.Body, won)
		}
		s.Close()
	}
}

// An initialize mcp-go answers with an error — capabilities that are no
// object, which it cannot decode; a _meta naming the stateless
// 2026-07-28, which has no initialize — leaves the legacy session
// uninitialized, as a refused initialize on /mcp leaves no session: it
// takes no claim, and the client's next initialize is accepted and
// answered.
func TestLegacyInitializeAfterAFailedOne(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-7", allScopes)
	s := g.openStream(t, "/sse", tok, nil)
	path := s.endpoint()
	for _, bad := range []map[string]any{
		call("initialize", map[string]any{"protocolVersion": "2024-11-05", "capabilities": "none",
			"clientInfo": map[string]any{"name": "legacy", "version": "1"}}),
		call("initialize", map[string]any{"protocolVersion": "2024-11-05", "capabilities": map[string]any{},
			"clientInfo": map[string]any{"name": "legacy", "version": "1"},
			"_meta":      map[string]any{"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": map[string]any{}}}),
	} {
		if r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: bad}); r.Status != http.StatusAccepted {
			// Refused on the POST, before the claim, it would test nothing here.
			t.Fatalf("failing initialize %v: %d %s, want it accepted and refused by mcp-go on the stream", bad["params"], r.Status, r.Body)
		}
		if e := s.next(response(bad["id"])); !strings.Contains(e.Data, `"error"`) {
			t.Fatalf("answer to the failing initialize %v: %s", bad["params"], e.Data)
		}
	}
	legacyInit(t, s, g, tok, path)
	list := call("tools/list", nil)
	if r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: list}); r.Status != http.StatusAccepted {
		t.Fatalf("tools/list after initialize: %d %s", r.Status, r.Body)
	}
	s.next(response(list["id"]))
}

// A legacy session served requests sent before its initialize was
// answered: a resources/subscribe was recorded and answered {}. MCP's
// lifecycle has the client send nothing but pings until the server has
// answered initialize (on /mcp a request without a session is refused,
// "send initialize first"); /messages now refuses such a request on the
// POST: 400, -32600 "session not initialized; send initialize first",
// with the request's id. A ping is answered, a notification accepted, and
// once initialize is answered the same requests are served.
func TestLegacyRequestsBeforeInitializeAreRefused(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("MCP_CONFORMANCE_FIXTURES", "true")
	tok := f.Token("user-7", allScopes)
	s := g.openStream(t, "/sse", tok, nil)
	path := s.endpoint()
	early := []map[string]any{
		call("resources/subscribe", map[string]any{"uri": "test://static-text"}),
		call("tools/list", nil),
		call("tools/call", map[string]any{"name": "identity.profile", "arguments": map[string]any{}}),
	}
	for _, c := range early {
		r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: c})
		m := r.rpc(t)
		wantID, _ := json.Marshal(c["id"])
		if r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32600 ||
			!strings.Contains(m.Error.Message, "session not initialized; send initialize first") || string(m.ID) != string(wantID) {
			t.Errorf("%s before initialize: %d %s, want 400 -32600 session not initialized", c["method"], r.Status, r.Body)
		}
	}
	ping := call("ping", nil)
	if r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: ping}); r.Status != http.StatusAccepted {
		t.Fatalf("ping before initialize: %d %s", r.Status, r.Body)
	}
	s.next(response(ping["id"]))
	if r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: map[string]any{"jsonrpc": "2.0", "method": "notifications/cancelled",
		"params": map[string]any{"requestId": 1}}}); r.Status != http.StatusAccepted {
		t.Fatalf("a notification before initialize: %d %s", r.Status, r.Body)
	}
	legacyInit(t, s, g, tok, path)
	for _, c := range early {
		c = call(c["method"].(string), c["params"])
		if r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: c}); r.Status != http.StatusAccepted {
			t.Fatalf("%s after initialize: %d %s", c["method"], r.Status, r.Body)
		}
		if e := s.next(response(c["id"])); !strings.Contains(e.Data, `"result"`) {
			t.Errorf("%s after initialize: %s", c["method"], e.Data)
		}
	}
}

// An initialize without an id is a notification to mcp-go, which ignores
// it (no answer, nothing initialized), as /mcp does (202, no session). It
// took the legacy session's initialize claim, which nothing gave back:
// every later initialize was refused "its first initialize is being
// answered" and every request "session not initialized" for the
// session's life. It is now accepted and takes no claim: the initialize
// that follows (with an id) is accepted and answered.
func TestLegacyInitializeNotificationTakesNoClaim(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-7", allScopes)
	s := g.openStream(t, "/sse", tok, nil)
	path := s.endpoint()
	params := map[string]any{"protocolVersion": "2024-11-05", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "legacy", "version": "1"}}
	note := map[string]any{"jsonrpc": "2.0", "method": "initialize", "params": params}
	if r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: note}); r.Status != http.StatusAccepted {
		t.Fatalf("initialize without an id on /mcp: %d %s, want 202 (as on /messages)", r.Status, r.Body)
	}
	if r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: note}); r.Status != http.StatusAccepted {
		t.Fatalf("initialize without an id: %d %s, want 202", r.Status, r.Body)
	}
	init := call("initialize", params)
	if r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: init}); r.Status != http.StatusAccepted {
		t.Fatalf("initialize after an initialize without an id: %d %s, want 202", r.Status, r.Body)
	}
	if e := s.next(response(init["id"])); !strings.Contains(e.Data, `"protocolVersion":"2024-11-05"`) {
		t.Fatalf("answer to initialize: %s", e.Data)
	}
}

// initializeFails ignored the error of decoding params._meta, while
// mcp-go (extractRequestProtocolInfo) takes params whose _meta does not
// decode for the legacy era and initializes. A duplicate "_meta" — first
// a stateless 2026-07-28 one, then a number — was judged refused by
// mcp-go and took no claim, while mcp-go initialized: concurrent such
// initializes, on two replicas, were all accepted and answered with a
// result. They now race for the claim as any initialize: one is accepted
// and answered, the others refused on the POST.
func TestLegacyInitializeWithUndecodableMetaIsClaimed(t *testing.T) {
	f := newFleet(t)
	a, b := f.Gateway("RATE_LIMIT_PER_MINUTE", "100000"), f.Gateway("RATE_LIMIT_PER_MINUTE", "100000")
	tok := f.Token("user-7", allScopes)
	s := a.openStream(t, "/sse", tok, nil)
	path := s.endpoint()
	const n = 8
	body := func(i int) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"initialize","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}},"_meta":1,"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"c%d","version":"1"}}}`, 9000+i, i)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	answers := make([]*resp, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			answers[i] = []*gw{a, b}[i%2].do(t, req{Method: "POST", Path: path, Token: tok, Body: body(i)})
		}()
	}
	close(start)
	wg.Wait()
	accepted := -1
	for i, r := range answers {
		if r.Status == http.StatusAccepted {
			if accepted >= 0 {
				t.Fatalf("initializes %d and %d both accepted", accepted, i)
			}
			accepted = i
			continue
		}
		if m := r.rpc(t); r.Status != http.StatusBadRequest || m.Error == nil || !strings.Contains(m.Error.Message, "session already initialized") {
			t.Fatalf("initialize %d: %d %s, want 400 session already initialized", i, r.Status, r.Body)
		}
	}
	if accepted < 0 {
		t.Fatal("no initialize accepted")
	}
	if e := s.next(response(9000 + accepted)); !strings.Contains(e.Data, `"result"`) {
		t.Fatalf("answer to the accepted initialize: %s", e.Data)
	}
}

// When the negotiated version could not be recorded after mcp-go had
// answered a legacy initialize (Redis refused the write: here an ACL
// denying HSET, which the claim's script does not use), the session
// refused every request ("session not initialized") and every initialize
// ("its first initialize is being answered") until the claim expired
// (30 s), while its stream stayed open and the client, answered, took the
// session for initialized. The record is now retried briefly, and when it
// still fails the session's stream ends, without the answer, within
// seconds: the session is gone (404) and a new GET /sse is initialized
// and served once Redis accepts writes again.
func TestLegacyStreamEndsWhenTheVersionIsNotRecorded(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-7", allScopes)
	s := g.openStream(t, "/sse", tok, nil)
	path := s.endpoint()
	rc := f.Redis.Client()
	allowHSET := denyCommand(t, rc, "hset")
	init := call("initialize", map[string]any{"protocolVersion": "2024-11-05", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "legacy", "version": "1"}})
	start := time.Now()
	if r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: init}); r.Status != http.StatusAccepted {
		t.Fatalf("initialize: %d %s", r.Status, r.Body)
	}
	answered := response(init["id"])
	deadline := time.After(5 * time.Second)
	for ended := false; !ended; {
		select {
		case e, ok := <-s.events:
			if !ok {
				ended = true
			} else if answered(e) {
				t.Fatalf("initialize answered on a session whose version was not recorded: %s", e.Data)
			}
		case <-deadline:
			t.Fatal("the stream of a session whose version was not recorded is still open after 5 s")
		}
	}
	t.Logf("stream ended %v after the initialize", time.Since(start).Round(time.Millisecond))
	if r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: call("ping", nil)}); r.Status != http.StatusNotFound {
		t.Fatalf("ping on the ended session: %d %s, want 404", r.Status, r.Body)
	}
	allowHSET()
	s, path = g.openLegacy(t, tok)
	list := call("tools/list", nil)
	if r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: list}); r.Status != http.StatusAccepted {
		t.Fatalf("tools/list on the new session: %d %s", r.Status, r.Body)
	}
	if e := s.next(response(list["id"])); !strings.Contains(e.Data, `"tools"`) {
		t.Fatalf("tools/list on the new session: %s", e.Data)
	}
}

// A brief Redis refusal of the negotiated version's record (an ACL
// denying HSET, lifted 150 ms after the initialize) is retried: the
// initialize is answered on the same stream and the session is served.
// Recorded once, the version was lost and the session refused requests.
func TestLegacyVersionRecordIsRetried(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-7", allScopes)
	s := g.openStream(t, "/sse", tok, nil)
	path := s.endpoint()
	rc := f.Redis.Client()
	allowHSET := denyCommand(t, rc, "hset")
	init := call("initialize", map[string]any{"protocolVersion": "2024-11-05", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "legacy", "version": "1"}})
	if r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: init}); r.Status != http.StatusAccepted {
		t.Fatalf("initialize: %d %s", r.Status, r.Body)
	}
	time.Sleep(150 * time.Millisecond)
	allowHSET()
	if e := s.next(response(init["id"])); !strings.Contains(e.Data, `"protocolVersion":"2024-11-05"`) {
		t.Fatalf("answer to initialize: %s", e.Data)
	}
	list := call("tools/list", nil)
	if r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: list}); r.Status != http.StatusAccepted {
		t.Fatalf("tools/list after the retried record: %d %s", r.Status, r.Body)
	}
	if e := s.next(response(list["id"])); !strings.Contains(e.Data, `"tools"`) {
		t.Fatalf("tools/list after the retried record: %s", e.Data)
	}
}

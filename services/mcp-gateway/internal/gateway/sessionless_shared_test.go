package gateway_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A sessionless request served by mcp-go's stateless transport has a
// session of its own: no other user's request is served with it. In
// stateless mode mcp-go keys every legacy request's session on "" and,
// once a handler sends a server request (elicitation) on a POST stream,
// registers that session under "" (activeSessions) for the request's
// life; every other sessionless request through the transport then
// reuses it, and its notifications go to that session's channel, read by
// both POSTs' forwarders. Conformance fixture profile (the only handlers
// that send server requests).
func TestSessionlessRequestsShareNoSession(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("MCP_CONFORMANCE_FIXTURES", "true")
	alice, bob := f.Token("alice", allScopes), f.Token("bob", allScopes)

	// Alice: an elicitation with a progress token (the transport's path),
	// waiting for an answer that never comes.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"test_elicitation","arguments":{"message":"hi"},"_meta":{"progressToken":"alice-token"}}}`
	hr, _ := http.NewRequestWithContext(ctx, "POST", g.URL+"/mcp", strings.NewReader(body))
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "application/json, text/event-stream")
	hr.Header.Set("Authorization", "Bearer "+alice)
	hr.Header.Set("Mcp-Protocol-Version", version)
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// Wait for the elicitation request on Alice's stream.
	deadline := time.After(time.Minute)
	for seen := false; !seen; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("alice's stream ended before the elicitation (status %d)", res.StatusCode)
			}
			seen = strings.Contains(l, "elicitation/create")
		case <-deadline:
			t.Fatal("no elicitation/create on alice's stream")
		}
	}

	// Bob: a tool with progress, sessionless.
	b := g.do(t, req{Method: "POST", Path: "/mcp", Token: bob, Version: version,
		Body: `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_tool_with_progress","arguments":{},"_meta":{"progressToken":"bob-token"}}}`})
	var progress []string
	for _, e := range b.Events {
		if strings.Contains(e.Data, "notifications/progress") {
			progress = append(progress, e.Data)
		}
	}
	// Alice's stream must carry nothing of Bob's.
	var leaked []string
	for quiet := time.After(time.Second); ; {
		select {
		case l, ok := <-lines:
			if ok && strings.Contains(l, "bob-token") {
				leaked = append(leaked, l)
			}
			if ok {
				continue
			}
		case <-quiet:
		}
		break
	}
	// The internal session ids are never answered.
	if id := res.Header.Get("Mcp-Session-Id") + b.Header.Get("Mcp-Session-Id"); id != "" {
		t.Errorf("a sessionless answer carries Mcp-Session-Id %q", id)
	}
	// Bob's own stream carries all 3 of his progress notifications, in
	// order, then his answer (TestSessionlessProgressPrecedesItsAnswer).
	n := len(b.Events)
	if len(leaked) > 0 || len(progress) != 3 || n != 4 || !response(2)(b.Events[n-1]) ||
		!strings.Contains(progress[0], `"progress":0`) || !strings.Contains(progress[1], `"progress":50`) || !strings.Contains(progress[2], `"progress":100`) {
		t.Errorf("bob got progress %q and then %+v, want 0, 50, 100 and his answer; alice's stream carried bob's: %q", progress, b.Events, leaked)
	}
}

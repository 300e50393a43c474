package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// A GET /mcp stream is refused (404, as for an unknown session) to another
// subject and to the same subject through another client; a session may
// hold two GET streams at once (Streamable HTTP: "The client MAY remain
// connected to multiple SSE streams simultaneously"), closing one keeps the
// other delivering, and a DELETE on another replica ends the stream and
// leaves nothing registered with mcp-go.
func TestListenStreamOwnershipTwoStreamsAndDelete(t *testing.T) {
	r := testharness.StartRedis(t)
	iss := tokentest.Start(t, "http://localhost:4000")
	a, aURL := replica(t, r, iss)
	b, bURL := replica(t, r, iss)
	tok := iss.Mint(t, tokentest.Token{Subject: "u1", ClientID: "c1", Audience: testResource, Scope: "openid"})
	res := post(t, aURL, tok, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	res.Body.Close()
	sid := res.Header.Get("Mcp-Session-Id")
	if res.StatusCode != 200 || sid == "" {
		t.Fatalf("initialize: %d", res.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	for _, other := range []tokentest.Token{
		{Subject: "u2", ClientID: "c1", Audience: testResource, Scope: "openid"},
		{Subject: "u1", ClientID: "c2", Audience: testResource, Scope: "openid"},
	} {
		res, _ := getStream(t, ctx, bURL, iss.Mint(t, other), sid, "")
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "session not found; initialize a new session") {
			t.Errorf("GET by %s/%s: %d %s, want 404 session not found", other.Subject, other.ClientID, res.StatusCode, body)
		}
	}
	registered := func(g *Gateway) int { return int(testutil.ToFloat64(g.metrics.registered)) }
	if n := registered(b); n != 0 {
		t.Errorf("refused GETs registered %d sessions on B", n)
	}

	notify := func(text string) {
		t.Helper()
		if err := b.Notify(context.Background(), sid, "notifications/message", map[string]any{"level": "info", "data": text}); err != nil {
			t.Fatal(err)
		}
	}
	ctx1, close1 := context.WithCancel(ctx)
	res1, events1 := getStream(t, ctx1, aURL, tok, sid, "")
	res2, events2 := getStream(t, ctx, aURL, tok, sid, "")
	defer res2.Body.Close()
	if res1.StatusCode != 200 || res2.StatusCode != 200 {
		t.Fatalf("two GET streams of one session: %d, %d", res1.StatusCode, res2.StatusCode)
	}
	testharness.Eventually(t, 30*time.Second, "both streams open on A", func() (bool, string) {
		n := testutil.ToFloat64(a.metrics.streams.WithLabelValues(transportStreamable))
		return n == 2 && registered(a) == 1, fmt.Sprintf("streams %v, registered %d", n, registered(a))
	})
	notify("one")
	// One of the two streams carries it (a message goes on one stream only).
	select {
	case e := <-events1:
		if !strings.Contains(e.data, "one") {
			t.Fatalf("stream 1: %+v", e)
		}
	case e := <-events2:
		if !strings.Contains(e.data, "one") {
			t.Fatalf("stream 2: %+v", e)
		}
	case <-ctx.Done():
		t.Fatal("no stream got the notification")
	}
	close1()
	res1.Body.Close()
	testharness.Eventually(t, 30*time.Second, "one stream left on A", func() (bool, string) {
		n := testutil.ToFloat64(a.metrics.streams.WithLabelValues(transportStreamable))
		return n == 1, fmt.Sprintf("streams %v", n)
	})
	if n := registered(a); n != 1 {
		t.Fatalf("session registered on A with one stream still open: %d", n)
	}
	notify("two")
	nextListenEvent(t, ctx, events2, "two")

	// DELETE on B ends A's stream.
	req, _ := http.NewRequest("DELETE", bURL+"/mcp", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	dres, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	dres.Body.Close()
	if dres.StatusCode != 200 {
		t.Fatalf("DELETE on B: %d", dres.StatusCode)
	}
	select {
	case e, ok := <-events2:
		if ok {
			t.Fatalf("event after DELETE: %+v", e)
		}
	case <-ctx.Done():
		t.Fatal("A's stream still open after DELETE on B")
	}
	testharness.Eventually(t, 30*time.Second, "nothing registered on A after DELETE", func() (bool, string) {
		return registered(a) == 0, fmt.Sprintf("registered on A: %d", registered(a))
	})
	// A GET of the deleted session, with or without Last-Event-ID, is 404.
	res, _ = getStream(t, ctx, aURL, tok, sid, "")
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("GET after DELETE: %d, want 404", res.StatusCode)
	}
}

// A GET /mcp with a Last-Event-ID that is no event of the session is 400
// whichever path serves it (the gateway's own for "listen-" ids, mcp-go's
// transport for others), and registers nothing with mcp-go.
func TestListenUnknownLastEventID(t *testing.T) {
	r := testharness.StartRedis(t)
	iss := tokentest.Start(t, "http://localhost:4000")
	a, aURL := replica(t, r, iss)
	tok := iss.Mint(t, tokentest.Token{Subject: "u1", ClientID: "c1", Audience: testResource, Scope: "openid"})
	res := post(t, aURL, tok, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	res.Body.Close()
	sid := res.Header.Get("Mcp-Session-Id")
	if res.StatusCode != 200 || sid == "" {
		t.Fatalf("initialize: %d", res.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, id := range []string{"listen-00112233445566778899aabb_1-0", "listen-", "not-an-event", "0-1"} {
		res, _ := getStream(t, ctx, aURL, tok, sid, id)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("Last-Event-ID %q: %d %s, want 400", id, res.StatusCode, body)
		}
	}
	if n := int(testutil.ToFloat64(a.metrics.registered)); n != 0 {
		t.Errorf("sessions registered with mcp-go after refused resumptions: %d", n)
	}
}

// A GET /mcp stream whose client stopped reading (its TCP window closed)
// ends once a write has waited listenWriteTimeout: a DELETE of the session
// cancels the stream's context, which does not interrupt a blocked Write:
// without the write deadline the stream's goroutine, its connection and
// the session's entry in the replica's listeners stayed (open streams 1
// after the DELETE) as long as the client kept the connection open.
func TestListenStreamOfAClientThatStopsReadingEnds(t *testing.T) {
	old := listenWriteTimeout
	listenWriteTimeout = 2 * time.Second
	t.Cleanup(func() { listenWriteTimeout = old })
	r := testharness.StartRedis(t)
	iss := tokentest.Start(t, "http://localhost:4000")
	a, aURL := replica(t, r, iss)
	tok := iss.Mint(t, tokentest.Token{Subject: "u1", ClientID: "c1", Audience: testResource, Scope: "openid"})
	res := post(t, aURL, tok, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	res.Body.Close()
	sid := res.Header.Get("Mcp-Session-Id")
	if res.StatusCode != 200 || sid == "" {
		t.Fatalf("initialize: %d", res.StatusCode)
	}
	// A client that sends its GET and never reads.
	conn, err := net.Dial("tcp", strings.TrimPrefix(aURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /mcp HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\nAuthorization: Bearer %s\r\nMcp-Session-Id: %s\r\nMcp-Protocol-Version: 2025-11-25\r\n\r\n", tok, sid)
	registered := func() int { return int(testutil.ToFloat64(a.metrics.registered)) }
	testharness.Eventually(t, 30*time.Second, "the stream's session registered", func() (bool, string) {
		return registered() == 1, fmt.Sprintf("registered: %d", registered())
	})
	// More than the socket buffers hold (tcp_wmem's 4 MiB at most): the
	// stream's writer blocks.
	big := strings.Repeat("x", 64<<10)
	for range 300 {
		if err := a.Notify(context.Background(), sid, "notifications/message", map[string]any{"level": "info", "data": big}); err != nil {
			t.Fatal(err)
		}
	}
	req, _ := http.NewRequest("DELETE", aURL+"/mcp", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	dres, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	dres.Body.Close()
	if dres.StatusCode != 200 {
		t.Fatalf("DELETE: %d", dres.StatusCode)
	}
	testharness.Eventually(t, 60*time.Second, "the unread stream ended and its session unregistered", func() (bool, string) {
		n := testutil.ToFloat64(a.metrics.streams.WithLabelValues(transportStreamable))
		return registered() == 0 && n == 0, fmt.Sprintf("registered: %d, open streams: %v", registered(), n)
	})
}

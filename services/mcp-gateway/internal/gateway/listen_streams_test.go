package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tollgate/tollgate/services/mcp-gateway/internal/session"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// listenFixture is a Streamable HTTP session (2025-11-25) initialized on
// the first of its replicas — gateways built by replica, sharing one real
// Redis and one key-set server — by the subject u1 through the client c1.
type listenFixture struct {
	iss  *tokentest.Issuer
	gws  []*Gateway
	urls []string
	tok  string // u1's access token through c1
	sid  string // the session
}

// newListenFixture starts replicas gateways with the settings env (name,
// value pairs) and initializes a session on the first.
func newListenFixture(t *testing.T, replicas int, env ...string) *listenFixture {
	t.Helper()
	r := testharness.StartRedis(t)
	f := &listenFixture{iss: tokentest.Start(t, "http://localhost:4000")}
	for range replicas {
		g, u := replica(t, r, f.iss, env...)
		f.gws, f.urls = append(f.gws, g), append(f.urls, u)
	}
	f.tok = f.iss.Mint(t, tokentest.Token{Subject: "u1", ClientID: "c1", Audience: testResource, Scope: "openid"})
	f.sid = f.initialize(t, f.urls[0])
	return f
}

// initialize opens another session of f's token on url and returns its id.
func (f *listenFixture) initialize(t *testing.T, url string) string {
	t.Helper()
	res := post(t, url, f.tok, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	res.Body.Close()
	sid := res.Header.Get("Mcp-Session-Id")
	if res.StatusCode != 200 || sid == "" {
		t.Fatalf("initialize on %s: %d", url, res.StatusCode)
	}
	return sid
}

// delete ends the session with DELETE /mcp on url and fails unless it is
// answered 200.
func (f *listenFixture) delete(t *testing.T, url string) {
	t.Helper()
	req, _ := http.NewRequest("DELETE", url+"/mcp", nil)
	req.Header.Set("Authorization", "Bearer "+f.tok)
	req.Header.Set("Mcp-Session-Id", f.sid)
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("DELETE on %s: %d", url, res.StatusCode)
	}
}

// refusedGET sends a GET /mcp of the session on url with token and, if
// set, Last-Event-ID, and returns the whole answer: for a refusal, which
// getStream's reader would race to read.
func (f *listenFixture) refusedGET(t *testing.T, url, token, lastEventID string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/mcp", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Mcp-Session-Id", f.sid)
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	client := &http.Client{Timeout: 30 * time.Second} // a refusal, not a stream
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET /mcp: %v", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET /mcp answered %d, then: %v", res.StatusCode, err)
	}
	return res, string(body)
}

// registered is the number of sessions g has registered with mcp-go.
func registered(g *Gateway) int { return int(testutil.ToFloat64(g.metrics.registered)) }

// openStreams is the number of streams of transport open on g.
func openStreams(g *Gateway, transport string) int {
	return int(testutil.ToFloat64(g.metrics.streams.WithLabelValues(transport)))
}

// stalledClient sends a GET of path with headers over a real TCP
// connection with a small receive buffer, and never reads the answer:
// once the socket buffers are full, the server's writes block. It reads
// nothing at all unless until is set, in which case it reads the answer
// up to and including the first line containing until and returns that
// line, then stops reading.
func stalledClient(t *testing.T, url, path string, headers map[string]string, until string) (net.Conn, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n", path)
	for k, v := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	if until == "" {
		return conn, ""
	}
	// One byte at a time, so that nothing after the line is read.
	var line []byte
	one := make([]byte, 1)
	for {
		if _, err := conn.Read(one); err != nil {
			t.Fatalf("reading the answer up to %q: %v (read %q)", until, err, line)
		}
		if one[0] != '\n' {
			line = append(line, one[0])
			continue
		}
		if strings.Contains(string(line), until) {
			return conn, strings.TrimSpace(string(line))
		}
		line = line[:0]
	}
}

// A GET /mcp stream is refused (404, as for an unknown session) to another
// subject and to the same subject through another client; a session may
// hold two GET streams at once (Streamable HTTP: "The client MAY remain
// connected to multiple SSE streams simultaneously"), closing one keeps the
// other delivering, and a DELETE on another replica ends the stream and
// leaves nothing registered with mcp-go.
func TestListenStreamOwnershipTwoStreamsAndDelete(t *testing.T) {
	f := newListenFixture(t, 2)
	a, b, aURL, bURL, tok, sid := f.gws[0], f.gws[1], f.urls[0], f.urls[1], f.tok, f.sid
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	for _, other := range []tokentest.Token{
		{Subject: "u2", ClientID: "c1", Audience: testResource, Scope: "openid"},
		{Subject: "u1", ClientID: "c2", Audience: testResource, Scope: "openid"},
	} {
		res, body := f.refusedGET(t, bURL, f.iss.Mint(t, other), "")
		if res.StatusCode != http.StatusNotFound || !strings.Contains(body, "session not found; initialize a new session") {
			t.Errorf("GET by %s/%s: %d %s, want 404 session not found", other.Subject, other.ClientID, res.StatusCode, body)
		}
	}
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
		n := openStreams(a, transportStreamable)
		return n == 2 && registered(a) == 1, fmt.Sprintf("streams %d, registered %d", n, registered(a))
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
		n := openStreams(a, transportStreamable)
		return n == 1, fmt.Sprintf("streams %d", n)
	})
	if n := registered(a); n != 1 {
		t.Fatalf("session registered on A with one stream still open: %d", n)
	}
	notify("two")
	nextListenEvent(t, ctx, events2, "two")

	// DELETE on B ends A's stream.
	f.delete(t, bURL)
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
	res, _ := getStream(t, ctx, aURL, tok, sid, "")
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("GET after DELETE: %d, want 404", res.StatusCode)
	}
}

// A GET /mcp with a Last-Event-ID that is no event of the session gets one
// answer whichever path would serve it (the gateway's own for "listen-"
// ids, mcp-go's transport for others, whose own refusal is plain text):
// 400, a JSON-RPC error -32600 with a null id; and registers nothing with
// mcp-go.
func TestListenUnknownLastEventID(t *testing.T) {
	f := newListenFixture(t, 1)
	want := `{"error":{"code":-32600,"message":"unknown Last-Event-ID: not an event of this session's streams; open a new stream without Last-Event-ID"},"id":null,"jsonrpc":"2.0"}` + "\n"
	for _, id := range []string{
		"listen-00112233445566778899aabb_1-0",      // the gateway's stream form, never recorded
		"listen-",                                  // the gateway's prefix, malformed
		"0f8fad5b-d9cb-469f-a165-70867728950e_1-0", // the form of a POST's answer stream (mcp-go), never recorded
		"not-an-event",                             // mcp-go's path, malformed
		"0-1",
	} {
		res, body := f.refusedGET(t, f.urls[0], f.tok, id)
		if res.StatusCode != http.StatusBadRequest || res.Header.Get("Content-Type") != "application/json" || body != want {
			t.Errorf("Last-Event-ID %q: %d %s %q, want 400 application/json %q", id, res.StatusCode, res.Header.Get("Content-Type"), body, want)
		}
	}
	if n := registered(f.gws[0]); n != 0 {
		t.Errorf("sessions registered with mcp-go after refused resumptions: %d", n)
	}
}

// A GET /mcp stream whose client stopped reading (its TCP window closed)
// ends once a write has waited STREAM_WRITE_TIMEOUT: a DELETE of the session
// cancels the stream's context, which does not interrupt a blocked Write:
// without the write deadline the stream's goroutine, its connection and
// the session's entry in the replica's listeners stayed (open streams 1
// after the DELETE) as long as the client kept the connection open.
func TestListenStreamOfAClientThatStopsReadingEnds(t *testing.T) {
	f := newListenFixture(t, 1, "STREAM_WRITE_TIMEOUT", "2s")
	a := f.gws[0]
	// A client that sends its GET and never reads.
	stalledClient(t, f.urls[0], "/mcp", map[string]string{
		"Authorization": "Bearer " + f.tok, "Mcp-Session-Id": f.sid, "Mcp-Protocol-Version": "2025-11-25"}, "")
	testharness.Eventually(t, 30*time.Second, "the stream's session registered", func() (bool, string) {
		return registered(a) == 1, fmt.Sprintf("registered: %d", registered(a))
	})
	// More than the socket buffers hold (tcp_wmem's 4 MiB at most): the
	// stream's writer blocks.
	big := strings.Repeat("x", 64<<10)
	for range 300 {
		if err := a.Notify(context.Background(), f.sid, "notifications/message", map[string]any{"level": "info", "data": big}); err != nil {
			t.Fatal(err)
		}
	}
	f.delete(t, f.urls[0])
	testharness.Eventually(t, 60*time.Second, "the unread stream ended and its session unregistered", func() (bool, string) {
		n := openStreams(a, transportStreamable)
		return registered(a) == 0 && n == 0, fmt.Sprintf("registered: %d, open streams: %d", registered(a), n)
	})
}

// A legacy GET /sse stream whose client stopped reading ends by itself
// once a write has waited STREAM_WRITE_TIMEOUT, and its session with it
// (the stream is the session). Without the deadline mcp-go's SSEServer
// stayed blocked in Write, holding the stream's goroutines, buffers and
// session for as long as the client kept its connection open: nothing
// else (no DELETE on the legacy transport) ends it.
func TestLegacyStreamOfAClientThatStopsReadingEnds(t *testing.T) {
	f := newListenFixture(t, 1, "STREAM_WRITE_TIMEOUT", "2s")
	a := f.gws[0]
	// The client reads the endpoint event, which names its session, and
	// nothing after it.
	_, line := stalledClient(t, f.urls[0], "/sse", map[string]string{"Authorization": "Bearer " + f.tok}, "sessionId=")
	_, sid, ok := strings.Cut(line, "sessionId=")
	if !ok || sid == "" {
		t.Fatalf("endpoint event: %q", line)
	}
	if n := openStreams(a, transportSSE); n != 1 {
		t.Fatalf("open /sse streams: %d", n)
	}
	// The handshake over /messages (its answer waits, unread, in the
	// socket buffers): notifications go to initialized sessions only.
	for _, m := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
	} {
		req, _ := http.NewRequest("POST", f.urls[0]+"/messages?sessionId="+sid, strings.NewReader(m))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+f.tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusAccepted {
			t.Fatalf("POST /messages %s: %d", m, res.StatusCode)
		}
	}
	// More than the socket buffers hold (tcp_wmem's 4 MiB at most): the
	// stream's writer blocks. Notifications beyond mcp-go's queues are
	// dropped, as for any slow stream.
	big := strings.Repeat("x", 64<<10)
	for range 300 {
		if err := a.Notify(context.Background(), sid, "notifications/message", map[string]any{"level": "info", "data": big}); err != nil {
			t.Fatal(err)
		}
	}
	testharness.Eventually(t, 60*time.Second, "the unread /sse stream ended and its session released", func() (bool, string) {
		n := openStreams(a, transportSSE)
		_, err := a.sessions.Get(context.Background(), sid)
		_, local := a.localSSE.Load(sid)
		return n == 0 && errors.Is(err, session.ErrNotFound) && !local && registered(a) == 0,
			fmt.Sprintf("open /sse streams: %d, session record: %v, held here: %v, registered: %d", n, err, local, registered(a))
	})
}

// A session holds at most STREAM_LIMIT_PER_SESSION GET /mcp streams on a
// replica: one more is refused with 409 and a JSON-RPC error, the open
// ones carry on, and once one closes a new GET is served again.
func TestListenStreamLimitPerSession(t *testing.T) {
	f := newListenFixture(t, 1, "STREAM_LIMIT_PER_SESSION", "2")
	a, aURL := f.gws[0], f.urls[0]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ctx1, close1 := context.WithCancel(ctx)
	res1, _ := getStream(t, ctx1, aURL, f.tok, f.sid, "")
	res2, events2 := getStream(t, ctx, aURL, f.tok, f.sid, "")
	defer res2.Body.Close()
	if res1.StatusCode != 200 || res2.StatusCode != 200 {
		t.Fatalf("two GET streams: %d, %d", res1.StatusCode, res2.StatusCode)
	}
	testharness.Eventually(t, 30*time.Second, "both streams open", func() (bool, string) {
		n := openStreams(a, transportStreamable)
		return n == 2, fmt.Sprintf("open streams: %d", n)
	})
	want := `{"error":{"code":-32600,"message":"this session already has 2 open GET streams on this server (STREAM_LIMIT_PER_SESSION); close one before opening another"},"id":null,"jsonrpc":"2.0"}` + "\n"
	res, body := f.refusedGET(t, aURL, f.tok, "")
	if res.StatusCode != http.StatusConflict || res.Header.Get("Content-Type") != "application/json" || body != want {
		t.Fatalf("a third GET stream: %d %s %q, want 409 application/json %q", res.StatusCode, res.Header.Get("Content-Type"), body, want)
	}
	if n := openStreams(a, transportStreamable); n != 2 {
		t.Errorf("open streams after the refusal: %d", n)
	}
	// The open streams carry on.
	if err := a.Notify(context.Background(), f.sid, "notifications/message", map[string]any{"level": "info", "data": "still here"}); err != nil {
		t.Fatal(err)
	}
	close1()
	res1.Body.Close()
	testharness.Eventually(t, 30*time.Second, "one stream left", func() (bool, string) {
		n := openStreams(a, transportStreamable)
		return n == 1, fmt.Sprintf("open streams: %d", n)
	})
	ctx3, close3 := context.WithCancel(ctx)
	defer close3()
	res3, events3 := getStream(t, ctx3, aURL, f.tok, f.sid, "")
	defer res3.Body.Close()
	if res3.StatusCode != 200 {
		t.Fatalf("a GET once a stream closed: %d", res3.StatusCode)
	}
	testharness.Eventually(t, 30*time.Second, "two streams open again", func() (bool, string) {
		n := openStreams(a, transportStreamable)
		return n == 2, fmt.Sprintf("open streams: %d", n)
	})
	// A notification goes out on one of the open streams.
	if err := a.Notify(context.Background(), f.sid, "notifications/message", map[string]any{"level": "info", "data": "after"}); err != nil {
		t.Fatal(err)
	}
	for got := false; !got; {
		select {
		case e, ok := <-events2:
			if !ok {
				t.Fatal("stream 2 ended")
			}
			got = strings.Contains(e.data, "after")
		case e, ok := <-events3:
			if !ok {
				t.Fatal("stream 3 ended")
			}
			got = strings.Contains(e.data, "after")
		case <-ctx.Done():
			t.Fatal("no stream got the notification")
		}
	}
}

package gateway

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// firstEvent opens a GET /mcp stream of sid at version and returns the
// lines of its first event (up to the blank line that ends it), with the
// response, whose body the caller closes.
func firstEvent(t *testing.T, ctx context.Context, url, tok, sid, version string) (*http.Response, []string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/mcp", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("Mcp-Protocol-Version", version)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /mcp: %v", err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("GET /mcp: %d", res.StatusCode)
	}
	var lines []string
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if sc.Text() == "" {
			break
		}
		lines = append(lines, sc.Text())
	}
	return res, lines
}

// A GET /mcp stream of a 2025-11-25 session starts with a priming event —
// an event id and an empty data field (Streamable HTTP, "Listening for
// Messages from the Server") — whose id is recorded: a client whose
// stream broke before its first message resumes from it, on any replica,
// and gets what was sent meanwhile. A session negotiated before
// 2025-11-25 gets none (its client may parse an empty data field as a
// message): its first event is a message.
func TestListenStreamStartsWithPrimingEvent(t *testing.T) {
	f := newListenFixture(t, 2)
	a, b, aURL, bURL, tok, sid := f.gws[0], f.gws[1], f.urls[0], f.urls[1], f.tok, f.sid
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	sctx, closeA := context.WithCancel(ctx)
	res, lines := firstEvent(t, sctx, aURL, tok, sid, "2025-11-25")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "id: "+listenStreamPrefix) || lines[1] != "data: " {
		t.Fatalf("first event %q, want an id of the stream and an empty data field", lines)
	}
	primeID := strings.TrimPrefix(lines[0], "id: ")
	// A notification goes out on the stream, recorded, but the client's
	// connection breaks before it reads it: all it holds is the priming id.
	if err := b.Notify(ctx, sid, "notifications/message", map[string]any{"level": "info", "data": "unread"}); err != nil {
		t.Fatal(err)
	}
	streamID, _, _ := strings.Cut(primeID, "_")
	testharness.Eventually(t, 30*time.Second, "the notification recorded on the stream", func() (bool, string) {
		n, err := a.rdb.XLen(ctx, a.rdb.Key("mcp", "events", redisx.Tag(redisx.Hash(sid)), streamID)).Result()
		return err == nil && n == 2, fmt.Sprintf("%d events recorded (%v)", n, err)
	})
	closeA()
	res.Body.Close()
	// Resumed from the priming id on B: the unread notification is
	// replayed, on the same stream, and the stream goes on.
	res, events := getStream(t, ctx, bURL, tok, sid, primeID)
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("resume from the priming id on B: %d, want 200", res.StatusCode)
	}
	e := nextListenEvent(t, ctx, events, "unread")
	if s, _, _ := strings.Cut(e.id, "_"); s != streamID {
		t.Errorf("replayed event %q is not of the primed stream %q", e.id, streamID)
	}
	testharness.Eventually(t, 30*time.Second, "the resumed stream registered on B", func() (bool, string) {
		return registered(b) == 1, ""
	})
	if err := a.Notify(ctx, sid, "notifications/message", map[string]any{"level": "info", "data": "after resuming"}); err != nil {
		t.Fatal(err)
	}
	nextListenEvent(t, ctx, events, "after resuming")
	res.Body.Close()
	testharness.Eventually(t, 30*time.Second, "B's stream closed", func() (bool, string) {
		return registered(b) == 0, ""
	})

	// A 2025-06-18 session: no priming event.
	old := post(t, aURL, tok, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	old.Body.Close()
	oldSID := old.Header.Get("Mcp-Session-Id")
	go func() {
		// Sent once the stream is open, so that it is its first event.
		for registered(a) < 1 && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
		_ = a.Notify(ctx, oldSID, "notifications/message", map[string]any{"level": "info", "data": "first"})
	}()
	res, lines = firstEvent(t, ctx, aURL, tok, oldSID, "2025-06-18")
	res.Body.Close()
	// (the notification, or a keep-alive ping sent before it)
	if j := strings.Join(lines, "\n"); !strings.Contains(j, "data: {") || strings.Contains(j+"\n", "data: \n") {
		t.Errorf("2025-06-18 stream's first event %q, want a message (no priming)", lines)
	}
}

// mcp-go's client, listening on the GET stream, takes the priming event
// for no message: it gets the notifications sent after it, and nothing else.
func TestMCPGoClientListensPastPrimingEvent(t *testing.T) {
	f := newListenFixture(t, 1)
	g, url := f.gws[0], f.urls[0]
	c, err := client.NewStreamableHttpClient(url+"/mcp",
		transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + f.tok}), transport.WithContinuousListening())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var mu sync.Mutex
	var got []mcp.JSONRPCNotification
	c.OnNotification(func(n mcp.JSONRPCNotification) {
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "mcp-go-client", Version: "1"}
	init.Params.ProtocolVersion = "2025-11-25"
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatal(err)
	}
	sid := c.GetSessionId()
	testharness.Eventually(t, 30*time.Second, "the client's GET stream open", func() (bool, string) {
		return registered(g) == 1, ""
	})
	if err := g.Notify(ctx, sid, "notifications/message", map[string]any{"level": "info", "data": "hello"}); err != nil {
		t.Fatal(err)
	}
	testharness.Eventually(t, 30*time.Second, "the notification delivered", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0, ""
	})
	if _, err := c.ListTools(ctx, mcp.ListToolsRequest{}); err != nil {
		t.Errorf("a request after the stream opened: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].Method != "notifications/message" {
		t.Errorf("notifications %+v, want the one sent", got)
	}
}

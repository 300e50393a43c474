package gateway_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/mcp-gateway/internal/gateway"
	"github.com/tollgate/tollgate/services/mcp-gateway/internal/session"
)

// A relayed initialize whose claim is no longer held when it reaches the
// stream's replica is answered there with a JSON-RPC error on the stream;
// when the stream cannot take even that (its client stopped reading: the
// socket and mcp-go's event queue are full), the message was not handled
// and nobody was told: the stream's replica answers "dropped", and the
// POST, on the replica it was sent to, is 503 with Retry-After — sent
// again, it is handled. Here the claim expires at once
// (session.InitializeClaimTTL 0, set before any gateway starts), the
// stream's client reads its endpoint and then nothing, and pings with
// ids of the longest length taken fill what the stream can hold.
func TestLegacyRelayDroppedIs503(t *testing.T) {
	ttl := session.InitializeClaimTTL
	session.InitializeClaimTTL = 0
	t.Cleanup(func() { session.InitializeClaimTTL = ttl })
	f := newFleet(t)
	a, b := f.Gateway("RATE_LIMIT_PER_MINUTE", "100000"), f.Gateway("RATE_LIMIT_PER_MINUTE", "100000")
	tok := f.Token("user-7", allScopes)

	host := strings.TrimPrefix(a.URL, "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /sse HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nAuthorization: Bearer %s\r\n\r\n", host, tok)
	br := bufio.NewReaderSize(conn, 4096)
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	path := ""
	for path == "" {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream's endpoint: %v", err)
		}
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "data: "); ok && strings.HasPrefix(p, "/messages?sessionId=") {
			path = p
		}
	}
	// From here the client reads nothing. Answers with ids as long as
	// the gateway takes (MaxIDBytes) fill the socket; small ones then fill
	// mcp-go's event queue (100).
	big := strings.Repeat("x", gateway.MaxIDBytes-10)
	for i := range 16000 {
		if r := a.do(t, req{Method: "POST", Path: path, Token: tok, Body: map[string]any{"jsonrpc": "2.0", "id": fmt.Sprintf("%s-%d", big, i), "method": "ping"}}); r.Status != http.StatusAccepted {
			t.Fatalf("big ping %d: %d %s", i, r.Status, r.Body)
		}
	}
	for i := range 150 {
		if r := a.do(t, req{Method: "POST", Path: path, Token: tok, Body: call("ping", nil)}); r.Status != http.StatusAccepted {
			t.Fatalf("small ping %d: %d %s", i, r.Status, r.Body)
		}
	}
	init := call("initialize", map[string]any{"protocolVersion": "2024-11-05", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "legacy", "version": "1"}})
	r := b.do(t, req{Method: "POST", Path: path, Token: tok, Body: init})
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Fatalf("relayed initialize the stream's replica could not answer: %d %v %s, want 503 with Retry-After", r.Status, r.Header, r.Body)
	}
	if m := r.rpc(t); m.Error == nil || string(m.ID) != string(mustJSON(t, init["id"])) {
		t.Errorf("503 answer %s, want a JSON-RPC error with the initialize's id", r.Body)
	}
	if v := a.metric(t, `tollgate_mcp_relayed_messages_total{direction="dropped"}`); v != 1 {
		t.Errorf("a: relayed dropped = %v, want 1", v)
	}
}

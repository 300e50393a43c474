package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// A second initialize on a legacy HTTP+SSE session was handed to mcp-go,
// which initialized the session again (another version, client and
// capabilities mid-session). It is refused on the POST: 400, -32600
// "session already initialized" with the request's id; the session goes
// on as negotiated. mcp-go's own legacy client sends one initialize per
// Initialize call: its second call gets the refusal as an error, and the
// session still serves it.
func TestLegacyReinitializeIsRefused(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-7", allScopes)
	s, path := g.openLegacy(t, tok)
	again := call("initialize", map[string]any{"protocolVersion": "2025-03-26", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "someone-else", "version": "2"}})
	r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: again})
	if r.Status != http.StatusBadRequest {
		t.Fatalf("second initialize: %d %s, want 400", r.Status, r.Body)
	}
	m := r.rpc(t)
	wantID, _ := json.Marshal(again["id"])
	if m.Error == nil || m.Error.Code != -32600 || !strings.Contains(m.Error.Message, "session already initialized") || string(m.ID) != string(wantID) {
		t.Errorf("second initialize: %s", r.Body)
	}
	// The session carries on.
	ping := call("ping", nil)
	if r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: ping}); r.Status != http.StatusAccepted {
		t.Fatalf("ping after the refused initialize: %d %s", r.Status, r.Body)
	}
	s.next(response(ping["id"]))

	c, err := client.NewSSEMCPClient(g.URL+"/sse", transport.WithHeaders(map[string]string{"Authorization": "Bearer " + tok}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "mcp-go-client", Version: "1"}
	init.Params.ProtocolVersion = mcp.LATEST_LEGACY_PROTOCOL_VERSION
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Initialize(ctx, init); err == nil || !strings.Contains(err.Error(), "session already initialized") {
		t.Errorf("mcp-go client's second Initialize: %v, want the refusal", err)
	}
	if _, err := c.ListTools(ctx, mcp.ListToolsRequest{}); err != nil {
		t.Errorf("tools/list after the refused initialize: %v", err)
	}
}

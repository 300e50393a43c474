package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	capabilityv1 "github.com/tollgate/tollgate/proto/gen/tollgate/capability/v1"
	"github.com/tollgate/tollgate/services/platform/grpcx"
	"github.com/tollgate/tollgate/services/platform/registry"
)

// The three benchmarks run in one `go test -bench` so their figures compare
// on the same machine: docs/benchmarks/mcp-gateway.md records them.

// BenchmarkGatewayToolsCall is an authenticated tools/call of health.check
// through the gateway: bearer check (verified-token cache), per-subject rate
// limit and session lookup in Redis, mcp-go, and the capability-core call
// over gRPC (which checks the forwarded token again).
func BenchmarkGatewayToolsCall(b *testing.B) {
	f := newFleet(b)
	g := f.Gateway("RATE_LIMIT_PER_MINUTE", "1000000000", "LOG_LEVEL", "warn")
	tok := f.Token("bench", allScopes)
	sid := g.initialize(b, tok)
	body := mustJSON(b, call("tools/call", map[string]any{"name": "health.check"}))
	benchPost(b, g.URL+"/mcp", body, map[string]string{"Authorization": "Bearer " + tok, "Mcp-Session-Id": sid, "Mcp-Protocol-Version": version})
}

// BenchmarkBareMCPGoToolsCall is the same call on a bare mcp-go Streamable
// HTTP server whose tool calls the same capability-core: no token, no Redis.
// The difference to BenchmarkGatewayToolsCall is what the gateway adds.
func BenchmarkBareMCPGoToolsCall(b *testing.B) {
	f := newFleet(b)
	conn, err := grpcx.Dial(f.CoreAddr, grpcx.ClientOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	reg := loadRegistry(b)
	tool, _ := reg.Tool("health.check")
	s := server.NewMCPServer("bare", "1")
	s.AddTool(mcp.NewTool("health.check"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		out, err := tool.Capability.Invoke(ctx, conn, &capabilityv1.GetHealthRequest{})
		if err != nil {
			return nil, err
		}
		raw, err := registry.MarshalOutput(out)
		if err != nil {
			return nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{mcp.NewTextContent(string(raw))}, StructuredContent: json.RawMessage(raw)}, nil
	})
	url := serveBare(b, s)
	sid := initBare(b, url)
	benchPost(b, url, mustJSON(b, call("tools/call", map[string]any{"name": "health.check"})), map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": version})
}

// BenchmarkBareMCPGoStaticToolsCall is the floor: mcp-go answering a tool
// with a constant result, no network behind it.
func BenchmarkBareMCPGoStaticToolsCall(b *testing.B) {
	s := server.NewMCPServer("bare", "1")
	s.AddTool(mcp.NewTool("static"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{mcp.NewTextContent(`{"status":"ok"}`)}, StructuredContent: map[string]any{"status": "ok"}}, nil
	})
	url := serveBare(b, s)
	sid := initBare(b, url)
	benchPost(b, url, mustJSON(b, call("tools/call", map[string]any{"name": "static"})), map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": version})
}

func serveBare(b *testing.B, s *server.MCPServer) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: server.NewStreamableHTTPServer(s)}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/mcp"
}

func initBare(b *testing.B, url string) string {
	g := &gw{URL: url[:len(url)-len("/mcp")]}
	r := g.do(b, req{Method: "POST", Path: "/mcp", Body: call("initialize", map[string]any{
		"protocolVersion": version, "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "bench", "version": "1"}})})
	if r.Status != 200 {
		b.Fatalf("initialize bare: %d %s", r.Status, r.Body)
	}
	return r.Header.Get("Mcp-Session-Id")
}

func mustJSON(b testing.TB, v any) []byte {
	raw, err := json.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// benchPost sends the same POST b.N times over keep-alive connections and
// checks each answer is a successful tool result.
func benchPost(b *testing.B, url string, body []byte, header map[string]string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			hr, _ := http.NewRequest("POST", url, bytesReader(body))
			hr.Header.Set("Content-Type", "application/json")
			hr.Header.Set("Accept", "application/json, text/event-stream")
			for k, v := range header {
				hr.Header.Set(k, v)
			}
			res, err := client.Do(hr)
			if err != nil {
				b.Error(err)
				return
			}
			var m struct {
				Result *struct {
					IsError bool `json:"isError"`
				} `json:"result"`
			}
			err = json.NewDecoder(res.Body).Decode(&m)
			res.Body.Close()
			if err != nil || res.StatusCode != 200 || m.Result == nil || m.Result.IsError {
				b.Errorf("status %d, err %v, result %+v", res.StatusCode, err, m.Result)
				return
			}
		}
	})
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

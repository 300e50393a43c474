package gateway_test

import (
	"context"
	"github.com/tollgate/tollgate/services/platform/registry"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// mcp-go's own client, as an MCP host would use it, over both transports.
func TestMCPGoClient(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	auth := map[string]string{"Authorization": "Bearer " + f.Token("user-9", allScopes)}
	streamable, err := client.NewStreamableHttpClient(g.URL+"/mcp", transport.WithHTTPHeaders(auth))
	if err != nil {
		t.Fatal(err)
	}
	sse, err := client.NewSSEMCPClient(g.URL+"/sse", transport.WithHeaders(auth))
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*client.Client{"streamable": streamable, "sse": sse} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			defer c.Close()
			if err := c.Start(ctx); err != nil {
				t.Fatal(err)
			}
			init := mcp.InitializeRequest{}
			init.Params.ClientInfo = mcp.Implementation{Name: "mcp-go-client", Version: "1"}
			init.Params.ProtocolVersion = mcp.LATEST_LEGACY_PROTOCOL_VERSION
			res, err := c.Initialize(ctx, init)
			if err != nil {
				t.Fatal(err)
			}
			if res.ServerInfo.Name != "tollgate" || res.Instructions == "" {
				t.Errorf("initialize: %+v", res)
			}
			tools, err := c.ListTools(ctx, mcp.ListToolsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if len(tools.Tools) != len(loadRegistry(t).Tools()) {
				t.Errorf("%d tools", len(tools.Tools))
			}
			reg := loadRegistry(t)
			for _, tool := range tools.Tools {
				if rt, _ := reg.Tool(tool.Name); rt == nil || rt.Capability.Backend != registry.DefaultBackend {
					continue // the auth-server's tools: see coreTools
				}
				call := mcp.CallToolRequest{}
				call.Params.Name = tool.Name
				out, err := c.CallTool(ctx, call)
				if err != nil {
					t.Fatalf("%s: %v", tool.Name, err)
				}
				if out.IsError || out.StructuredContent == nil {
					t.Errorf("%s: %+v", tool.Name, out)
				}
			}
			rr := mcp.ReadResourceRequest{}
			rr.Params.URI = "ui://widget/profile-summary-card-v1.html"
			if _, err := c.ReadResource(ctx, rr); err != nil {
				t.Errorf("read widget: %v", err)
			}
		})
	}
}

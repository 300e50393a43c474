// Command mcpecho is the peer of the mcp-gateway benchmark: a bare mcp-go
// Streamable HTTP server, built from the module cache at the version the
// gateway uses, with one tool "echo" that answers its arguments back as
// text and structured content. No authentication, no Redis, no backend:
// what mcp-go alone costs per tools/call on this machine
// (docs/benchmarks/mcp-gateway.md).
//
// Usage: mcpecho [-addr host:port] (default $MCPECHO_ADDR, else
// 127.0.0.1:0); it prints "listening on <addr>" once it accepts connections.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/tollgate/tollgate/services/platform/app"
)

func main() {
	def := os.Getenv("MCPECHO_ADDR")
	if def == "" {
		def = "127.0.0.1:0"
	}
	addr := flag.String("addr", def, "listen address")
	flag.Parse()
	if err := run(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "mcpecho:", err)
		os.Exit(1)
	}
}

func run(addr string) error {
	s := server.NewMCPServer("mcpecho", "1", server.WithToolCapabilities(false))
	s.AddTool(mcp.NewTool("echo", mcp.WithDescription("Answers its arguments back.")),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			args := req.GetArguments()
			if args == nil {
				args = map[string]any{}
			}
			b, err := json.Marshal(args)
			if err != nil {
				return nil, err
			}
			return &mcp.CallToolResult{Content: []mcp.Content{mcp.NewTextContent(string(b))}, StructuredContent: args}, nil
		})
	ln, err := app.Listen(context.Background(), addr) // "fd:N" from the test harness too
	if err != nil {
		return err
	}
	fmt.Println("listening on", ln.Addr())
	srv := &http.Server{Handler: server.NewStreamableHTTPServer(s)}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

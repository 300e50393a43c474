package widgets

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// The browser tests' hosts call a real fleet: Redis, a key-set server that
// mints tokens, capability-core and mcp-gateway, the last two as their
// binaries built once in TestMain.

const (
	fleetResource = "http://localhost:4000/mcp"
	fleetIssuer   = "http://localhost:4000"
	mcpVersion    = "2025-11-25"
)

var binDir string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "widgets-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binDir = dir
		bins := []testharness.Binary{
			{ModuleDir: filepath.Join("..", "services", "capability-core"), Package: "./cmd/capability-core"},
			{ModuleDir: filepath.Join("..", "services", "mcp-gateway"), Package: "./cmd/mcp-gateway"},
		}
		if err := testharness.BuildBinaries(dir, bins...); err != nil {
			fmt.Fprintln(os.Stderr, "build test binaries:", err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// fleet is a running gateway with its dependencies and the tokens the test
// hosts use: "full" has every scope the tools need, "weak" only openid.
type fleet struct {
	gatewayURL string
	tokens     map[string]string

	mu       sync.Mutex
	sessions map[string]string // token label -> Mcp-Session-Id
}

func startFleet(t *testing.T) *fleet {
	t.Helper()
	redis := testharness.StartRedis(t)
	issuer := tokentest.Start(t, fleetIssuer)
	core := testharness.StartProcess(t, filepath.Join(binDir, "capability-core"), map[string]string{
		"ADMIN_ADDR": "127.0.0.1:0", "AUTH_GRPC_ADDR": issuer.Addr,
		"MCP_RESOURCE_URL": fleetResource, "ACTIONS_AUDIENCE": "http://localhost:4000/actions",
		"LOG_FORMAT": "text", "REDIS_URL": "",
	}, "GRPC_ADDR")
	coreAddr := core.Addr("GRPC_ADDR")

	gwProc := testharness.StartProcess(t, filepath.Join(binDir, "mcp-gateway"), map[string]string{
		"MCP_RESOURCE_URL": fleetResource, "PUBLIC_ISSUER_URL": fleetIssuer,
		"AUTH_GRPC_ADDR": issuer.Addr, "CORE_GRPC_ADDR": coreAddr,
		"REDIS_URL": redis.URL(), "REDIS_KEY_PREFIX": "widgets-test:", "REDIS_COMMAND_TIMEOUT": testharness.RedisCommandTimeout, "REDIS_DIAL_TIMEOUT": testharness.RedisDialTimeout,
		"LOG_FORMAT": "text", "SHUTDOWN_TIMEOUT": testharness.ShutdownTimeout, "CORE_CALL_TIMEOUT": "5s",
		// Tool names differ from the registry's ("identity_profile_card"),
		// so the cards are seen to call tools only by the names the gateway
		// hands them. The gateway's own tests cover the dotted default.
		"MCP_TOOL_NAME_STYLE": "underscore",
		// Both test hosts read a step-up from the tool result's
		// _meta["mcp/www_authenticate"] (testdata/host/gateway.js), the
		// form the gateway gives every client with tool-result.
		"SCOPE_CHALLENGE": "tool-result",
	}, "HTTP_ADDR", "ADMIN_ADDR")
	gwAddr := gwProc.Addr("HTTP_ADDR")

	mint := func(scope string) string {
		return issuer.Mint(t, tokentest.Token{
			Subject: "248289761001", Audience: fleetResource, Scope: scope, ExpiresIn: time.Hour,
			Profile: tokens.Profile{Name: "Ada Lovelace", GivenName: "Ada", FamilyName: "Lovelace",
				PreferredUsername: "ada", Email: "ada@example.com", EmailVerified: true},
		})
	}
	return &fleet{
		gatewayURL: "http://" + gwAddr,
		tokens:     map[string]string{"full": mint("openid profile email"), "weak": mint("openid")},
		sessions:   map[string]string{},
	}
}

var fleetClient = &http.Client{Timeout: 30 * time.Second}

// post sends one JSON-RPC message to /mcp and returns the response message
// (from a JSON body or an SSE stream) and the response header.
func (f *fleet) post(token, session string, msg map[string]any) (map[string]json.RawMessage, http.Header, error) {
	body, err := json.Marshal(msg)
	if err != nil {
		return nil, nil, err
	}
	req, err := http.NewRequest(http.MethodPost, f.gatewayURL+"/mcp", bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Mcp-Protocol-Version", mcpVersion)
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
	}
	resp, err := fleetClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode == http.StatusAccepted {
		return nil, resp.Header, nil // a notification
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("POST /mcp %s: HTTP %d: %s", msg["method"], resp.StatusCode, raw)
	}
	data := raw
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		data = nil
		sc := bufio.NewScanner(bytes.NewReader(raw))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), "data:"); ok && strings.Contains(line, `"id"`) {
				data = []byte(strings.TrimSpace(line))
			}
		}
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, nil, fmt.Errorf("POST /mcp %s: not JSON-RPC: %s", msg["method"], raw)
	}
	if e, ok := out["error"]; ok {
		return nil, nil, fmt.Errorf("POST /mcp %s: %s", msg["method"], e)
	}
	return out, resp.Header, nil
}

// session returns the MCP session of the token label, opening it once.
func (f *fleet) session(label string) (string, string, error) {
	token, ok := f.tokens[label]
	if !ok {
		return "", "", fmt.Errorf("no token %q", label)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if sid, ok := f.sessions[label]; ok {
		return token, sid, nil
	}
	_, h, err := f.post(token, "", map[string]any{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": map[string]any{
		"protocolVersion": mcpVersion, "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "tollgate-widget-test-host", "version": "1"},
	}})
	if err != nil {
		return "", "", err
	}
	sid := h.Get("Mcp-Session-Id")
	if sid == "" {
		return "", "", errors.New("initialize: no Mcp-Session-Id")
	}
	if _, _, err := f.post(token, sid, map[string]any{"jsonrpc": "2.0", "method": "notifications/initialized"}); err != nil {
		return "", "", err
	}
	f.sessions[label] = sid
	return token, sid, nil
}

// callTool sends tools/call with the token label and returns the raw
// CallToolResult.
func (f *fleet) callTool(label, name string, args json.RawMessage) (json.RawMessage, error) {
	token, sid, err := f.session(label)
	if err != nil {
		return nil, err
	}
	if len(args) == 0 || string(args) == "null" {
		args = json.RawMessage("{}")
	}
	out, _, err := f.post(token, sid, map[string]any{"jsonrpc": "2.0", "id": 2, "method": "tools/call",
		"params": map[string]any{"name": name, "arguments": args}})
	if err != nil {
		return nil, err
	}
	return out["result"], nil
}

// listTools returns the listed tools by name, with their _meta.
func (f *fleet) listTools(label string) (map[string]map[string]any, error) {
	token, sid, err := f.session(label)
	if err != nil {
		return nil, err
	}
	out, _, err := f.post(token, sid, map[string]any{"jsonrpc": "2.0", "id": 3, "method": "tools/list"})
	if err != nil {
		return nil, err
	}
	var list struct {
		Tools []struct {
			Name string         `json:"name"`
			Meta map[string]any `json:"_meta"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(out["result"], &list); err != nil {
		return nil, err
	}
	byName := map[string]map[string]any{}
	for _, t := range list.Tools {
		byName[t.Name] = t.Meta
	}
	return byName, nil
}

// hostCall is POST /host/call on the test hosts' origin: the host page's
// way to reach the MCP server, as ChatGPT's or an MCP client's backend.
func (f *fleet) hostCall(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Token     string          `json:"token"`
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&in); err != nil || in.Name == "" {
		http.Error(w, "want {token, name, arguments}", http.StatusBadRequest)
		return
	}
	res, err := f.callTool(in.Token, in.Name, in.Arguments)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(res)
}

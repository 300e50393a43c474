package gateway_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/mcp-gateway/internal/gateway"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

const (
	// resource is the canonical MCP resource URL of the test fleet: the
	// audience of its tokens. The gateways listen on 127.0.0.1 ports.
	resource        = "http://localhost:4000/mcp"
	actionsAudience = "http://localhost:4000/actions"
	issuerURL       = "http://localhost:4000"
	allowedOrigin   = "https://chatgpt.example"
	metadataURL     = "http://localhost:4000/.well-known/oauth-protected-resource/mcp"
	sseResource     = "http://localhost:4000/sse"
	sseMetadataURL  = "http://localhost:4000/.well-known/oauth-protected-resource/sse"
	// allScopes is what the gateway's challenges ask for: openid and the
	// scopes of every tool not annotated destructive (askScopes).
	allScopes = "openid profile email"
	// supportedScopes is every scope a tool requires, a destructive
	// tool's included: the protected resource metadata's
	// scopes_supported. capability-core has no destructive tool today.
	supportedScopes = "openid profile email"
)

// binDir holds capability-core and mcp-gateway binaries built once per run.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mcp-gateway-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	// capability-core runs as its real binary; the gateway runs in-process
	// (with -race) in most tests and as a binary where a test kills it.
	gatewayBinary := testharness.Binary{ModuleDir: filepath.Join("..", ".."), Package: "./cmd/mcp-gateway"}
	if err := testharness.BuildBinaries(dir, testharness.CapabilityCore, gatewayBinary); err != nil {
		fmt.Fprintln(os.Stderr, "build test binaries:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fleet is what a gateway needs: Redis, a key-set server that mints tokens
// and a real capability-core.
type fleet struct {
	t        testing.TB
	Redis    *testharness.Redis
	Issuer   *tokentest.Issuer
	CoreAddr string
	// CoreAdmin is capability-core's admin listener (http://host:port).
	CoreAdmin string
	core      *testharness.Process
	// coreEnv is added to capability-core's environment (set before StartCore).
	coreEnv map[string]string
}

func newFleet(t testing.TB) *fleet {
	t.Helper()
	f := &fleet{t: t, Redis: testharness.StartRedis(t), Issuer: tokentest.Start(t, issuerURL)}
	f.StartCore()
	return f
}

// StartCore runs capability-core on a free port (again, after StopCore)
// and returns once it serves (waitCore).
func (f *fleet) StartCore() {
	f.t.Helper()
	if f.core != nil {
		f.core.Start()
		f.waitCore()
		return
	}
	env := map[string]string{
		"ADMIN_ADDR": "127.0.0.1:0", "AUTH_GRPC_ADDR": f.Issuer.Addr,
		"MCP_RESOURCE_URL": resource, "ACTIONS_AUDIENCE": actionsAudience, "LOG_FORMAT": "text", "REDIS_URL": "",
	}
	for k, v := range f.coreEnv {
		env[k] = v
	}
	f.core = testharness.StartProcess(f.t, filepath.Join(binDir, "capability-core"), env, "GRPC_ADDR", "ADMIN_ADDR")
	f.CoreAddr, f.CoreAdmin = f.core.Addr("GRPC_ADDR"), "http://"+f.core.Addr("ADMIN_ADDR")
	f.waitCore()
}

// waitCore waits until capability-core answers on its admin listener
// (/healthz/live), which it serves with its gRPC server. The process is
// started, not ready, when StartProcess returns: a gateway started next
// asks it for its services at once, with a 2 s bound
// (registry.DefaultDiscoveryTimeout), and a core still starting on a
// loaded machine missed it — the gateway then served without core's
// tools until a retry, its challenges asking for "openid" alone
// (TestBearerRefusals) and tools/list without them
// (TestBackendToolsFollowedInALiveSession). The bound is on attempts,
// each waiting up to httpClient's 30 s, not a speed.
func (f *fleet) waitCore() {
	f.t.Helper()
	var last error
	for range 20 {
		res, err := httpClient.Get(f.CoreAdmin + "/healthz/live")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %d", res.StatusCode)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	f.t.Fatalf("capability-core at %s did not come up (20 attempts): %v", f.CoreAdmin, last)
}

// StopCore kills capability-core.
func (f *fleet) StopCore() { f.core.Stop() }

// Env is the gateway environment for this fleet.
func (f *fleet) Env(extra ...string) map[string]string {
	env := map[string]string{
		"HTTP_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0",
		"MCP_RESOURCE_URL": resource, "PUBLIC_ISSUER_URL": issuerURL,
		"AUTH_GRPC_ADDR": f.Issuer.Addr, "CORE_GRPC_ADDR": f.CoreAddr,
		"REDIS_URL": f.Redis.URL(), "REDIS_KEY_PREFIX": "test:", "REDIS_COMMAND_TIMEOUT": testharness.RedisCommandTimeout, "REDIS_DIAL_TIMEOUT": testharness.RedisDialTimeout,
		"ALLOWED_ORIGINS": allowedOrigin, "LOG_FORMAT": "text", "LOG_LEVEL": "debug",
		"SHUTDOWN_TIMEOUT": testharness.ShutdownTimeout, "CORE_CALL_TIMEOUT": "2s",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	return env
}

// Token mints an access token for the MCP resource.
func (f *fleet) Token(sub, scope string) string {
	return f.Issuer.Mint(f.t, tokentest.Token{
		Subject: sub, Audience: resource, Scope: scope,
		Profile: tokens.Profile{Name: "Ada Lovelace", GivenName: "Ada", FamilyName: "Lovelace",
			PreferredUsername: "ada", Email: "ada@example.com", EmailVerified: true},
	})
}

// gw is one running gateway.
type gw struct {
	URL   string // http://127.0.0.1:port
	Admin string
	Logs  fmt.Stringer // what the gateway logged (in-process gateways)
	stop  func()
}

// Gateway runs the gateway in-process until the test ends (or Stop).
func (f *fleet) Gateway(extra ...string) *gw {
	f.t.Helper()
	svc := testharness.RunService(f.t, gateway.Run, f.Env(extra...))
	return &gw{URL: "http://" + svc.Addr("http"), Admin: "http://" + svc.Addr("admin"), Logs: svc.Logs, stop: func() { _ = svc.Stop() }}
}

// GatewayProcess runs the gateway binary, so that a test can kill it.
func (f *fleet) GatewayProcess(extra ...string) (*gw, *testharness.Process) {
	f.t.Helper()
	p := testharness.StartProcess(f.t, filepath.Join(binDir, "mcp-gateway"), f.Env(extra...), "HTTP_ADDR", "ADMIN_ADDR")
	return &gw{URL: "http://" + p.Addr("HTTP_ADDR"), Admin: "http://" + p.Addr("ADMIN_ADDR"), stop: p.Stop}, p
}

// Stop shuts the gateway down.
func (g *gw) Stop() { g.stop() }

var httpClient = &http.Client{Timeout: 30 * time.Second}

// req is one raw HTTP request.
type req struct {
	Method  string
	Path    string
	Token   string
	Session string
	Version string
	Header  map[string]string
	Body    any
}

// resp is a response with its JSON-RPC messages (from a JSON body or an
// SSE stream).
type resp struct {
	Status int
	Header http.Header
	Body   []byte
	Events []sseEvent
}

type sseEvent struct {
	ID   string
	Data string
}

// rpc decodes the first JSON-RPC message (JSON body or last SSE event with an id).
func (r *resp) rpc(t testing.TB) rpcMessage {
	t.Helper()
	var m rpcMessage
	data := r.Body
	if len(r.Events) > 0 {
		for _, e := range r.Events {
			var probe rpcMessage
			if json.Unmarshal([]byte(e.Data), &probe) == nil && (probe.Result != nil || probe.Error != nil) {
				data = []byte(e.Data)
			}
		}
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("not a JSON-RPC message (status %d): %s", r.Status, r.Body)
	}
	return m
}

type rpcMessage struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Params json.RawMessage `json:"params"`
}

func (g *gw) do(t testing.TB, r req) *resp {
	t.Helper()
	var body io.Reader
	if r.Body != nil {
		switch b := r.Body.(type) {
		case string:
			body = strings.NewReader(b)
		default:
			raw, err := json.Marshal(b)
			if err != nil {
				t.Fatal(err)
			}
			body = bytes.NewReader(raw)
		}
	}
	hr, err := http.NewRequest(r.Method, g.URL+r.Path, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.Body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	hr.Header.Set("Accept", "application/json, text/event-stream")
	if r.Token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.Token)
	}
	if r.Session != "" {
		hr.Header.Set("Mcp-Session-Id", r.Session)
	}
	if r.Version != "" {
		hr.Header.Set("Mcp-Protocol-Version", r.Version)
	}
	for k, v := range r.Header {
		hr.Header.Set(k, v)
	}
	res, err := httpClient.Do(hr)
	if err != nil {
		t.Fatalf("%s %s: %v", r.Method, r.Path, err)
	}
	defer res.Body.Close()
	out := &resp{Status: res.StatusCode, Header: res.Header}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		out.Events = readEvents(t, res.Body, -1)
		return out
	}
	out.Body, _ = io.ReadAll(res.Body)
	return out
}

// readEvents reads SSE events until EOF or n events.
func readEvents(t testing.TB, r io.Reader, n int) []sseEvent {
	t.Helper()
	var events []sseEvent
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var cur sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.Data != "" {
				events = append(events, cur)
				if n > 0 && len(events) == n {
					return events
				}
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "id:"):
			cur.ID = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
		case strings.HasPrefix(line, "data:"):
			cur.Data += strings.TrimSpace(strings.TrimPrefix(line, "data:"))
		}
	}
	return events
}

var rpcID int64
var rpcMu sync.Mutex

func call(method string, params any) map[string]any {
	rpcMu.Lock()
	rpcID++
	id := rpcID
	rpcMu.Unlock()
	m := map[string]any{"jsonrpc": "2.0", "id": id, "method": method}
	if params != nil {
		m["params"] = params
	}
	return m
}

const version = "2025-11-25"

// initialize20250326 opens a session of protocol version 2025-03-26 (the
// era of JSON-RPC batches) on g, without its initialized notification, and
// returns its id; it fails the test unless g answers 200 with a session id
// and negotiates 2025-03-26.
func (g *gw) initialize20250326(t testing.TB, token string) string {
	t.Helper()
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: token, Body: call("initialize", map[string]any{
		"protocolVersion": "2025-03-26", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "old", "version": "1"}})})
	id := r.Header.Get("Mcp-Session-Id")
	if r.Status != 200 || id == "" || !strings.Contains(string(r.rpc(t).Result), `"protocolVersion":"2025-03-26"`) {
		t.Fatalf("2025-03-26 initialize: %d %s", r.Status, r.Body)
	}
	return id
}

// initialize opens a session on g and returns its id.
func (g *gw) initialize(t testing.TB, token string) string {
	t.Helper()
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: token, Body: call("initialize", map[string]any{
		"protocolVersion": version,
		"capabilities":    map[string]any{},
		"clientInfo":      map[string]any{"name": "tollgate-test", "version": "1.0"},
	})})
	if r.Status != 200 {
		t.Fatalf("initialize: %d %s", r.Status, r.Body)
	}
	id := r.Header.Get("Mcp-Session-Id")
	if len(id) < 40 {
		t.Fatalf("initialize: session id %q is not a long random value", id)
	}
	n := g.do(t, req{Method: "POST", Path: "/mcp", Token: token, Session: id, Version: version,
		Body: map[string]any{"jsonrpc": "2.0", "method": "notifications/initialized"}})
	if n.Status != 202 {
		t.Fatalf("initialized notification: %d %s", n.Status, n.Body)
	}
	return id
}

// rpc sends one request in a session and returns the result (failing on an error).
func (g *gw) rpc(t testing.TB, token, session, method string, params any, out any) {
	t.Helper()
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: token, Session: session, Version: version, Body: call(method, params)})
	if r.Status != 200 {
		t.Fatalf("%s: HTTP %d %s", method, r.Status, r.Body)
	}
	m := r.rpc(t)
	if m.Error != nil {
		t.Fatalf("%s: JSON-RPC error %d %s", method, m.Error.Code, m.Error.Message)
	}
	if out != nil {
		if err := json.Unmarshal(m.Result, out); err != nil {
			t.Fatalf("%s: %v in %s", method, err, m.Result)
		}
	}
}

// toolResult is the part of a CallToolResult the tests read.
type toolResult struct {
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
	StructuredContent map[string]any `json:"structuredContent"`
	IsError           bool           `json:"isError"`
	Meta              map[string]any `json:"_meta"`
}

// metric returns the value of the series whose line starts with prefix.
func (g *gw) metric(t testing.TB, prefix string) float64 {
	t.Helper()
	res, err := httpClient.Get(g.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, prefix+" ") {
			v, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, prefix)), 64)
			return v
		}
	}
	return 0
}

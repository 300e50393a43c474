// Package byobackend runs the fleet with the example backend
// (services/example-backend) beside it, as EXAMPLE_BACKEND=1 make dev does,
// and checks issue 16's promise from the outside: a backend listed in
// CAPABILITY_BACKENDS, unknown to the connectors' and the auth-server's
// binaries, becomes MCP tools, Actions operations and scopes; stopped, its
// tools fail cleanly; restarted, they work again.
package byobackend

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/e2e/harness"
	"github.com/tollgate/tollgate/services/platform/devfleet"
)

var fleet *harness.Fleet

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	// A 1 s refresh, so a restarted backend is found again within seconds.
	f, err := harness.StartWith(ctx, harness.Options{ExampleBackend: true, Env: map[string]string{"CAPABILITY_REFRESH_INTERVAL": "1s"}})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "byobackend: the fleet did not start:", err)
		os.Exit(1)
	}
	fleet = f
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "byobackend: fleet log:\n%s\n", f.Logs)
	}
	f.Stop()
	os.Exit(code)
}

// eventually retries check every 200 ms until it returns nil, failing
// with its last error after limit (a bound on a broken fleet, not a
// timing assertion).
func eventually(t *testing.T, limit time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %s: %v", what, limit, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func do(method, url, token string, body io.Reader, header ...string) (int, []byte, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func signIn(t *testing.T, resource, scope string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tok, err := devfleet.SignIn(ctx, devfleet.SignInOptions{Creds: fleet.Creds, ClientID: "local-test", Resource: resource, Scope: scope})
	if err != nil {
		t.Fatalf("sign-in for %q on %s: %v", scope, resource, err)
	}
	for _, s := range strings.Fields(scope) {
		if !slices.Contains(strings.Fields(tok.Scope), s) {
			t.Fatalf("token scope %q lacks %s", tok.Scope, s)
		}
	}
	return tok.AccessToken
}

// mcpSession is an initialized session on /mcp.
type mcpSession struct {
	token, id string
	next      int
}

func openMCP(t *testing.T, token string) *mcpSession {
	t.Helper()
	const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"byobackend","version":"1"}}}`
	req, _ := http.NewRequest("POST", fleet.Origin+"/mcp", strings.NewReader(initialize))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s := &mcpSession{token: token, id: resp.Header.Get("Mcp-Session-Id"), next: 1}
	if resp.StatusCode != http.StatusOK || s.id == "" {
		t.Fatalf("initialize: %d", resp.StatusCode)
	}
	if code, body, err := do("POST", fleet.Origin+"/mcp", token, strings.NewReader(`{"jsonrpc":"2.0","method":"notifications/initialized"}`), s.headers()...); err != nil || code != http.StatusAccepted {
		t.Fatalf("initialized: %d %s %v", code, body, err)
	}
	return s
}

func (s *mcpSession) headers() []string {
	return []string{"Accept", "application/json, text/event-stream", "Content-Type", "application/json",
		"Mcp-Session-Id", s.id, "MCP-Protocol-Version", "2025-11-25"}
}

// request sends one JSON-RPC request and returns its result.
func (s *mcpSession) request(method string, params any) (json.RawMessage, error) {
	s.next++
	msg, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": s.next, "method": method, "params": params})
	code, raw, err := do("POST", fleet.Origin+"/mcp", s.token, bytes.NewReader(msg), s.headers()...)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d: %s", method, code, raw)
	}
	data := raw
	if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("event:")) || bytes.HasPrefix(bytes.TrimSpace(raw), []byte("data:")) {
		sc := bufio.NewScanner(bytes.NewReader(raw))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), "data:"); ok && strings.Contains(line, `"id"`) {
				data = []byte(strings.TrimSpace(line))
			}
		}
	}
	var out struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("%s: not JSON-RPC: %s", method, raw)
	}
	if out.Error != nil {
		return nil, fmt.Errorf("%s: %d %s", method, out.Error.Code, out.Error.Message)
	}
	return out.Result, nil
}

type toolResult struct {
	IsError           bool            `json:"isError"`
	StructuredContent json.RawMessage `json:"structuredContent"`
	Content           []struct {
		Text string `json:"text"`
	} `json:"content"`
}

func (r toolResult) text() string {
	var parts []string
	for _, c := range r.Content {
		parts = append(parts, c.Text)
	}
	return strings.Join(parts, " ")
}

func (s *mcpSession) callTool(name string, args map[string]any) (toolResult, error) {
	var r toolResult
	raw, err := s.request("tools/call", map[string]any{"name": name, "arguments": args})
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal(raw, &r)
}

type tool struct {
	Name        string `json:"name"`
	Annotations struct {
		ReadOnly    *bool `json:"readOnlyHint"`
		Destructive *bool `json:"destructiveHint"`
		Idempotent  *bool `json:"idempotentHint"`
	} `json:"annotations"`
}

func (s *mcpSession) tools() (map[string]tool, error) {
	raw, err := s.request("tools/list", map[string]any{})
	if err != nil {
		return nil, err
	}
	var out struct{ Tools []tool }
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	m := map[string]tool{}
	for _, t := range out.Tools {
		m[t.Name] = t
	}
	return m, nil
}

// TestTheConnectorsDoNotLinkTheExample: the binaries that expose the
// example's capabilities were built without it — the example backend's
// module is not among their dependencies.
func TestTheConnectorsDoNotLinkTheExample(t *testing.T) {
	for _, name := range []string{"mcp-gateway", "actions-api", "auth-server"} {
		out, err := exec.Command("go", "version", "-m", filepath.Join(fleet.VarDir, "bin", name)).CombinedOutput()
		if err != nil {
			t.Fatalf("go version -m %s: %v\n%s", name, err, out)
		}
		if strings.Contains(string(out), "services/example-backend") || strings.Contains(string(out), "example/notes") {
			t.Errorf("%s links the example backend:\n%s", name, out)
		}
	}
}

// TestExampleBackendIsListed: its operations join the OpenAPI document and
// its tools tools/list, with no change to the connectors.
func TestExampleBackendIsListed(t *testing.T) {
	// Its operations join the OpenAPI document, each consequential write
	// marked so.
	eventually(t, 60*time.Second, "the example's operations in /actions/openapi.json", func() error {
		code, body, err := do("GET", fleet.Origin+"/actions/openapi.json", "", nil)
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("%d %v", code, err)
		}
		var doc struct {
			Paths map[string]map[string]struct {
				OperationID   string `json:"operationId"`
				Consequential *bool  `json:"x-openai-isConsequential"`
			} `json:"paths"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			return err
		}
		want := map[string]bool{"get /actions/notes listNotes": false, "post /actions/notes addNote": true, "delete /actions/notes/{note_id} deleteNote": true}
		for key, consequential := range want {
			f := strings.Fields(key)
			op, ok := doc.Paths[f[1]][f[0]]
			if !ok || op.OperationID != f[2] {
				return fmt.Errorf("no %s", key)
			}
			if op.Consequential == nil || *op.Consequential != consequential {
				return fmt.Errorf("%s: x-openai-isConsequential = %v, want %t", key, op.Consequential, consequential)
			}
		}
		return nil
	})

	// Its tools reach tools/list with their hints, beside capability-core's
	// (listing needs no notes scope).
	s := openMCP(t, signIn(t, "mcp", "openid profile email"))
	var tools map[string]tool
	eventually(t, 30*time.Second, "the example's tools in tools/list", func() error {
		var err error
		if tools, err = s.tools(); err != nil {
			return err
		}
		if _, ok := tools["notes.list"]; !ok {
			return fmt.Errorf("no notes.list among %d tools", len(tools))
		}
		return nil
	})
	for name, hints := range map[string][3]bool{
		"notes.list": {true, false, true}, "notes.add": {false, false, false}, "notes.delete": {false, true, true},
	} {
		tl, ok := tools[name]
		a := tl.Annotations
		if !ok || a.ReadOnly == nil || a.Destructive == nil || a.Idempotent == nil ||
			[3]bool{*a.ReadOnly, *a.Destructive, *a.Idempotent} != hints {
			t.Errorf("tool %s: %+v (listed %t), want readOnly/destructive/idempotent %v", name, tl, ok, hints)
		}
	}
	if _, ok := tools["identity.profile"]; !ok {
		t.Error("capability-core's tools are gone beside the example's")
	}
}

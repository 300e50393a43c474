package gateway_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
)

// A legacy session's tool results waiting for its GET /sse stream are
// bounded by bytes (legacyPendingResultBytes), not only by count: a
// result is the backend's, up to 4 MiB whatever its request's size, so 32
// waiting answers could hold ~128 MiB. Here ten calls, each a 1.5 MB reply
// of a few bytes' request, are made while the client does not read its
// stream: past the bound a result is dropped and its call answered with a
// JSON-RPC error carrying its id; every call is answered, and the first
// result — none waited — gets through whole.
func TestLegacyResultsAreBoundedByBytes(t *testing.T) {
	f := newFleet(t)
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	g := f.Gateway("CAPABILITY_BACKENDS", "capability-core="+f.CoreAddr+",notes="+notes.Addr, "RATE_LIMIT_PER_MINUTE", "100000", "CORE_CALL_TIMEOUT", "60s")
	tok := f.Token("user-1", "openid notes.read")

	hr, _ := http.NewRequest("GET", g.URL+"/sse", nil)
	hr.Header.Set("Accept", "text/event-stream")
	hr.Header.Set("Authorization", "Bearer "+tok)
	res, err := (&http.Client{}).Do(hr)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET /sse: %v %v", err, res)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 16<<20), 16<<20)
	next := func() string { // the next event's data, the server's pings skipped
		t.Helper()
		data := ""
		for sc.Scan() {
			line := sc.Text()
			if line == "" && data != "" {
				if strings.Contains(data, `"method":"ping"`) {
					data = ""
					continue
				}
				return data
			}
			if d, ok := strings.CutPrefix(line, "data:"); ok {
				data += strings.TrimSpace(d)
			}
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return ""
	}
	path := next()
	if !strings.HasPrefix(path, "/messages?sessionId=") {
		t.Fatalf("endpoint event %q", path)
	}
	post := func(body any) *resp {
		t.Helper()
		return g.do(t, req{Method: "POST", Path: path, Token: tok, Body: body})
	}
	if r := post(map[string]any{"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": map[string]any{
		"protocolVersion": "2024-11-05", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "legacy", "version": "1"}}}); r.Status != 202 {
		t.Fatalf("initialize: %d %s", r.Status, r.Body)
	}
	if d := next(); !strings.Contains(d, `"id":"init"`) {
		t.Fatalf("initialize answer: %.300s", d)
	}
	if r := post(map[string]any{"jsonrpc": "2.0", "method": "notifications/initialized"}); r.Status != 202 {
		t.Fatalf("initialized: %d", r.Status)
	}

	const calls = 10
	for i := range calls {
		if r := post(map[string]any{"jsonrpc": "2.0", "id": fmt.Sprint("c-", i), "method": "tools/call", "params": map[string]any{
			"name": "notes.list", "arguments": map[string]any{"text": registrytest.BigReplyText(1_500_000)}}}); r.Status != 202 {
			t.Fatalf("call %d: %d %s", i, r.Status, r.Body)
		}
	}
	// Every call reaches the backend and returns while the stream is not read.
	deadline := time.Now().Add(30 * time.Second)
	for len(notes.Calls()) < calls && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)

	whole, dropped := 0, 0
	for range calls {
		var m struct {
			ID     string          `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		d := next()
		if err := json.Unmarshal([]byte(d), &m); err != nil || !strings.HasPrefix(m.ID, "c-") {
			t.Fatalf("answer: %v %.300s", err, d)
		}
		switch {
		case m.Error != nil && strings.Contains(m.Error.Message, "was dropped") && strings.Contains(m.Error.Message, "4194304 bytes") && len(d) < 1024:
			dropped++
		case m.Result != nil && len(d) > 1_500_000:
			whole++
		default:
			t.Errorf("answer to %s: %.300s", m.ID, d)
		}
	}
	if dropped == 0 || whole == 0 {
		t.Errorf("%d results whole, %d dropped: want both (the results waiting are bounded by bytes, and one always goes)", whole, dropped)
	}
	// The session carries on: a call made now, with nothing waiting, gets
	// its whole result.
	if r := post(map[string]any{"jsonrpc": "2.0", "id": "after", "method": "tools/call", "params": map[string]any{
		"name": "notes.list", "arguments": map[string]any{"text": registrytest.BigReplyText(1_500_000)}}}); r.Status != 202 {
		t.Fatalf("call after: %d %s", r.Status, r.Body)
	}
	if d := next(); !strings.Contains(d, `"id":"after"`) || !strings.Contains(d, `"result"`) || len(d) < 1_500_000 {
		t.Errorf("call after the backlog drained: %.300s", d)
	}
}

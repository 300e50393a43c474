package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// TestStatelessNotificationsAccepted: in the stateless era (2026-07-28)
// only requests carry the _meta protocol fields (RequestMetaObject): a
// client notification without them is accepted (202), not 400 -32602
// "missing or invalid _meta field", which made the Go SDK (v1.8.0) end its
// connection on any notifications/cancelled (go-sdk #1212). A stateless
// notification is never tied to a request: over Streamable HTTP closing the
// answer's stream is the cancellation (MCP 2026-07-28, Cancellation,
// "Transport-Specific Cancellation") — so a notifications/cancelled, from
// the caller or from another user naming the same id, does not end a call
// in flight, and the caller closing its stream does.
func TestStatelessNotificationsAccepted(t *testing.T) {
	f := newFleet(t)
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	g := f.Gateway("CAPABILITY_BACKENDS", "capability-core="+f.CoreAddr+",notes="+notes.Addr, "CORE_CALL_TIMEOUT", "1m")
	tok := f.Token("user-1", "openid notes.read")
	other := f.Token("user-2", "openid notes.read")
	const v = "2026-07-28"
	meta := `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"go-sdk","version":"1.8.0"}}`
	notifyWith := func(token, method, body string) *resp {
		t.Helper()
		h := map[string]string{}
		if method != "" {
			h["Mcp-Method"] = method
		}
		return g.do(t, req{Method: "POST", Path: "/mcp", Token: token, Version: v, Header: h, Body: body})
	}
	notify := func(token, body string) *resp {
		t.Helper()
		return notifyWith(token, "notifications/cancelled", body)
	}
	for _, body := range []string{
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3,"reason":"user"}}`,
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3,` + meta + `}}`,
	} {
		if r := notify(tok, body); r.Status != http.StatusAccepted || len(r.Body) != 0 {
			t.Errorf("%s: %d %s, want 202 and no body", body, r.Status, r.Body)
		}
	}
	listChanged := `{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}`
	if r := notifyWith(tok, "notifications/roots/list_changed", listChanged); r.Status != http.StatusAccepted || len(r.Body) != 0 {
		t.Errorf("%s: %d %s, want 202 and no body", listChanged, r.Status, r.Body)
	}
	// SEP-2243: Mcp-Method is required on every POST and must be the
	// body's method — a notification's too, refused as mcp-go refuses a
	// request's (400 -32020, no id); a long header value is not repeated.
	cancelled := `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}`
	for _, c := range []struct{ header, want string }{
		{"", "header mismatch: Mcp-Method: missing required header"},
		{"tools/call", `header mismatch: Mcp-Method: header value "tools/call" does not match body value "notifications/cancelled"`},
		{"notifications/roots/list_changed", `header mismatch: Mcp-Method: header value "notifications/roots/list_changed" does not match body value "notifications/cancelled"`},
		{strings.Repeat("x", 20_000), `header mismatch: Mcp-Method: header value (20000 bytes; no MCP method is longer than 256) does not match body value "notifications/cancelled"`},
	} {
		r := notifyWith(tok, c.header, cancelled)
		if r.Status != http.StatusBadRequest {
			t.Errorf("notification with Mcp-Method %.40q: %d %.300s, want 400 -32020", c.header, r.Status, r.Body)
			continue
		}
		if m := r.rpc(t); m.Error == nil || m.Error.Code != -32020 || m.Error.Message != c.want || len(m.ID) != 0 && string(m.ID) != "null" {
			t.Errorf("notification with Mcp-Method %.40q: %d %.300s, want 400 -32020 %q without an id", c.header, r.Status, r.Body, c.want)
		}
		if len(r.Body) > 1024 {
			t.Errorf("notification with Mcp-Method %.40q: the answer is %d bytes", c.header, len(r.Body))
		}
	}

	canceledLogs := func() int {
		return strings.Count(g.Logs.String(), `tool=notes.list backend=notes grpc_code=Canceled`)
	}
	// held starts a stateless notes.list of id, on ctx, that the backend
	// holds until release; answered gets what the call was answered.
	type answer struct {
		status int
		header http.Header
		body   []byte
		err    error
	}
	held := func(ctx context.Context, id string) (release func(), answered <-chan answer) {
		t.Helper()
		entered, hold := notes.Hold()
		var once sync.Once
		release = func() { once.Do(hold) }
		t.Cleanup(release)
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, g.URL+"/mcp", strings.NewReader(
			`{"jsonrpc":"2.0","id":`+id+`,"method":"tools/call","params":{"name":"notes.list","arguments":{"text":"held"},`+meta+`}}`))
		if err != nil {
			t.Fatal(err)
		}
		for k, val := range map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
			"Authorization": "Bearer " + tok, "Mcp-Protocol-Version": v, "Mcp-Method": "tools/call", "Mcp-Name": "notes.list"} {
			hr.Header.Set(k, val)
		}
		ch := make(chan answer, 1)
		go func() {
			res, err := (&http.Client{}).Do(hr)
			if err != nil {
				ch <- answer{err: err}
				return
			}
			defer res.Body.Close()
			b, err := io.ReadAll(res.Body)
			ch <- answer{status: res.StatusCode, header: res.Header, body: b, err: err}
		}()
		select {
		case <-entered:
		case a := <-ch:
			t.Fatalf("call %s answered before the backend held it: %d %s %v", id, a.status, a.body, a.err)
		case <-time.After(30 * time.Second):
			t.Fatalf("call %s did not reach the backend within 30s", id)
		}
		return release, ch
	}
	wait := func(answered <-chan answer) answer {
		t.Helper()
		select {
		case a := <-answered:
			return a
		case <-time.After(30 * time.Second):
			t.Fatal("the call was not answered within 30s")
			return answer{}
		}
	}

	// Another user's cancellation naming the id of a call in flight (with
	// the request _meta, as mcp-go's would be honoured) and the caller's
	// own: neither ends the call. Read after a positive signal: the call,
	// released once both were accepted, is answered with its result (a
	// cancelled call ends with its stream, or an error, before the release).
	release, answered := held(t.Context(), "77")
	for _, who := range []struct{ name, token string }{{"user-2", other}, {"the caller", tok}} {
		body := `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":77,` + meta + `}}`
		if r := notify(who.token, body); r.Status != http.StatusAccepted {
			t.Errorf("%s's notifications/cancelled: %d %s", who.name, r.Status, r.Body)
		}
	}
	release()
	a := wait(answered)
	if a.err != nil {
		t.Fatalf("the call after the notifications/cancelled: %v", a.err)
	}
	r := &resp{Status: a.status, Header: a.header, Body: a.body}
	if strings.HasPrefix(a.header.Get("Content-Type"), "text/event-stream") {
		r.Events = readEvents(t, bytes.NewReader(a.body), -1)
	}
	var res toolResult
	if m := r.rpc(t); a.status != http.StatusOK || m.Error != nil || string(m.ID) != "77" || json.Unmarshal(m.Result, &res) != nil ||
		res.IsError || !strings.Contains(string(m.Result), "held") {
		t.Fatalf("the call after the notifications/cancelled: %d %s, want its result: a stateless notifications/cancelled ended a call in flight", a.status, a.body)
	}
	if n := canceledLogs(); n != 0 {
		t.Fatalf("a stateless notifications/cancelled ended a call in flight (%d cancelled gRPC calls logged)", n)
	}

	// The caller closes its stream: that is the cancellation.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, answered = held(ctx, "78")
	cancel()
	if a := wait(answered); a.err == nil {
		t.Errorf("the abandoned call was answered (%d %s)", a.status, a.body)
	}
	testharness.Eventually(t, 30*time.Second, "the abandoned call's gRPC call cancelled", func() (bool, string) {
		return canceledLogs() == 1, g.Logs.String()
	})
}

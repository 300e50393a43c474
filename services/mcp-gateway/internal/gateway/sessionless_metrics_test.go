package gateway_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// A request without a session is counted by its outcome, as a request in
// a session is: in tollgate_mcp_requests_total by its result (the status
// answered, or the refusal's name) and in
// tollgate_mcp_sessionless_requests_total by the status answered — its
// refusals (a version not served, a method that needs a session, the rate
// limit) as much as its answers. It was counted
// tollgate_mcp_requests_total{result="sessionless"} before it was served,
// whatever then came of it.
func TestSessionlessRequestsAreCountedByOutcome(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("RATE_LIMIT_PER_MINUTE", "12")
	tok := f.Token("user-1", allScopes)
	post := func(version string, body any) *resp {
		return g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: version, Body: body})
	}
	if r := post(version, call("tools/call", map[string]any{"name": "health.check", "arguments": map[string]any{}})); r.Status != http.StatusOK {
		t.Fatalf("tools/call: %d %s", r.Status, r.Body)
	}
	if r := post(version, call("tools/call", map[string]any{"name": "health.check", "arguments": "none"})); r.Status != http.StatusOK || r.rpc(t).Error == nil {
		t.Fatalf("tools/call with arguments that are no object: %d %s, want 200 and a JSON-RPC error", r.Status, r.Body)
	}
	if r := post(version, map[string]any{"jsonrpc": "2.0", "method": "notifications/initialized"}); r.Status != http.StatusAccepted {
		t.Fatalf("notification: %d %s", r.Status, r.Body)
	}
	if r := post(version, `{"jsonrpc":"2.0","id":7,"method":"logging/setLevel","params":{"level":"debug"}}`); r.Status != http.StatusBadRequest {
		t.Fatalf("logging/setLevel: %d %s", r.Status, r.Body)
	}
	if r := post("2024-11-05", call("tools/list", nil)); r.Status != http.StatusBadRequest {
		t.Fatalf("tools/list at 2024-11-05: %d %s", r.Status, r.Body)
	}
	limited := 0
	for i := 0; i < 30 && limited == 0; i++ {
		switch r := post(version, call("ping", nil)); r.Status {
		case http.StatusOK:
		case http.StatusTooManyRequests:
			limited++
		default:
			t.Fatalf("ping %d: %d %s", i, r.Status, r.Body)
		}
	}
	if limited == 0 {
		t.Fatal("30 pings at RATE_LIMIT_PER_MINUTE=12 were never refused")
	}
	// A session's requests are not counted without a session.
	other := f.Token("user-2", allScopes)
	sid := g.initialize(t, other)
	toolCall(t, g, other, sid, http.StatusOK)

	for series, want := range map[string]float64{
		`tollgate_mcp_sessionless_requests_total{code="200",method="tools/call"}`:                                     2,
		`tollgate_mcp_sessionless_requests_total{code="202",method="notifications/initialized"}`:                      1,
		`tollgate_mcp_sessionless_requests_total{code="400",method="logging/setLevel"}`:                               1,
		`tollgate_mcp_sessionless_requests_total{code="400",method="tools/list"}`:                                     1,
		`tollgate_mcp_sessionless_requests_total{code="429",method="ping"}`:                                           1,
		`tollgate_mcp_sessionless_requests_total{code="200",method="initialize"}`:                                     0,
		`tollgate_mcp_requests_total{method="tools/call",result="invalid_params",transport="streamable-http"}`:        1,
		`tollgate_mcp_requests_total{method="notifications/initialized",result="202",transport="streamable-http"}`:    2,
		`tollgate_mcp_requests_total{method="logging/setLevel",result="missing_session",transport="streamable-http"}`: 1,
		`tollgate_mcp_requests_total{method="tools/list",result="unsupported_version",transport="streamable-http"}`:   1,
		`tollgate_mcp_requests_total{method="ping",result="rate_limited",transport="streamable-http"}`:                1,
	} {
		if n := g.metric(t, series); n != want {
			t.Errorf("%s = %v, want %v", series, n, want)
		}
	}
	// The session's tools/call and the sessionless one: 200 twice.
	if n := g.metric(t, `tollgate_mcp_requests_total{method="tools/call",result="200",transport="streamable-http"}`); n != 2 {
		t.Errorf(`tools/call counted result="200" %v times, want 2 (one without a session, one in)`, n)
	}
	res, err := httpClient.Get(g.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if b, _ := io.ReadAll(res.Body); strings.Contains(string(b), `result="sessionless"`) {
		t.Errorf(`a series counts result="sessionless", a result no outcome has`)
	}
}

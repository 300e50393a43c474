package gateway_test

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// A resumed stream's events are the live ones, byte for byte: a payload
// of '<', '>' and '&' (here a progress token, which every progress event
// and the answer repeat) is written unescaped live and replayed unescaped
// (Last-Event-ID), on another replica too. And it is recorded unescaped in
// Redis: mcp-go encodes each event with encoding/json's HTML escaping, six
// bytes for each of those characters, which counted six-fold against the
// session's SessionEventBytes.
func TestReplayedEventsAreTheLiveOnes(t *testing.T) {
	f := newFleet(t)
	a, b := f.Gateway("MCP_CONFORMANCE_FIXTURES", "true"), f.Gateway("MCP_CONFORMANCE_FIXTURES", "true")
	tok := f.Token("user-1", allScopes)
	sid := a.initialize(t, tok)
	const token = "<a href='x'>&amp;</a> & <<>>"
	live := a.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version,
		Body: call("tools/call", map[string]any{"name": "test_tool_with_progress", "arguments": map[string]any{}, "_meta": map[string]any{"progressToken": token}})})
	if live.Status != 200 || len(live.Events) != 4 {
		t.Fatalf("live: %d %+v %s", live.Status, live.Events, live.Body)
	}
	for _, e := range live.Events {
		if e.ID == "" || !strings.Contains(e.Data, token) || strings.Contains(e.Data, `\u00`) {
			t.Errorf("live event %+v: want an id and the token unescaped", e)
		}
	}
	for where, g := range map[string]*gw{"A": a, "B": b} {
		resumed := g.do(t, req{Method: "GET", Path: "/mcp", Token: tok, Session: sid, Version: version,
			Header: map[string]string{"Last-Event-ID": live.Events[0].ID}})
		if resumed.Status != 200 || len(resumed.Events) != 3 {
			t.Fatalf("resumed on %s: %d %+v %s", where, resumed.Status, resumed.Events, resumed.Body)
		}
		for i, e := range resumed.Events {
			if want := live.Events[i+1]; e != want {
				t.Errorf("resumed on %s, event %d:\n%+v\nwant the live one\n%+v", where, i+1, e, want)
			}
		}
	}
	// What Redis holds.
	rdb := redis.NewClient(&redis.Options{Addr: f.Redis.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, k := range keys {
		if rdb.Type(ctx, k).Val() != "stream" {
			continue
		}
		for _, m := range rdb.XRange(ctx, k, "-", "+").Val() {
			data, _ := m.Values["m"].(string)
			if strings.Contains(data, "<a href") {
				found++
			}
			if strings.Contains(data, `\u003c`) || strings.Contains(data, `\u0026`) || strings.Contains(data, `\u003e`) {
				t.Errorf("%s holds an HTML-escaped event: %.200s", k, data)
			}
		}
	}
	if found != 4 {
		t.Errorf("Redis holds %d events with the token unescaped, want 4", found)
	}
}

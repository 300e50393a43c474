package gateway_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// A legacy session's resources/subscribe was mcp-go's: answered {} for
// any URI, kept nowhere. The legacy initialize declares the same
// capabilities.resources.subscribe as /mcp, so it is kept as there: in the
// session record, for URIs that name a resource (another is refused
// -32002), at most 64 (beyond: -32602; an unsubscribe frees a place).
// Refusals come on the POST (400, the request's id); an accepted request
// is answered {} on the stream.
func TestLegacySubscriptionsAreKept(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("MCP_CONFORMANCE_FIXTURES", "true", "RATE_LIMIT_PER_MINUTE", "100000")
	tok := f.Token("user-7", allScopes)
	s, path := g.openLegacy(t, tok)
	send := func(method, uri string) *resp {
		t.Helper()
		return g.do(t, req{Method: "POST", Path: path, Token: tok, Body: call(method, map[string]any{"uri": uri})})
	}
	accepted := func(method, uri string) {
		t.Helper()
		c := call(method, map[string]any{"uri": uri})
		if r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: c}); r.Status != http.StatusAccepted {
			t.Fatalf("%s %s: %d %s", method, uri, r.Status, r.Body)
		}
		if e := s.next(response(c["id"])); !strings.Contains(e.Data, `"result":{}`) {
			t.Fatalf("%s %s: %s", method, uri, e.Data)
		}
	}
	refused := func(method, uri string, code int, text string) {
		t.Helper()
		r := send(method, uri)
		if m := r.rpc(t); r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != code || !strings.Contains(m.Error.Message, text) || string(m.ID) == "null" {
			t.Errorf("%s %s: %d %s, want 400 %d %q with the request's id", method, uri, r.Status, r.Body, code, text)
		}
	}
	refused("resources/subscribe", "test://nothing/1", -32002, "resource not found")
	accepted("resources/subscribe", "test://static-text")
	for i := range 63 {
		accepted("resources/subscribe", fmt.Sprintf("test://template/%d/data", i))
	}
	refused("resources/subscribe", "test://template/64/data", -32602, "at most 64 resource subscriptions")
	// Subscribing again to a URI subscribed to takes no place.
	accepted("resources/subscribe", "test://static-text")
	accepted("resources/unsubscribe", "test://static-text")
	accepted("resources/subscribe", "test://template/64/data")
}

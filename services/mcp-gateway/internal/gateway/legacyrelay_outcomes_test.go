package gateway_test

import (
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/platform/tokens"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// A /messages POST relayed to the stream's replica whose token that
// replica refuses (here: B trusts a second signing key, A does not — as
// a token revoked or expired between the two verifications) is answered
// 401 invalid_token with a challenge on the replica it was posted to
// ("refused"), not 202: the message was not handled. A relayed
// initialize refused so gives its claim back, and the session, untouched,
// initializes with the stream's own token at once.
func TestLegacyRelayRefusedTokenIs401(t *testing.T) {
	f := newFleet(t)
	other := tokentest.Start(t, issuerURL)
	keyA, keyB := tokentest.Keys()
	ring, err := tokens.NewKeyRing(map[string]*rsa.PrivateKey{"key-a": keyA, "key-b": keyB}, "key-b")
	if err != nil {
		t.Fatal(err)
	}
	other.SetRing(ring)
	a := f.Gateway()
	b := f.Gateway("AUTH_GRPC_ADDR", other.Addr)
	tok := f.Token("user-7", allScopes)
	foreign := other.Mint(t, tokentest.Token{Subject: "user-7", Audience: resource, Scope: allScopes})
	s := a.openStream(t, "/sse", tok, nil)
	path := s.endpoint()

	init := call("initialize", map[string]any{"protocolVersion": "2024-11-05", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "legacy", "version": "1"}})
	for _, body := range []map[string]any{init, call("ping", nil)} {
		r := b.do(t, req{Method: "POST", Path: path, Token: foreign, Body: body})
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if r.Status != http.StatusUnauthorized || json.Unmarshal(r.Body, &e) != nil || e.Error != "invalid_token" ||
			!strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("%s relayed with a token the stream's replica refuses: %d %v %s; want 401 invalid_token with a challenge",
				body["method"], r.Status, r.Header, r.Body)
		}
	}
	if v := b.metric(t, `tollgate_mcp_requests_total{method="initialize",result="unauthorized",transport="sse"}`); v != 1 {
		t.Errorf(`b: requests_total{method="initialize",result="unauthorized"} = %v, want 1`, v)
	}
	if v := a.metric(t, `tollgate_mcp_relayed_messages_total{direction="dropped"}`); v != 2 {
		t.Errorf(`a: relayed dropped = %v, want 2`, v)
	}
	// Nothing reached the stream; the claim was given back: initialize
	// is accepted and answered now, and the session serves.
	legacyInit(t, s, a, tok, path)
	list := call("tools/list", nil)
	if r := b.do(t, req{Method: "POST", Path: path, Token: tok, Body: list}); r.Status != http.StatusAccepted {
		t.Fatalf("tools/list relayed with the stream's token: %d %s", r.Status, r.Body)
	}
	if e := s.next(response(list["id"])); !strings.Contains(e.Data, `"tools"`) {
		t.Fatalf("answer to tools/list: %s", e.Data)
	}
}

// A /messages POST whose body is not JSON, posted to the replica holding
// the stream, is mcp-go's 400 -32700 "Parse error" on the POST. Posted to
// another replica, it was to be relayed, but the relay (its body a
// json.RawMessage) could not be encoded, and the POST was answered 503
// with Retry-After, logged "session store unavailable": a message that
// will never parse, told to retry. (Had it reached the stream's replica,
// whose mcp-go refuses it, that replica could only have answered
// "dropped": 503 too.) It is the same 400 on every replica, answered
// before any relay, and the session goes on.
func TestLegacyUnparsableMessageIs400OnEveryReplica(t *testing.T) {
	f := newFleet(t)
	a, b := f.Gateway(), f.Gateway()
	tok := f.Token("user-7", allScopes)
	s, path := a.openLegacy(t, tok)
	for _, g := range []struct {
		name string
		gw   *gw
	}{{"the stream's replica", a}, {"another replica", b}} {
		// A JSON value followed by more text is no JSON text either (RFC
		// 8259 §2): mcp-go read the first value and served it on the
		// stream's replica (202), past the gateway's own checks — an
		// initialize without clientInfo, a second initialize — while
		// another replica answered 503 (review2).
		for _, body := range []string{
			`{"jsonrpc":"2.0","id":1,`,
			`{"jsonrpc":"2.0","id":424242,"method":"ping"} x`,
			`{"jsonrpc":"2.0","id":424243,"method":"initialize","params":{"protocolVersion":"2024-11-05"}} {}`,
		} {
			r := g.gw.do(t, req{Method: "POST", Path: path, Token: tok, Body: body})
			if m := r.rpc(t); r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32700 || string(m.ID) != "null" {
				t.Errorf("%s posted to %s: %d %v %s, want 400 with -32700 and id null", body, g.name, r.Status, r.Header, r.Body)
			}
			if ra := r.Header.Get("Retry-After"); ra != "" {
				t.Errorf("%s posted to %s: Retry-After %q", body, g.name, ra)
			}
		}
	}
	if v := a.metric(t, `tollgate_mcp_relayed_messages_total{direction="received"}`); v != 0 {
		t.Errorf("a received %v relayed messages, want 0 (nothing to relay)", v)
	}
	ping := call("ping", nil)
	if r := b.do(t, req{Method: "POST", Path: path, Token: tok, Body: ping}); r.Status != http.StatusAccepted {
		t.Fatalf("ping relayed after: %d %s", r.Status, r.Body)
	}
	s.next(response(ping["id"]))
}

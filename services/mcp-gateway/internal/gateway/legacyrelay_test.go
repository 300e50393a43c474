package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A legacy initialize posted to a replica other than the stream's is
// relayed with its claim (Store.ClaimInitialize) through Redis PUBLISH.
// When the PUBLISH failed, the claim was kept — the message might have
// been delivered — and the client's retried initialize was refused
// ("its first initialize is being answered") until the claim expired, 30
// s later. The stream's replica now confirms the claim before it hands
// the initialize on (Store.ConfirmInitialize), so the replica the POST
// reached gives back a claim nobody confirmed (Store.ReleaseUnconfirmed):
// with PUBLISH refused (an ACL), the initialize is 503 and the retry,
// once PUBLISH works again, is accepted at once and answered on the
// stream.
func TestLegacyRelayedInitializeRetriedAfterAFailedPublish(t *testing.T) {
	f := newFleet(t)
	a, b := f.Gateway(), f.Gateway()
	tok := f.Token("user-7", allScopes)
	s := a.openStream(t, "/sse", tok, nil)
	path := s.endpoint()
	allowPublish := denyCommand(t, f.Redis.Client(), "publish")
	first := call("initialize", map[string]any{"protocolVersion": "2024-11-05", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "legacy", "version": "1"}})
	if r := b.do(t, req{Method: "POST", Path: path, Token: tok, Body: first}); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("initialize relayed while PUBLISH is refused: %d %s, want 503", r.Status, r.Body)
	}
	allowPublish()
	retry := call("initialize", map[string]any{"protocolVersion": "2024-11-05", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "legacy", "version": "1"}})
	start := time.Now()
	if r := b.do(t, req{Method: "POST", Path: path, Token: tok, Body: retry}); r.Status != http.StatusAccepted {
		t.Fatalf("retried initialize: %d %s, want 202 at once (not after the claim's 30 s)", r.Status, r.Body)
	}
	if e := s.next(response(retry["id"])); !strings.Contains(e.Data, `"protocolVersion":"2024-11-05"`) {
		t.Fatalf("answer to the retried initialize: %s", e.Data)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("retried initialize answered after %v", d)
	}
}

// When the stream's replica cannot confirm a relayed initialize's claim
// (Redis refuses its script: here that replica's own Redis user is denied
// EVALSHA and EVAL), the initialize must not be handled, and its client
// would wait for an answer that never comes: the stream is ended, and the
// session with it, as when the negotiated version cannot be recorded. The
// POST, which was answered 202, is now 404 (the session is gone): the
// replica it was posted to hears so from the stream's (answerRelay).
func TestLegacyStreamEndsWhenARelayedClaimCannotBeConfirmed(t *testing.T) {
	f := newFleet(t)
	rc := f.Redis.Client()
	if err := rc.Do(t.Context(), "ACL", "SETUSER", "replica-a", "on", ">secret-a", "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Do(context.Background(), "ACL", "DELUSER", "replica-a") })
	a := f.Gateway("REDIS_URL", strings.Replace(f.Redis.URL(), "redis://", "redis://replica-a:secret-a@", 1))
	b := f.Gateway()
	tok := f.Token("user-7", allScopes)
	s := a.openStream(t, "/sse", tok, nil)
	path := s.endpoint()
	if err := rc.Do(t.Context(), "ACL", "SETUSER", "replica-a", "-evalsha", "-eval").Err(); err != nil {
		t.Fatal(err)
	}
	init := call("initialize", map[string]any{"protocolVersion": "2024-11-05", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "legacy", "version": "1"}})
	if r := b.do(t, req{Method: "POST", Path: path, Token: tok, Body: init}); r.Status != http.StatusNotFound {
		t.Fatalf("relayed initialize: %d %s, want 404 (its stream was ended)", r.Status, r.Body)
	}
	if !s.ended(10 * time.Second) {
		t.Fatal("the stream stayed open after its relayed initialize could not be confirmed")
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r := b.do(t, req{Method: "POST", Path: path, Token: tok, Body: call("ping", nil)})
		if r.Status == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("POST after the stream ended: %d %s, want 404", r.Status, r.Body)
		}
	}
}

// A relayed initialize whose claim is no longer held when it reaches the
// stream's replica (the claim expired while the message was on its way,
// after its sender had answered the POST 202) was dropped silently, and
// its client waited for an answer forever. It is now answered on the
// stream, with its id and a JSON-RPC error, and not handled: the session
// is still not initialized, and the client's next initialize is. The
// late relay is published here as the sender publishes it, with a claim
// token nobody holds.
func TestLegacyLateRelayedInitializeIsAnsweredOnTheStream(t *testing.T) {
	f := newFleet(t)
	a := f.Gateway()
	tok := f.Token("user-7", allScopes)
	s := a.openStream(t, "/sse", tok, nil)
	path := s.endpoint()
	_, id, _ := strings.Cut(path, "sessionId=")
	rc := f.Redis.Client()
	inboxes, err := rc.Do(t.Context(), "PUBSUB", "CHANNELS", "*mcp:replica:*").StringSlice()
	if err != nil || len(inboxes) != 1 {
		t.Fatalf("the replica's inbox: %v %v", inboxes, err)
	}
	init := call("initialize", map[string]any{"protocolVersion": "2024-11-05", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "legacy", "version": "1"}})
	body, _ := json.Marshal(init)
	late, _ := json.Marshal(map[string]any{"session": id, "token": tok, "body": json.RawMessage(body), "claim": "expired-claim"})
	if n, err := rc.Publish(t.Context(), inboxes[0], late).Result(); err != nil || n != 1 {
		t.Fatalf("publish the late relay: %d %v", n, err)
	}
	e := s.next(response(init["id"]))
	var m rpcMessage
	if err := json.Unmarshal([]byte(e.Data), &m); err != nil || m.Error == nil || m.Result != nil ||
		!strings.Contains(e.Data, "send initialize again") {
		t.Fatalf("answer to the late initialize: %s, want a JSON-RPC error", e.Data)
	}
	// Not handled: the session is not initialized, and initialize is
	// accepted and answered now.
	if r := a.do(t, req{Method: "POST", Path: path, Token: tok, Body: call("tools/list", nil)}); r.Status != http.StatusBadRequest {
		t.Fatalf("tools/list before any initialize was handled: %d %s, want 400 (not initialized)", r.Status, r.Body)
	}
	legacyInit(t, s, a, tok, path)
}

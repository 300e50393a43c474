package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/mcp-gateway/internal/config"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// A GET /mcp stream's events expired one SESSION_IDLE_TTL after the last
// one was recorded, while every use of the session renews the session's
// TTL: a 2025-11-25 stream open, and quiet, for longer than the TTL — its
// priming event recorded when it opened, then nothing — lost it, and a
// client whose connection then broke got 400 "unknown Last-Event-ID" when
// it resumed from the priming id, its session alive. The stream now
// renews its own events while it is open (session.Events.Renew, every
// second here). Here the TTL is 2 s and the session is used, on both
// replicas, for 5 s while its stream on A stays quiet; the stream is then
// resumed on B from the priming id, and goes on. The events still
// expire: their TTL is never beyond the session's.
func TestQuietStreamResumesAfterTheIdleTTL(t *testing.T) {
	r := testharness.StartRedis(t)
	iss := tokentest.Start(t, "http://localhost:4000")
	const ttl = 2 * time.Second
	short := func(c *config.Config) { c.SessionIdleTTL = ttl }
	a, aURL := replicaWith(t, r, iss, short)
	b, bURL := replicaWith(t, r, iss, short)
	f := &listenFixture{iss: iss, tok: iss.Mint(t, tokentest.Token{Subject: "u1", ClientID: "c1", Audience: testResource, Scope: "openid"})}
	tok, sid := f.tok, f.initialize(t, aURL)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	sctx, closeA := context.WithCancel(ctx)
	res, lines := firstEvent(t, sctx, aURL, tok, sid, "2025-11-25")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "id: "+listenStreamPrefix) {
		t.Fatalf("first event %q, want a priming event", lines)
	}
	primeID := strings.TrimPrefix(lines[0], "id: ")
	streamID, _, _ := strings.Cut(primeID, "_")
	events := a.rdb.Key("mcp", "events", redisx.Tag(redisx.Hash(sid)), streamID)
	for i := range 25 { // 5 s: two and a half TTLs
		p := post(t, []string{aURL, bURL}[i%2], tok, sid, `{"jsonrpc":"2.0","id":1,"method":"ping"}`)
		p.Body.Close()
		if p.StatusCode != 200 {
			t.Fatalf("ping %d: %d, want the session alive", i, p.StatusCode)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if ttl := a.rdb.PTTL(ctx, events).Val(); ttl <= 0 || ttl > 2*time.Second {
		t.Errorf("the stream's events have TTL %v after the quiet period, want (0, %v]", ttl, 2*time.Second)
	}
	closeA()
	res.Body.Close()

	res, stream := getStream(t, ctx, bURL, tok, sid, primeID)
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("resume from the priming id on B after the quiet period: %d, want 200", res.StatusCode)
	}
	testharness.Eventually(t, 30*time.Second, "the resumed stream registered on B", func() (bool, string) {
		return registered(b) == 1, ""
	})
	if err := a.Notify(ctx, sid, "notifications/message", map[string]any{"level": "info", "data": "after the quiet period"}); err != nil {
		t.Fatal(err)
	}
	e := nextListenEvent(t, ctx, stream, "after the quiet period")
	if s, _, _ := strings.Cut(e.id, "_"); s != streamID {
		t.Errorf("event %q is not of the resumed stream %q", e.id, streamID)
	}
}

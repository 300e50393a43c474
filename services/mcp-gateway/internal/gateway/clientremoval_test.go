package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// TestRemovedClientEndsItsStreams: when the auth-server records that a
// client was removed from its clients file (the Revoker's record and
// announcement in Redis), the open GET /mcp and GET /sse streams of that
// client's tokens issued before the removal end (counted as
// client_removed) and the token is refused with 401 on POST /mcp; streams
// of another client, and of the removed client's token issued after the
// removal (the client added back), stay open and keep getting
// notifications.
func TestRemovedClientEndsItsStreams(t *testing.T) {
	f := newAuthFixture(t)
	g := f.g
	now := time.Now()
	removedAt := now.Add(-30 * time.Second)
	mint := func(client string, issued time.Time) string {
		return f.iss.Mint(t, tokentest.Token{Subject: "ada", ClientID: client, Audience: testResource, Scope: "openid",
			GrantID: "grant-" + client + "-" + issued.Format("150405"), IssuedAt: issued, ExpiresIn: time.Hour})
	}
	removed, readded, other := mint("removed-app", now.Add(-time.Minute)), mint("removed-app", now), mint("kept-app", now.Add(-time.Minute))
	var gone, stay []*authStream
	for _, kind := range []string{"GET /mcp", "GET /sse"} {
		gone = append(gone, openAuthStream(t, f.url, kind, removed))
		stay = append(stay, openAuthStream(t, f.url, kind, readded), openAuthStream(t, f.url, kind, other))
	}
	f.broadcastReaches(t, "before", append(gone, stay...)...)
	if n := g.clientStreams.len(); n != 2 {
		t.Fatalf("clients with open streams: %d, want 2", n)
	}

	if err := f.rev.RemoveClients(context.Background(), removedAt, "removed-app"); err != nil {
		t.Fatal(err)
	}
	for _, s := range gone {
		s.endsWithin(t, 10*time.Second, "its client was removed")
	}
	f.broadcastReaches(t, "after", stay...)
	for _, tr := range []string{transportStreamable, transportSSE} {
		if v := streamsEnded(g, tr, endClientRemoved); v != 1 {
			t.Errorf("tollgate_mcp_streams_ended_total{transport=%q,reason=%q} = %v, want 1", tr, endClientRemoved, v)
		}
	}
	res := post(t, f.url, removed, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	res.Body.Close()
	if ch := res.Header.Get("WWW-Authenticate"); res.StatusCode != http.StatusUnauthorized || !strings.Contains(ch, `error="invalid_token"`) || !strings.Contains(ch, "client removed") {
		t.Errorf("POST /mcp with the removed client's token: %d %s, want 401 invalid_token (client removed)", res.StatusCode, ch)
	}
	testharness.Eventually(t, 10*time.Second, "the ended streams released", func() (bool, string) {
		c, mcpStreams, sseStreams := g.clientStreams.len(), openStreams(g, transportStreamable), openStreams(g, transportSSE)
		return c == 2 && mcpStreams == 2 && sseStreams == 2, fmt.Sprintf("clients %d, open streams %d /mcp %d /sse", c, mcpStreams, sseStreams)
	})
}

package gateway

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/revocation"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// authStream is one open server-to-client stream of a test: its events
// (pings left out) and, closed, its end.
type authStream struct {
	kind   string // "GET /mcp" or "GET /sse"
	res    *http.Response
	events chan string
	ended  chan struct{}
	// messages is the legacy session's /messages path ("" for GET /mcp).
	messages string
	sid      string // the Streamable HTTP session ("" for GET /sse)
}

// openAuthStream opens a stream of kind on url with tok: GET /mcp of a
// session it initializes first, or GET /sse with the legacy handshake
// done over /messages (mcp-go sends notifications only to initialized
// sessions).
func openAuthStream(t *testing.T, url, kind, tok string) *authStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var req *http.Request
	sid := ""
	switch kind {
	case "GET /mcp":
		res := post(t, url, tok, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
		res.Body.Close()
		sid = res.Header.Get("Mcp-Session-Id")
		if res.StatusCode != 200 || sid == "" {
			t.Fatalf("initialize: %d", res.StatusCode)
		}
		res = post(t, url, tok, sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
		res.Body.Close()
		req, _ = http.NewRequestWithContext(ctx, "GET", url+"/mcp", nil)
		req.Header.Set("Mcp-Session-Id", sid)
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	case "GET /sse":
		req, _ = http.NewRequestWithContext(ctx, "GET", url+"/sse", nil)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", kind, err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != 200 {
		t.Fatalf("%s: %d", kind, res.StatusCode)
	}
	s := &authStream{kind: kind, res: res, events: make(chan string, 64), ended: make(chan struct{}), sid: sid}
	go func() {
		defer close(s.ended)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok && !strings.Contains(data, `"method":"ping"`) {
				select {
				case s.events <- data:
				default: // a test reads what it waits for; the rest may go
				}
			}
		}
	}()
	if kind == "GET /sse" {
		s.messages = s.next(t, "/messages?sessionId=")
		for _, body := range []string{
			`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`,
			`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		} {
			if st := postMessages(t, url+s.messages, tok, body); st != http.StatusAccepted {
				t.Fatalf("legacy handshake: %d", st)
			}
		}
		s.next(t, `"protocolVersion"`)
	}
	return s
}

// postMessages POSTs body to a legacy /messages URL and returns the status.
func postMessages(t *testing.T, url, tok, body string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// next returns the next event containing text, failing if the stream
// ends or nothing comes within a generous bound.
func (s *authStream) next(t *testing.T, text string) string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case e := <-s.events:
			if strings.Contains(e, text) {
				return e
			}
		case <-s.ended:
			t.Fatalf("%s ended before an event with %q", s.kind, text)
		case <-timeout:
			t.Fatalf("%s: no event with %q within 30s", s.kind, text)
		}
	}
}

// endsWithin waits, up to within (a bound on the wait, not a speed
// assertion), for the gateway to end the stream.
func (s *authStream) endsWithin(t *testing.T, within time.Duration, why string) {
	t.Helper()
	select {
	case <-s.ended:
	case <-time.After(within):
		t.Fatalf("%s still open %s after %s", s.kind, within, why)
	}
}

// streamsEnded is tollgate_mcp_streams_ended_total{transport, reason} on g.
func streamsEnded(g *Gateway, transport, reason string) float64 {
	return testutil.ToFloat64(g.metrics.streamEnds.WithLabelValues(transport, reason))
}

// authFixture is one gateway (built by replica, following revocations)
// with a real Redis and key-set server, and a Revoker on that Redis, as
// the auth-server's.
type authFixture struct {
	g   *Gateway
	url string
	iss *tokentest.Issuer
	rev *revocation.Revoker
}

func newAuthFixture(t *testing.T) *authFixture {
	t.Helper()
	r := testharness.StartRedis(t)
	iss := tokentest.Start(t, "http://localhost:4000")
	g, url := replica(t, r, iss)
	rdb, err := redisx.New(config.Redis{URL: r.URL(), KeyPrefix: "notify:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return &authFixture{g: g, url: url, iss: iss, rev: revocation.NewRevoker(rdb, time.Hour, nil)}
}

func (f *authFixture) mint(t *testing.T, sub, grant string, issued time.Time, lifetime time.Duration) string {
	return f.iss.Mint(t, tokentest.Token{Subject: sub, ClientID: "c1", Audience: testResource, Scope: "openid",
		GrantID: grant, IssuedAt: issued, ExpiresIn: lifetime})
}

// broadcastReaches broadcasts a list_changed with a marker and waits for
// it on each stream: they are open and still get notifications.
func (f *authFixture) broadcastReaches(t *testing.T, marker string, streams ...*authStream) {
	t.Helper()
	if err := f.g.Broadcast(context.Background(), "notifications/tools/list_changed", map[string]any{"marker": marker}); err != nil {
		t.Fatal(err)
	}
	for _, s := range streams {
		s.next(t, marker)
	}
}

// TestRevokedGrantEndsItsStreams: revoking a grant (the auth-server's
// Revoker: record and announcement in Redis) ends the open GET /mcp and
// GET /sse streams of tokens of that grant; the legacy session ends with
// its stream (a later POST /messages for it is an unknown session), the
// Streamable HTTP session stays for the client's next token; streams of
// another grant stay open and keep getting notifications; each end is
// counted, and nothing of the ended streams is left on the gateway.
func TestRevokedGrantEndsItsStreams(t *testing.T) {
	f := newAuthFixture(t)
	g := f.g
	now := time.Now()
	revoked, kept := f.mint(t, "ada", "grant-revoked", now, time.Hour), f.mint(t, "bob", "grant-kept", now, time.Hour)
	var gone, stay []*authStream
	for _, kind := range []string{"GET /mcp", "GET /sse"} {
		gone = append(gone, openAuthStream(t, f.url, kind, revoked))
		stay = append(stay, openAuthStream(t, f.url, kind, kept))
	}
	f.broadcastReaches(t, "before", append(gone, stay...)...)
	if n := g.grantStreams.len(); n != 2 {
		t.Fatalf("grants with open streams: %d, want 2", n)
	}
	registeredBefore := registered(g)

	if err := f.rev.Revoke(context.Background(), "grant-revoked"); err != nil {
		t.Fatal(err)
	}
	for _, s := range gone {
		s.endsWithin(t, 10*time.Second, "its grant was revoked")
	}
	f.broadcastReaches(t, "after", stay...)
	for _, tr := range []string{transportStreamable, transportSSE} {
		if v := streamsEnded(g, tr, endRevoked); v != 1 {
			t.Errorf("tollgate_mcp_streams_ended_total{transport=%q,reason=\"revoked\"} = %v, want 1", tr, v)
		}
		if v := streamsEnded(g, tr, endExpired); v != 0 {
			t.Errorf("tollgate_mcp_streams_ended_total{transport=%q,reason=\"expired\"} = %v, want 0", tr, v)
		}
	}

	// The legacy session is gone with its stream: a new token of the same
	// user and client finds no session; the revoked token is refused.
	again := f.mint(t, "ada", "grant-new", time.Now(), time.Hour)
	testharness.Eventually(t, 10*time.Second, "the ended legacy session is unknown", func() (bool, string) {
		st := postMessages(t, f.url+gone[1].messages, again, `{"jsonrpc":"2.0","id":2,"method":"ping"}`)
		return st == http.StatusNotFound, fmt.Sprintf("POST /messages: %d", st)
	})
	if st := postMessages(t, f.url+gone[1].messages, revoked, `{"jsonrpc":"2.0","id":3,"method":"ping"}`); st != http.StatusUnauthorized {
		t.Errorf("POST /messages with the revoked token: %d, want 401", st)
	}
	// The Streamable HTTP session serves the user's new token.
	res := post(t, f.url, again, gone[0].sid, `{"jsonrpc":"2.0","id":4,"method":"ping"}`)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("ping in the Streamable HTTP session with a new token of its user: %d, want 200", res.StatusCode)
	}
	// Nothing of the ended streams is left: the grant's entry, the
	// listening session registered with mcp-go, the open-stream gauges.
	testharness.Eventually(t, 10*time.Second, "the ended streams released", func() (bool, string) {
		gr, reg, mcpStreams, sseStreams := g.grantStreams.len(), registered(g), openStreams(g, transportStreamable), openStreams(g, transportSSE)
		return gr == 1 && reg == registeredBefore-2 && mcpStreams == 1 && sseStreams == 1,
			fmt.Sprintf("grants %d, registered sessions %d, open streams %d /mcp %d /sse", gr, reg, mcpStreams, sseStreams)
	})
}

// TestExpiredTokenEndsItsStream: a stream whose token's exp passes stays
// open across the expiry check while the verifier still accepts the token
// (its clock leeway) and gets notifications, then ends once the verifier
// refuses the token; a stream of a token that is fine stays open. The
// stream's re-checks (one at exp, then one a second through the leeway)
// are not token verifications of requests:
// tollgate_mcp_token_verifications_total does not move while only the
// streams are open.
func TestExpiredTokenEndsItsStream(t *testing.T) {
	f := newAuthFixture(t)
	g := f.g
	// exp in 5 s, refused from about 35 s (the verifier's 30 s leeway):
	// room to open the streams on a loaded machine.
	issued := time.Now().Add(-time.Hour)
	exp := issued.Add(time.Hour + 5*time.Second)
	expiring := f.mint(t, "ada", "grant-expiring", issued, exp.Sub(issued))
	fine := f.mint(t, "bob", "grant-fine", time.Now(), time.Hour)
	var gone, stay []*authStream
	for _, kind := range []string{"GET /mcp", "GET /sse"} {
		gone = append(gone, openAuthStream(t, f.url, kind, expiring))
		stay = append(stay, openAuthStream(t, f.url, kind, fine))
	}
	verifications := func() (hit, miss float64) {
		return testutil.ToFloat64(g.metrics.tokenCache.WithLabelValues("hit")), testutil.ToFloat64(g.metrics.tokenCache.WithLabelValues("miss"))
	}
	hitsBefore, missesBefore := verifications()
	if hitsBefore+missesBefore == 0 {
		t.Fatal("tollgate_mcp_token_verifications_total counted none of the requests that opened the streams")
	}
	// Past exp, the check has run (and run again): the token is still
	// accepted, and the streams carry on.
	time.Sleep(time.Until(exp.Add(2 * expiryRecheck)))
	f.broadcastReaches(t, "within the leeway", append(gone, stay...)...)
	for _, s := range gone {
		s.endsWithin(t, 60*time.Second, "its token expired")
	}
	f.broadcastReaches(t, "after", stay...)
	if hits, misses := verifications(); hits != hitsBefore || misses != missesBefore {
		t.Errorf("tollgate_mcp_token_verifications_total moved by hit %v, miss %v while only the streams were open, want 0 (re-checks are not request verifications)", hits-hitsBefore, misses-missesBefore)
	}
	for _, tr := range []string{transportStreamable, transportSSE} {
		if v := streamsEnded(g, tr, endExpired); v != 1 {
			t.Errorf("tollgate_mcp_streams_ended_total{transport=%q,reason=\"expired\"} = %v, want 1", tr, v)
		}
	}
	testharness.Eventually(t, 10*time.Second, "the ended streams released", func() (bool, string) {
		gr, mcpStreams, sseStreams := g.grantStreams.len(), openStreams(g, transportStreamable), openStreams(g, transportSSE)
		return gr == 1 && mcpStreams == 1 && sseStreams == 1, fmt.Sprintf("grants %d, open streams %d /mcp %d /sse", gr, mcpStreams, sseStreams)
	})
}

// TestRemovedKeyEndsItsStreams follows key-rotation.md's "leaked key"
// case at a gateway: while key-a and key-b are published, GET /mcp and
// GET /sse streams are open with a token of each; the operator then
// publishes key-b and a new key-c only (key-c active). The gateway's
// verifier fetches that set over the real KeySetService at the first
// token of key-c it sees (an unknown kid), and that fetch ends key-a's
// streams (counted as key_removed; the legacy session is gone, so POST
// /messages for it is 404; reconnecting with key-a's token is the 401
// challenge) while key-b's streams stay open and get notifications, and
// the Streamable HTTP session serves the user's new token.
func TestRemovedKeyEndsItsStreams(t *testing.T) {
	f := newAuthFixture(t)
	g := f.g
	a, b := tokentest.Keys()
	c, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ring := func(keys map[string]*rsa.PrivateKey, active string) *tokens.KeyRing {
		r, err := tokens.NewKeyRing(keys, active)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// Both published before the gateway's first fetch; each token signed
	// by its own key.
	f.iss.SetRing(ring(map[string]*rsa.PrivateKey{"key-a": a, "key-b": b}, "key-a"))
	now := time.Now()
	leaked := f.mint(t, "ada", "grant-leaked-key", now, time.Hour)
	f.iss.SetRing(ring(map[string]*rsa.PrivateKey{"key-a": a, "key-b": b}, "key-b"))
	kept := f.mint(t, "bob", "grant-kept-key", now, time.Hour)
	var gone, stay []*authStream
	for _, kind := range []string{"GET /mcp", "GET /sse"} {
		gone = append(gone, openAuthStream(t, f.url, kind, leaked))
		stay = append(stay, openAuthStream(t, f.url, kind, kept))
	}
	f.broadcastReaches(t, "before", append(gone, stay...)...)
	if n := g.keyStreams.len(); n != 2 {
		t.Fatalf("kids with open streams: %d, want 2", n)
	}
	registeredBefore := registered(g)

	// Emergency rotation: key-a is gone, key-c signs.
	f.iss.SetRing(ring(map[string]*rsa.PrivateKey{"key-b": b, "key-c": c}, "key-c"))
	fresh := f.mint(t, "ada", "grant-after-rotation", time.Now(), time.Hour)
	res := post(t, f.url, fresh, gone[0].sid, `{"jsonrpc":"2.0","id":2,"method":"ping"}`)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("ping with the first token of the new key: %d, want 200", res.StatusCode)
	}
	for _, s := range gone {
		s.endsWithin(t, 10*time.Second, "its signing key left the key set")
	}
	f.broadcastReaches(t, "after", stay...)
	for _, tr := range []string{transportStreamable, transportSSE} {
		for reason, want := range map[string]float64{endKeyRemoved: 1, endRevoked: 0, endExpired: 0} {
			if v := streamsEnded(g, tr, reason); v != want {
				t.Errorf("tollgate_mcp_streams_ended_total{transport=%q,reason=%q} = %v, want %v", tr, reason, v, want)
			}
		}
	}

	// The legacy session ended with its stream; key-a's token is refused,
	// on a reconnect too, with the challenge.
	testharness.Eventually(t, 10*time.Second, "the ended legacy session is unknown", func() (bool, string) {
		st := postMessages(t, f.url+gone[1].messages, fresh, `{"jsonrpc":"2.0","id":3,"method":"ping"}`)
		return st == http.StatusNotFound, fmt.Sprintf("POST /messages: %d", st)
	})
	req, _ := http.NewRequest("GET", f.url+"/sse", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+leaked)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if challenge := res.Header.Get("WWW-Authenticate"); res.StatusCode != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) || !strings.Contains(challenge, "key-a") {
		t.Errorf("GET /sse again with key-a's token: %d %q, want 401 invalid_token naming key-a", res.StatusCode, challenge)
	}
	// Nothing of the ended streams is left.
	testharness.Eventually(t, 10*time.Second, "the ended streams released", func() (bool, string) {
		keys, gr, reg, mcpStreams, sseStreams := g.keyStreams.len(), g.grantStreams.len(), registered(g), openStreams(g, transportStreamable), openStreams(g, transportSSE)
		return keys == 1 && gr == 1 && reg == registeredBefore-2 && mcpStreams == 1 && sseStreams == 1,
			fmt.Sprintf("kids %d, grants %d, registered sessions %d, open streams %d /mcp %d /sse", keys, gr, reg, mcpStreams, sseStreams)
	})
}

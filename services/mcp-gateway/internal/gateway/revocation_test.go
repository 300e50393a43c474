package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/revocation"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// fleetRedis is a client with the gateways' key prefix (Env), the one
// the auth-server's revoker writes through.
func (f *fleet) fleetRedis() *redisx.Client {
	f.t.Helper()
	c, err := redisx.New(config.Redis{URL: f.Redis.URL(), KeyPrefix: "test:"})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = c.Close() })
	return c
}

// authStatus makes one request and returns its status and challenge
// without reading a stream to its end.
func (g *gw) authStatus(t *testing.T, method, path, token, session string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var body *strings.Reader
	if method == http.MethodPost {
		body = strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`)
		if session == "" {
			body = strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"` + version + `","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
		}
	} else {
		body = strings.NewReader("")
	}
	hr, _ := http.NewRequestWithContext(ctx, method, g.URL+path, body)
	hr.Header.Set("Authorization", "Bearer "+token)
	hr.Header.Set("Accept", "application/json, text/event-stream")
	if method == http.MethodPost {
		hr.Header.Set("Content-Type", "application/json")
	}
	if session != "" {
		hr.Header.Set("Mcp-Session-Id", session)
		hr.Header.Set("Mcp-Protocol-Version", version)
	}
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	res.Body.Close()
	return res.StatusCode, res.Header.Get("WWW-Authenticate")
}

// refusedWithin polls until the request answers 401 invalid_token; the
// deadline bounds the loop, it is not a speed assertion.
func (g *gw) refusedWithin(t *testing.T, method, path, token, session string, within time.Duration, what string) {
	t.Helper()
	testharness.Eventually(t, within, what+": "+method+" "+path+" 401 invalid_token", func() (bool, string) {
		st, challenge := g.authStatus(t, method, path, token, session)
		return st == http.StatusUnauthorized && strings.Contains(challenge, `error="invalid_token"`), fmt.Sprintf("%d %q", st, challenge)
	})
}

// TestRevokedGrantIsRefused: once a grant is revoked, its token is refused
// on /mcp (new and existing sessions) and /sse — after the announcement,
// by a gateway started afterwards, and by a replica that missed the
// announcement; a token of another grant keeps working.
func TestRevokedGrantIsRefused(t *testing.T) {
	f := newFleet(t)
	rdb := f.fleetRedis()
	mint := func(grant string) string {
		return f.Issuer.Mint(t, tokentest.Token{Subject: "ada", Audience: resource, Scope: allScopes, GrantID: grant})
	}
	g := f.Gateway()
	late := f.Gateway("REVOCATION_RECONCILE_INTERVAL", "1s")
	revoked, kept := mint("grant-revoked"), mint("grant-kept")
	session := g.initialize(t, revoked)
	stream := g.openStream(t, "/sse", revoked, nil)
	stream.endpoint()
	stream.Close()
	if st, _ := late.authStatus(t, http.MethodPost, "/mcp", revoked, ""); st != http.StatusOK {
		t.Fatalf("late replica before revocation: %d", st)
	}

	if err := revocation.NewRevoker(rdb, time.Hour, nil).Revoke(context.Background(), "grant-revoked"); err != nil {
		t.Fatal(err)
	}
	g.refusedWithin(t, http.MethodPost, "/mcp", revoked, session, time.Second, "existing session on /mcp")
	g.refusedWithin(t, http.MethodPost, "/mcp", revoked, "", time.Second, "new session on /mcp")
	g.refusedWithin(t, http.MethodGet, "/sse", revoked, "", time.Second, "/sse")
	if st, _ := g.authStatus(t, http.MethodPost, "/mcp", kept, ""); st != http.StatusOK {
		t.Errorf("another grant on /mcp: %d", st)
	}

	// A lost announcement: the record is written without one.
	exp := float64(time.Now().Add(time.Hour).UnixMilli())
	if err := rdb.ZAdd(context.Background(), rdb.Key("revocation", "grants"), redis.Z{Score: exp, Member: "grant-missed"}).Err(); err != nil {
		t.Fatal(err)
	}
	missed := mint("grant-missed")
	late.refusedWithin(t, http.MethodPost, "/mcp", missed, "", 10*time.Second, "replica that missed the announcement")

	// A gateway (re)started after the revocations loads them before serving.
	g.Stop()
	again := f.Gateway("REVOCATION_RECONCILE_INTERVAL", "5m")
	again.refusedWithin(t, http.MethodPost, "/mcp", revoked, "", time.Second, "/mcp after a restart")
	again.refusedWithin(t, http.MethodGet, "/sse", missed, "", time.Second, "/sse after a restart (never announced)")
	if st, _ := again.authStatus(t, http.MethodPost, "/mcp", kept, ""); st != http.StatusOK {
		t.Errorf("another grant after a restart: %d", st)
	}
}

// TestRevokedGrantEndsStreamsOfRun: the gateway Run wires follows the
// revocations for its open streams too — a GET /sse stream of a revoked
// grant ends (counted, and logged at info without the token), a stream of
// another grant stays open and served. That the other stream was not
// ended is read after a marker: a third grant, revoked after the first,
// whose stream ends only once the first revocation has ended every stream
// it ends (a Set merges announcements in order, telling the hooks of each
// before reading the next: revocation.Set.OnRevoke); the kept stream then
// still answers a ping.
func TestRevokedGrantEndsStreamsOfRun(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	mint := func(grant string) string {
		return f.Issuer.Mint(t, tokentest.Token{Subject: "ada", Audience: resource, Scope: allScopes, GrantID: grant})
	}
	revoked, kept, marker := mint("grant-stream-revoked"), mint("grant-stream-kept"), mint("grant-stream-marker")
	gone, mark := g.openStream(t, "/sse", revoked, nil), g.openStream(t, "/sse", marker, nil)
	gone.endpoint()
	mark.endpoint()
	stay, stayPath := g.openLegacy(t, kept)
	revoker := revocation.NewRevoker(f.fleetRedis(), time.Hour, nil)
	for _, grant := range []string{"grant-stream-revoked", "grant-stream-marker"} {
		if err := revoker.Revoke(context.Background(), grant); err != nil {
			t.Fatal(err)
		}
	}
	if !gone.ended(10 * time.Second) {
		t.Fatal("the /sse stream of the revoked grant is still open 10s after the revocation")
	}
	if !mark.ended(10 * time.Second) {
		t.Fatal("the /sse stream of the marker grant is still open 10s after its revocation")
	}
	ping := call("ping", nil)
	if r := g.do(t, req{Method: "POST", Path: stayPath, Token: kept, Body: ping}); r.Status != http.StatusAccepted {
		t.Fatalf("a ping on the stream of another grant after the revocations: %d %s, want 202 (answered on its stream)", r.Status, r.Body)
	}
	stay.next(response(ping["id"])) // fails if the stream ended
	if v := g.metric(t, `tollgate_mcp_streams_ended_total{reason="revoked",transport="sse"}`); v != 2 {
		t.Errorf(`tollgate_mcp_streams_ended_total{reason="revoked",transport="sse"} = %v, want 2 (the revoked grant's stream and the marker's)`, v)
	}
	logs := g.Logs.String()
	logged := false
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `msg="stream ended`) && strings.Contains(line, "grant_id=grant-stream-revoked") {
			logged = strings.Contains(line, "level=INFO") && strings.Contains(line, "reason=revoked") && strings.Contains(line, "transport=sse")
		}
		if strings.Contains(line, `msg="stream ended`) && strings.Contains(line, "grant_id=grant-stream-kept") {
			t.Errorf("the stream of another grant was logged as ended: %s", line)
		}
	}
	if !logged {
		t.Errorf("no info line with the reason for the ended stream in:\n%s", logs)
	}
	if strings.Contains(logs, revoked) {
		t.Error("the log holds the revoked access token")
	}
}

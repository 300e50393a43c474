package gateway_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// chatGPTHeaders is what ChatGPT's connector sends on every request.
var chatGPTHeaders = map[string]string{"User-Agent": "openai-mcp/1.0.0"}

// chatGPTBatch is one tool-call batch of ChatGPT's connector as it behaves
// (openai/openai-apps-sdk-examples#165 and #201: the connector drops the
// session between tool-call batches and leaves the old one behind;
// FlowFuse/flowfuse#8561 saw 17 session ids in 20 requests): initialize
// without Mcp-Session-Id, the initialized notification, tools/list and a
// tools/call in that session, and no DELETE. It returns the initialize
// answer's status and the session id.
func chatGPTBatch(t *testing.T, g *gw, tok string) (int, string) {
	t.Helper()
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Header: chatGPTHeaders, Body: call("initialize", map[string]any{
		"protocolVersion": version, "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "openai-mcp", "version": "1.0.0"}})})
	if r.Status != http.StatusOK {
		return r.Status, ""
	}
	sid := r.Header.Get("Mcp-Session-Id")
	g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Header: chatGPTHeaders,
		Body: map[string]any{"jsonrpc": "2.0", "method": "notifications/initialized"}})
	g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Header: chatGPTHeaders, Body: call("tools/list", nil)})
	toolCall(t, g, tok, sid, http.StatusOK)
	return r.Status, sid
}

// toolCall calls health.check in session sid and wants status.
func toolCall(t *testing.T, g *gw, tok, sid string, status int) {
	t.Helper()
	if c := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Header: chatGPTHeaders,
		Body: call("tools/call", map[string]any{"name": "health.check", "arguments": map[string]any{}})}); c.Status != status {
		t.Fatalf("tools/call in session %.8s…: %d %s, want %d", sid, c.Status, c.Body, status)
	}
}

// age moves the entries of every (subject, client) session set in the
// fleet's Redis d into the past, as if those sessions had last been used
// d earlier than they were (the set's score is the expiry as of the last
// renewal: last use + SESSION_IDLE_TTL). Only the sessions named are
// moved when ids are given. Nothing else is touched: the session records
// keep their own TTL.
func age(t *testing.T, f *fleet, d time.Duration, ids ...string) {
	t.Helper()
	opt, err := redis.ParseURL(f.Redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "test:mcp:client-sessions:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("no session sets: %v %v", keys, err)
	}
	only := map[string]bool{}
	for _, id := range ids {
		sum := sha256.Sum256([]byte(id))
		only[hex.EncodeToString(sum[:])] = true
	}
	moved := 0
	for _, k := range keys {
		zs, err := rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, z := range zs {
			if len(ids) > 0 && !only[z.Member.(string)] {
				continue
			}
			z.Score -= float64(d.Milliseconds())
			if err := rdb.ZAddXX(ctx, k, z).Err(); err != nil {
				t.Fatal(err)
			}
			moved++
		}
	}
	if moved == 0 || len(ids) > 0 && moved != len(ids) {
		t.Fatalf("aged %d entries, want %d", moved, len(ids))
	}
}

// setSize is the number of entries in the fleet's (subject, client) session sets.
func setSize(t *testing.T, f *fleet) int64 {
	t.Helper()
	opt, _ := redis.ParseURL(f.Redis.URL())
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	keys, err := rdb.Keys(context.Background(), "test:mcp:client-sessions:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, k := range keys {
		n += rdb.ZCard(context.Background(), k).Val()
	}
	return n
}

// TestChatGPTSessionChurnDoesNotLockTheUserOut: ChatGPT opens a session per
// tool-call batch and never ends one. With the cap of live sessions per
// (user, client) and no eviction, the batch after the cap was refused 429
// -32029 with Retry-After ≈ SESSION_IDLE_TTL: every tool of the app failed
// for that user for half an hour. Each batch here comes more than
// SESSION_EVICT_IDLE_AFTER (2m) plus the renewal interval (1m) after the
// one before (age): the sessions given up are ended to make room, and the
// user's current session keeps working.
func TestChatGPTSessionChurnDoesNotLockTheUserOut(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("SESSION_LIMIT_PER_SUBJECT", "3")
	tok := f.Token("chatgpt-user", allScopes)
	var sids []string
	for i := 1; i <= 6; i++ {
		if i > 1 {
			age(t, f, 4*time.Minute)
		}
		st, sid := chatGPTBatch(t, g, tok)
		if st != http.StatusOK {
			t.Fatalf("ChatGPT's tool-call batch %d: initialize answered %d (cap 3, every earlier session abandoned by the client): the user is locked out of every tool", i, st)
		}
		sids = append(sids, sid)
	}
	if v := g.metric(t, `tollgate_mcp_sessions_total{event="evicted",transport="streamable-http"}`); v != 3 {
		t.Errorf("evicted sessions = %v, want 3", v)
	}
	if n := setSize(t, f); n != 3 {
		t.Errorf("live sessions counted = %d, want the cap, 3", n)
	}
	// The three oldest were ended: 404, the client initializes again.
	for i, sid := range sids {
		want := http.StatusOK
		if i < 3 {
			want = http.StatusNotFound
		}
		toolCall(t, g, tok, sid, want)
	}
	logs := g.Logs.String()
	if !strings.Contains(logs, "ended the least recently used idle session") || strings.Contains(logs, tok) {
		t.Errorf("eviction log (info, no token):\n%s", logs)
	}
}

// The least recently used session is the one ended, on whichever replica
// it was created or used (404 on both); the others keep working; a session
// used within the grace is never taken — also when its last use was on a
// replica that had not seen it before (the use moves its place in the
// set): the initialize is then refused 429 with Retry-After until the
// least recently used one becomes evictable, far below the idle TTL.
func TestSessionEvictionTakesOnlyTheIdle(t *testing.T) {
	f := newFleet(t)
	a := f.Gateway("SESSION_LIMIT_PER_SUBJECT", "3")
	b := f.Gateway("SESSION_LIMIT_PER_SUBJECT", "3")
	tok := f.Token("ada", allScopes)
	s1, s2, s3 := a.initialize(t, tok), a.initialize(t, tok), b.initialize(t, tok)
	// All three in use: refused, with Retry-After until the oldest has been
	// idle for SESSION_EVICT_IDLE_AFTER (2m) plus the renewal interval (1m).
	r := a.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: call("initialize", map[string]any{
		"protocolVersion": version, "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "x", "version": "1"}})})
	if r.Status != http.StatusTooManyRequests {
		t.Fatalf("initialize with every session in use: %d %s", r.Status, r.Body)
	}
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 || s > 180 {
		t.Errorf("Retry-After %q, want about 180 s (2m grace + 1m renewal), not the idle TTL", r.Header.Get("Retry-After"))
	}
	// Ten minutes pass; s1 is then used on b, which has not seen it.
	age(t, f, 10*time.Minute)
	toolCall(t, b, tok, s1, http.StatusOK)
	a.initialize(t, tok) // ends s2, the least recently used
	toolCall(t, a, tok, s2, http.StatusNotFound)
	toolCall(t, b, tok, s2, http.StatusNotFound)
	toolCall(t, a, tok, s1, http.StatusOK)
	toolCall(t, a, tok, s3, http.StatusOK) // first use on a since the ten minutes: moves its place too
	r = b.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: call("initialize", map[string]any{
		"protocolVersion": version, "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "x", "version": "1"}})})
	if r.Status != http.StatusTooManyRequests {
		t.Fatalf("initialize with the rest used within the grace: %d %s", r.Status, r.Body)
	}
	if v := a.metric(t, `tollgate_mcp_sessions_total{event="evicted",transport="streamable-http"}`); v != 1 {
		t.Errorf("evicted on a = %v, want 1", v)
	}
	toolCall(t, b, tok, s1, http.StatusOK)
	toolCall(t, b, tok, s3, http.StatusOK)
}

// Concurrent initializes at the cap on two replicas: the count never
// passes the cap; each idle session is ended once, for one new one; the
// initializes beyond that are refused.
func TestSessionEvictionConcurrentAtTheCap(t *testing.T) {
	f := newFleet(t)
	a := f.Gateway("SESSION_LIMIT_PER_SUBJECT", "3")
	b := f.Gateway("SESSION_LIMIT_PER_SUBJECT", "3")
	tok := f.Token("ada", allScopes)
	old := []string{a.initialize(t, tok), b.initialize(t, tok), a.initialize(t, tok)}
	age(t, f, 10*time.Minute)
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for i := range 8 {
		g := a
		if i%2 == 1 {
			g = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: call("initialize", map[string]any{
				"protocolVersion": version, "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "x", "version": "1"}})})
			mu.Lock()
			statuses[r.Status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if statuses[http.StatusOK] != 3 || statuses[http.StatusTooManyRequests] != 5 {
		t.Errorf("statuses %v, want 3 × 200 (one for each idle session) and 5 × 429", statuses)
	}
	if n := setSize(t, f); n != 3 {
		t.Errorf("live sessions counted = %d, want 3", n)
	}
	for _, sid := range old {
		toolCall(t, a, tok, sid, http.StatusNotFound)
	}
	if v := a.metric(t, `tollgate_mcp_sessions_total{event="evicted",transport="streamable-http"}`) +
		b.metric(t, `tollgate_mcp_sessions_total{event="evicted",transport="streamable-http"}`); v != 3 {
		t.Errorf("evicted = %v, want 3", v)
	}
}

// SESSION_EVICT_IDLE_AFTER=0 keeps the cap without eviction: however long
// the pair's sessions have been idle, a new one is refused 429 with
// Retry-After until the oldest expires.
func TestSessionEvictionDisabled(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("SESSION_LIMIT_PER_SUBJECT", "3", "SESSION_EVICT_IDLE_AFTER", "0")
	tok := f.Token("ada", allScopes)
	s1 := g.initialize(t, tok)
	g.initialize(t, tok)
	g.initialize(t, tok)
	age(t, f, 10*time.Minute)
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: call("initialize", map[string]any{
		"protocolVersion": version, "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "x", "version": "1"}})})
	if r.Status != http.StatusTooManyRequests {
		t.Fatalf("initialize at the cap without eviction: %d %s", r.Status, r.Body)
	}
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 15*60 || s > 20*60 {
		t.Errorf("Retry-After %q, want the oldest's expiry, about 20 min", r.Header.Get("Retry-After"))
	}
	if rr := g.do(t, req{Method: "GET", Path: "/sse", Token: tok}); rr.Status != http.StatusTooManyRequests {
		t.Errorf("GET /sse at the cap without eviction: %d", rr.Status)
	}
	toolCall(t, g, tok, s1, http.StatusOK)
}

// An initialize at the cap that cannot delete the idle session it chose
// (here a Redis ACL makes session records read-only for one initialize; a
// command timeout does the same) is refused 503, and the idle session
// stays, still counted: it was taken out of the pair's set before its
// record was deleted, so it went on working uncounted and the pair held
// two live sessions under a cap of one. Once Redis takes deletes again,
// the next initialize ends it and takes its place.
func TestEvictionThatCannotDeleteKeepsTheCap(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("SESSION_LIMIT_PER_SUBJECT", "1")
	tok := f.Token("ada", allScopes)
	old := g.initialize(t, tok)
	age(t, f, 10*time.Minute)
	init := call("initialize", map[string]any{
		"protocolVersion": version, "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "x", "version": "1"}})

	restore := f.Redis.RestrictKeys(t, "test:mcp:session:", "%R")
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: init})
	restore()
	if r.Status != http.StatusServiceUnavailable {
		t.Fatalf("initialize at the cap while session records are read-only: %d %s, want 503", r.Status, r.Body)
	}
	if n := setSize(t, f); n != 1 {
		t.Errorf("after the failed eviction, %d sessions counted, want 1 (the one that could not be ended)", n)
	}
	toolCall(t, g, tok, old, http.StatusOK) // not ended: it still works
	if !strings.Contains(g.Logs.String(), "could not end an idle session") {
		t.Errorf("the failed eviction is not logged:\n%s", g.Logs.String())
	}
	age(t, f, 10*time.Minute)
	if r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: init}); r.Status != http.StatusOK {
		t.Fatalf("initialize at the cap once Redis deletes again: %d %s", r.Status, r.Body)
	}
	toolCall(t, g, tok, old, http.StatusNotFound)
	if n := setSize(t, f); n != 1 {
		t.Errorf("%d sessions counted, want 1", n)
	}
	if v := g.metric(t, `tollgate_mcp_sessions_total{event="evicted",transport="streamable-http"}`); v != 1 {
		t.Errorf("evicted = %v, want 1", v)
	}
}

// A legacy HTTP+SSE session ended to make room is counted once, evicted:
// its stream closes, and the stream handler's own Delete then finds the
// record gone and counts nothing (it counted the session deleted too:
// one session, two ends in tollgate_mcp_sessions_total).
func TestEvictedLegacySessionCountedOnce(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("SESSION_LIMIT_PER_SUBJECT", "1")
	tok := f.Token("ada", allScopes)
	s, _ := g.openLegacy(t, tok)
	age(t, f, 10*time.Minute)
	g.initialize(t, tok) // at the cap: ends the idle legacy session
	if !s.ended(30 * time.Second) {
		t.Fatal("the evicted legacy session's stream is still open")
	}
	// The request log line is written once the handler, its deferred
	// Delete included, has returned.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(g.Logs.String(), "route=/sse status=200") {
		if time.Now().After(deadline) {
			t.Fatal("the /sse handler has not returned")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v := g.metric(t, `tollgate_mcp_sessions_total{event="evicted",transport="sse"}`); v != 1 {
		t.Errorf("evicted legacy sessions = %v, want 1", v)
	}
	if v := g.metric(t, `tollgate_mcp_sessions_total{event="deleted",transport="sse"}`); v != 0 {
		t.Errorf("the evicted legacy session is also counted deleted (%v): the eviction removed its record, not the stream's Delete", v)
	}
}

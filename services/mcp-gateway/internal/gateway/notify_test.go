package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/reflect/protoregistry"

	capabilityv1 "github.com/tollgate/tollgate/proto/gen/tollgate/capability/v1"
	"github.com/tollgate/tollgate/services/mcp-gateway/internal/config"
	"github.com/tollgate/tollgate/services/mcp-gateway/internal/session"
	pconfig "github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/grpcx"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/revocation"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

const testResource = "http://localhost:4000/mcp"

// replica builds a Gateway with New (not Run), so that the test can call
// Notify and Broadcast on it, and serves it on a loopback port. env adds
// settings, as name, value pairs.
func replica(t *testing.T, r *testharness.Redis, iss *tokentest.Issuer, env ...string) (*Gateway, string) {
	t.Helper()
	return replicaWith(t, r, iss, nil, env...)
}

// replicaWith is replica with the loaded configuration changed by tweak
// (if not nil) before the Gateway is built: for settings the
// configuration refuses, such as a SESSION_IDLE_TTL of seconds.
func replicaWith(t *testing.T, r *testharness.Redis, iss *tokentest.Issuer, tweak func(*config.Config), env ...string) (*Gateway, string) {
	t.Helper()
	vars := map[string]string{
		"HTTP_ADDR": "127.0.0.1:0", "MCP_RESOURCE_URL": testResource, "PUBLIC_ISSUER_URL": "http://localhost:4000",
		"AUTH_GRPC_ADDR": iss.Addr, "CORE_GRPC_ADDR": "127.0.0.1:1", "REDIS_URL": r.URL(), "REDIS_KEY_PREFIX": "notify:",
		"REDIS_COMMAND_TIMEOUT": testharness.RedisCommandTimeout, "REDIS_DIAL_TIMEOUT": testharness.RedisDialTimeout,
	}
	for i := 0; i+1 < len(env); i += 2 {
		vars[env[i]] = env[i+1]
	}
	cfg, err := config.Load(pconfig.MapEnv(vars))
	if err != nil {
		t.Fatal(err)
	}
	if tweak != nil {
		tweak(&cfg)
	}
	rdb, err := redisx.New(cfg.Redis)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	_ = capabilityv1.File_tollgate_capability_v1_health_proto
	reg, err := registry.FromFiles(protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	authConn, err := grpcx.Dial(iss.Addr, grpcx.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { authConn.Close() })
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	// Revoked grants are followed as Run follows them.
	revoked, err := revocation.Follow(ctx, rdb, cfg.Revocation, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(Deps{
		Config: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: reg, Redis: rdb, Core: authConn,
		Verifier: tokens.NewVerifier(tokens.VerifierOptions{Source: tokens.NewGRPCKeySource(authConn), Audiences: []string{testResource},
			OnCache: m.cache, Revocations: revoked}),
		Revocations: revoked, Metrics: m, Replica: session.NewID()[:16],
	})
	if err != nil {
		t.Fatal(err)
	}
	g.Subscribe(ctx)
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(func() { g.Shutdown(); srv.Close() })
	return g, srv.URL
}

func post(t *testing.T, url, token, sid string, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	if sid != "" {
		req.Header.Set("Mcp-Session-Id", sid)
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// Notifications for a session reach its GET stream on another replica;
// broadcasts reach every replica's streams.
func TestNotificationsReachTheStreamOnAnotherReplica(t *testing.T) {
	f := newListenFixture(t, 2) // the session initialized on B
	b, bURL, aURL, tok, sid := f.gws[0], f.urls[0], f.urls[1], f.tok, f.sid
	res := post(t, bURL, tok, sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	res.Body.Close()

	// The GET stream is held by A.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", aURL+"/mcp", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	stream, err := http.DefaultClient.Do(req)
	if err != nil || stream.StatusCode != 200 {
		t.Fatalf("GET on A: %v %v", err, stream)
	}
	defer stream.Body.Close()
	events := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(stream.Body)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "data:") {
				events <- strings.TrimSpace(strings.TrimPrefix(line, "data:"))
			}
		}
		close(events)
	}()
	expect := func(method, text string) {
		t.Helper()
		for {
			select {
			case e, ok := <-events:
				if !ok {
					t.Fatal("stream ended")
				}
				if strings.Contains(e, "not yours") {
					t.Fatalf("another session's notification reached this stream: %s", e)
				}
				var m struct {
					Method string         `json:"method"`
					Params map[string]any `json:"params"`
				}
				if json.Unmarshal([]byte(e), &m) == nil && m.Method == method && bytes.Contains([]byte(e), []byte(text)) {
					return
				}
			case <-ctx.Done():
				t.Fatalf("no %s with %q on A's stream", method, text)
			}
		}
	}
	// Notify from B: delivered through Redis to A, which holds the stream.
	if err := b.Notify(ctx, sid, "notifications/message", map[string]any{"level": "info", "data": "from B"}); err != nil {
		t.Fatal(err)
	}
	expect("notifications/message", "from B")
	// Another session's notification does not reach this stream; a broadcast does.
	if err := b.Notify(ctx, session.NewID(), "notifications/message", map[string]any{"level": "info", "data": "not yours"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Broadcast(ctx, "notifications/tools/list_changed", nil); err != nil {
		t.Fatal(err)
	}
	expect("notifications/tools/list_changed", "")
}

// listenEvent is one event of a GET /mcp stream.
type listenEvent struct{ id, data string }

// getStream opens a GET /mcp stream of sid on url and returns its events.
func getStream(t *testing.T, ctx context.Context, url, tok, sid, lastEventID string) (*http.Response, <-chan listenEvent) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/mcp", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /mcp: %v", err)
	}
	events := make(chan listenEvent, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(res.Body)
		var e listenEvent
		for sc.Scan() {
			switch line := sc.Text(); {
			case line == "":
				if e.data != "" && !strings.Contains(e.data, `"method":"ping"`) {
					events <- e
				}
				e = listenEvent{}
			case strings.HasPrefix(line, "id: "):
				e.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				e.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return res, events
}

func nextListenEvent(t *testing.T, ctx context.Context, events <-chan listenEvent, text string) listenEvent {
	t.Helper()
	select {
	case e, ok := <-events:
		if !ok {
			t.Fatalf("stream ended before %q", text)
		}
		if !strings.Contains(e.data, text) || e.id == "" {
			t.Fatalf("event %+v, want %q with an id", e, text)
		}
		return e
	case <-ctx.Done():
		t.Fatalf("no event %q", text)
	}
	return listenEvent{}
}

// A GET /mcp stream is served by the gateway itself: the session is
// registered with mcp-go only while a stream is open on the replica (none
// is left behind when it closes), its events are recorded, and a GET with
// Last-Event-ID on any replica replays what came after and continues the
// same stream. Another session's event id is 400.
func TestListenStreamResumesOnAnyReplica(t *testing.T) {
	f := newListenFixture(t, 2) // the session initialized on A
	a, b, aURL, bURL, tok, sid := f.gws[0], f.gws[1], f.urls[0], f.urls[1], f.tok, f.sid
	notify := func(text string) {
		t.Helper()
		if err := b.Notify(context.Background(), sid, "notifications/message", map[string]any{"level": "info", "data": text}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	sctx, closeA := context.WithCancel(ctx)
	res, events := getStream(t, sctx, aURL, tok, sid, "")
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET on A: %d %v", res.StatusCode, res.Header)
	}
	testharness.Eventually(t, 30*time.Second, "the stream's session registered on A", func() (bool, string) {
		return registered(a) == 1, fmt.Sprintf("registered on A: %d", registered(a))
	})
	notify("one")
	first := nextListenEvent(t, ctx, events, "one")
	stream, _, _ := strings.Cut(first.id, "_")
	if !strings.HasPrefix(stream, listenStreamPrefix) {
		t.Errorf("event id %q is not of a stream served by the gateway", first.id)
	}
	closeA()
	res.Body.Close()
	testharness.Eventually(t, 30*time.Second, "nothing left on A once its stream closed", func() (bool, string) {
		return registered(a) == 0, fmt.Sprintf("registered on A: %d", registered(a))
	})

	// Resumed on B: continues the same stream.
	bctx, closeB := context.WithCancel(ctx)
	res, events = getStream(t, bctx, bURL, tok, sid, first.id)
	if res.StatusCode != 200 {
		t.Fatalf("resume on B: %d", res.StatusCode)
	}
	testharness.Eventually(t, 30*time.Second, "the resumed stream's session registered on B", func() (bool, string) {
		return registered(b) == 1, fmt.Sprintf("registered on B: %d", registered(b))
	})
	notify("two")
	second := nextListenEvent(t, ctx, events, "two")
	if s, _, _ := strings.Cut(second.id, "_"); s != stream {
		t.Errorf("resumed stream's event id %q, want stream %s", second.id, stream)
	}
	notify("three")
	nextListenEvent(t, ctx, events, "three")
	closeB()
	res.Body.Close()

	// Resumed on A from the first event: two and three are replayed.
	res, events = getStream(t, ctx, aURL, tok, sid, first.id)
	defer res.Body.Close()
	nextListenEvent(t, ctx, events, "two")
	nextListenEvent(t, ctx, events, "three")

	// Another session's event id.
	other := f.initialize(t, aURL)
	res, _ = getStream(t, ctx, bURL, tok, other, first.id)
	res.Body.Close()
	if res.StatusCode != 400 {
		t.Errorf("another session's Last-Event-ID: %d, want 400", res.StatusCode)
	}
}

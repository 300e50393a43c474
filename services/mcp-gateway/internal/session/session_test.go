package session_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/server"

	"github.com/tollgate/tollgate/services/mcp-gateway/internal/session"
	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// setups are the shared standalone, Sentinel and Cluster deployments the
// contracts run against.
var setups testharness.RedisSetups

func TestMain(m *testing.M) { testharness.MainWithRedisSetups(m, &setups) }

func TestStoreContract(t *testing.T) {
	for _, setup := range setups {
		t.Run(setup.Mode(), func(t *testing.T) { storeContract(t, testharness.RedisClient(t, setup)) })
	}
}

func storeContract(t *testing.T, rdb *redisx.Client) {
	ctx := context.Background()
	s := session.NewStore(rdb, time.Minute)

	id := session.NewID()
	if len(id) != 43 || strings.ContainsAny(id, "+/= ") || id == session.NewID() {
		t.Fatalf("id %q is not 256 random bits in base64url", id)
	}
	if _, err := s.Get(ctx, id); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	if _, err := s.Get(ctx, ""); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("empty id: %v", err)
	}
	rec := session.Record{Subject: "u1", ClientID: "c1", Transport: session.Streamable}
	if err := s.Create(ctx, id, rec); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, id, rec); err == nil {
		t.Fatal("created the same id twice")
	}
	if err := s.Negotiated(ctx, id, "2025-11-25", `{"name":"x"}`, `{}`); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, id)
	if err != nil || got.Subject != "u1" || got.ClientID != "c1" || got.Transport != session.Streamable ||
		got.ProtocolVersion != "2025-11-25" || got.ClientInfo != `{"name":"x"}` {
		t.Fatalf("got %+v, %v", got, err)
	}
	// Nothing in Redis names the session id in the clear.
	keys := testharness.RedisKeys(t, rdb)
	for _, k := range keys {
		if strings.Contains(k, id) {
			t.Errorf("key %s holds the session id", k)
		}
	}
	// Every use renews the idle TTL; nothing lives forever.
	ttl := rdb.PTTL(ctx, keys[0]).Val()
	if ttl <= 0 || ttl > time.Minute {
		t.Errorf("TTL %s", ttl)
	}
	// Negotiated on a session that is gone does not resurrect it.
	gone := session.NewID()
	if err := s.Negotiated(ctx, gone, "2025-11-25", "", ""); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Exists(ctx, gone); ok {
		t.Error("Negotiated created a session")
	}
	if ok, err := s.Delete(ctx, id); !ok || err != nil {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if ok, _ := s.Delete(ctx, id); ok {
		t.Error("deleted twice")
	}
	if _, err := s.Get(ctx, id); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}

	// Expiry.
	short := session.NewStore(rdb, 200*time.Millisecond)
	eid := session.NewID()
	if err := short.Create(ctx, eid, rec); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := short.Get(ctx, eid); errors.Is(err, session.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("idle session did not expire")
		}
		time.Sleep(300 * time.Millisecond) // longer than the TTL: the reads must not keep it alive forever
	}
}

func TestStoreOutage(t *testing.T) {
	r := testharness.StartRedis(t)
	s := session.NewStore(r.Client(), time.Minute)
	ctx := context.Background()
	rec := session.Record{Subject: "u1", ClientID: "c1", Transport: session.Streamable}
	id := session.NewID()
	if err := s.Create(ctx, id, rec); err != nil {
		t.Fatal(err)
	}
	// Redis down: errors, never ErrNotFound.
	r.Stop()
	if _, err := s.Get(ctx, id); err == nil || errors.Is(err, session.ErrNotFound) {
		t.Errorf("Get with Redis down: %v", err)
	}
	if err := s.Create(ctx, session.NewID(), rec); err == nil {
		t.Error("Create with Redis down succeeded")
	}
}

func TestEventsContract(t *testing.T) {
	for _, setup := range setups {
		t.Run(setup.Mode(), func(t *testing.T) { eventsContract(t, testharness.RedisClient(t, setup)) })
	}
}

func eventsContract(t *testing.T, rdb *redisx.Client) {
	ctx := context.Background()
	s := session.NewStore(rdb, time.Minute)
	ev := session.NewEvents(rdb, s, 10)
	var _ server.EventStore = ev

	sid := session.NewID()
	if err := s.Create(ctx, sid, session.Record{Subject: "u"}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i, stream := range []string{"s1", "s1", "s2", "s1"} {
		id, err := ev.StoreEvent(ctx, sid, stream, json.RawMessage(`{"n":`+string(rune('0'+i))+`}`))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	var got []string
	stream, err := ev.ReplayEventsAfter(ctx, sid, ids[0], func(id string, m json.RawMessage) error {
		got = append(got, id+"="+string(m))
		return nil
	})
	if err != nil || stream != "s1" {
		t.Fatalf("replay: %v %s", err, stream)
	}
	if len(got) != 2 || got[0] != ids[1]+`={"n":1}` || got[1] != ids[3]+`={"n":3}` {
		t.Errorf("replay after the first event of s1: %v", got)
	}
	// The last event replays nothing; unknown, malformed and foreign ids fail.
	n := 0
	if _, err := ev.ReplayEventsAfter(ctx, sid, ids[3], func(string, json.RawMessage) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("after the last: %v %d", err, n)
	}
	other := session.NewID()
	for _, bad := range []struct{ sid, id string }{
		{sid, "nonsense"}, {sid, "s1_"}, {sid, "s1_not-an-id"}, {sid, "s1_9999999999999-0"}, {sid, "s3_" + strings.SplitN(ids[0], "_", 2)[1]}, {other, ids[0]},
	} {
		if _, err := ev.ReplayEventsAfter(ctx, bad.sid, bad.id, func(string, json.RawMessage) error { return nil }); !errors.Is(err, server.ErrUnknownEventID) {
			t.Errorf("replay after %q: %v", bad.id, err)
		}
	}
	// A send error stops the replay.
	stop := errors.New("client gone")
	if _, err := ev.ReplayEventsAfter(ctx, sid, ids[0], func(string, json.RawMessage) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("send error: %v", err)
	}
	// Streams are bounded.
	for i := 0; i < 500; i++ {
		if _, err := ev.StoreEvent(ctx, sid, "big", json.RawMessage(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	if l := rdb.XLen(ctx, keyLike(t, testharness.RedisKeys(t, rdb), ":big")).Val(); l > 200 {
		t.Errorf("stream holds %d events, want about 10", l)
	}
	// A session's record, event index and streams are in one hash slot:
	// StoreEvent's transaction and PurgeSession's DEL span them.
	if rdb.Mode() == config.RedisCluster {
		slots := map[int64][]string{}
		for _, k := range testharness.RedisKeys(t, rdb) {
			slot := rdb.ClusterKeySlot(ctx, k).Val()
			slots[slot] = append(slots[slot], k)
		}
		if len(slots) != 1 {
			t.Errorf("one session's keys are in %d slots: %v", len(slots), slots)
		}
	}
	// Purging a live session keeps its events (another replica may resume
	// it); purging an ended one drops them.
	if err := ev.PurgeSession(ctx, sid); err != nil {
		t.Fatal(err)
	}
	if _, err := ev.ReplayEventsAfter(ctx, sid, ids[0], func(string, json.RawMessage) error { return nil }); err != nil {
		t.Errorf("events of a live session purged: %v", err)
	}
	if _, err := s.Delete(ctx, sid); err != nil {
		t.Fatal(err)
	}
	if err := ev.PurgeSession(ctx, sid); err != nil {
		t.Fatal(err)
	}
	if _, err := ev.ReplayEventsAfter(ctx, sid, ids[0], func(string, json.RawMessage) error { return nil }); !errors.Is(err, server.ErrUnknownEventID) {
		t.Errorf("events of an ended session kept: %v", err)
	}
	if keys := testharness.RedisKeys(t, rdb); len(keys) != 0 {
		t.Errorf("keys left: %v", keys)
	}
	if _, err := ev.StoreEvent(ctx, sid, "a_b", nil); err == nil {
		t.Error("stream id with '_' accepted")
	}
}

func keyLike(t *testing.T, keys []string, suffix string) string {
	t.Helper()
	var match []string
	for _, k := range keys {
		if strings.HasSuffix(k, suffix) {
			match = append(match, k)
		}
	}
	if len(match) != 1 {
		t.Fatalf("keys %v", keys)
	}
	return match[0]
}

// The logging level and resource subscriptions live in the session record:
// what one replica's store sets, another's reads; both end with the
// session; subscriptions are capped per session.
func TestLogLevelAndSubscriptionsShared(t *testing.T) {
	r := testharness.StartRedis(t)
	ctx := context.Background()
	a := session.NewStore(r.Client(), time.Minute)
	b := session.NewStore(r.Client(), time.Minute)
	id := session.NewID()
	if err := a.Create(ctx, id, session.Record{Subject: "u1", Transport: session.Streamable}); err != nil {
		t.Fatal(err)
	}
	if l, err := b.LogLevel(ctx, id); err != nil || l != "" {
		t.Fatalf("level before setLevel: %q %v", l, err)
	}
	if err := a.SetLogLevel(ctx, id, "warning"); err != nil {
		t.Fatal(err)
	}
	if l, err := b.LogLevel(ctx, id); err != nil || l != "warning" {
		t.Fatalf("level on the other store: %q %v", l, err)
	}
	if rec, err := b.Get(ctx, id); err != nil || rec.LogLevel != "warning" {
		t.Fatalf("record: %+v %v", rec, err)
	}

	for i := range session.MaxSubscriptions {
		if err := []*session.Store{a, b}[i%2].Subscribe(ctx, id, fmt.Sprintf("ui://widget/%d", i)); err != nil {
			t.Fatalf("subscription %d: %v", i, err)
		}
	}
	if err := a.Subscribe(ctx, id, "ui://widget/0"); err != nil {
		t.Errorf("subscribing again at the cap: %v", err)
	}
	if err := b.Subscribe(ctx, id, "ui://widget/one-more"); !errors.Is(err, session.ErrTooManySubscriptions) {
		t.Errorf("beyond the cap: %v", err)
	}
	if err := a.Subscribe(ctx, id, "ui://"+strings.Repeat("x", session.MaxSubscriptionURI)); !errors.Is(err, session.ErrTooManySubscriptions) {
		t.Errorf("URI beyond the bound: %v", err)
	}
	if err := b.Unsubscribe(ctx, id, "ui://widget/1"); err != nil {
		t.Fatal(err)
	}
	if err := a.Subscribe(ctx, id, "ui://widget/one-more"); err != nil {
		t.Errorf("after an unsubscribe: %v", err)
	}
	if uris, err := b.Subscriptions(ctx, id); err != nil || len(uris) != session.MaxSubscriptions || !slices.Contains(uris, "ui://widget/one-more") || slices.Contains(uris, "ui://widget/1") {
		t.Errorf("subscriptions %d %v", len(uris), err)
	}

	if _, err := a.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := b.SetLogLevel(ctx, id, "debug"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("setLevel after DELETE: %v", err)
	}
	if err := b.Subscribe(ctx, id, "ui://widget/2"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("subscribe after DELETE: %v", err)
	}
	if uris, err := b.Subscriptions(ctx, id); err != nil || len(uris) != 0 {
		t.Errorf("subscriptions after DELETE: %v %v", uris, err)
	}
}

// The client's initialize parameters are stored in pieces of at most 64
// bytes (hash-max-listpack-value). Across a rolling upgrade both versions
// share Redis: this version reads a record the previous one wrote (one
// field per parameter, capabilities "{}" included), and the previous one,
// reading a record this version wrote, finds ownership, transport and
// version as before and, for a split parameter, a first piece that is not
// JSON, which it leaves unrestored, as for a session that never negotiated.
func TestNegotiatedRecordFormats(t *testing.T) {
	for _, setup := range setups {
		t.Run(setup.Mode(), func(t *testing.T) {
			ctx := context.Background()
			rdb := testharness.RedisClient(t, setup)
			s := session.NewStore(rdb, time.Minute)
			info := `{"name":"claude-code","version":"2.0.50","title":"Claude Code","websiteUrl":"https://claude.ai/code"}`
			caps := `{"roots":{"listChanged":true},"sampling":{"tools":{}},"elicitation":{"form":{},"url":{}},"tasks":{"list":{},"cancel":{},"requests":{"sampling":{"createMessage":{}},"elicitation":{"create":{}}}}}`

			// Written by this version, read by it (Get and a replica's Admit).
			id := session.NewID()
			if err := s.Create(ctx, id, session.Record{Subject: "u1", ClientID: "c1", Transport: session.Streamable}); err != nil {
				t.Fatal(err)
			}
			if err := s.Negotiated(ctx, id, "2025-11-25", info, caps); err != nil {
				t.Fatal(err)
			}
			key := rdb.Key("mcp", "session", redisx.Tag(redisx.Hash(id)))
			if enc := rdb.ObjectEncoding(ctx, key).Val(); enc != "listpack" {
				t.Errorf("record with %d + %d bytes of parameters is a %s", len(info), len(caps), enc)
			}
			got, err := s.Get(ctx, id)
			if err != nil || got.ClientInfo != info || got.Capabilities != caps || got.Subject != "u1" || got.ProtocolVersion != "2025-11-25" {
				t.Fatalf("Get: %+v, %v", got, err)
			}
			if got, err := session.NewStore(rdb, time.Minute).Admit(ctx, id, nil); err != nil || got.ClientInfo != info || got.Capabilities != caps {
				t.Fatalf("Admit on another replica: %+v, %v", got, err)
			}
			// As the previous version reads it: HGETALL, one field each.
			m := rdb.HGetAll(ctx, key).Val()
			if m["sub"] != "u1" || m["client_id"] != "c1" || m["transport"] != session.Streamable || m["version"] != "2025-11-25" {
				t.Errorf("ownership fields: %v", m)
			}
			for _, f := range []string{"client_info", "capabilities"} {
				if v := m[f]; len(v) > 64 || json.Valid([]byte(v)) {
					t.Errorf("%s read alone is %q: want a piece of at most 64 bytes that is not JSON", f, v)
				}
			}
			// No capabilities declared: no field.
			none := session.NewID()
			if err := s.Create(ctx, none, session.Record{Subject: "u1", ClientID: "c1", Transport: session.Streamable}); err != nil {
				t.Fatal(err)
			}
			if err := s.Negotiated(ctx, none, "2025-11-25", `{"name":"x","version":"1"}`, `{}`); err != nil {
				t.Fatal(err)
			}
			if rdb.HExists(ctx, rdb.Key("mcp", "session", redisx.Tag(redisx.Hash(none))), "capabilities").Val() {
				t.Error(`capabilities "{}" stored`)
			}
			if got, err := s.Get(ctx, none); err != nil || got.Capabilities != "" || got.ClientInfo != `{"name":"x","version":"1"}` {
				t.Errorf("no capabilities: %+v, %v", got, err)
			}

			// Written by the previous version: every field whole.
			old := session.NewID()
			oldKey := rdb.Key("mcp", "session", redisx.Tag(redisx.Hash(old)))
			if err := rdb.HSet(ctx, oldKey, "created", "1764560000", "sub", "u2", "client_id", "c2", "transport", session.Streamable,
				"version", "2025-06-18", "client_info", info, "capabilities", caps).Err(); err != nil {
				t.Fatal(err)
			}
			rdb.PExpire(ctx, oldKey, time.Minute)
			got, err = s.Get(ctx, old)
			if err != nil || got.ClientInfo != info || got.Capabilities != caps || got.Subject != "u2" || got.ClientID != "c2" ||
				got.Transport != session.Streamable || got.ProtocolVersion != "2025-06-18" {
				t.Fatalf("previous version's record: %+v, %v", got, err)
			}
			for _, empty := range []string{`{}`, ``} {
				rdb.HSet(ctx, oldKey, "capabilities", empty)
				if got, err := session.NewStore(rdb, time.Minute).Admit(ctx, old, nil); err != nil || got.Capabilities != empty {
					t.Errorf("previous version's capabilities %q: %+v, %v", empty, got, err)
				}
			}
		})
	}
}

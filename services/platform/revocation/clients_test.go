package revocation_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/revocation"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// removals records what an OnClientRemoved hook was told, and whether
// ClientRemoved already refused a token issued at the removal then.
type removals struct {
	mu    sync.Mutex
	ids   []string
	early []string
}

func listenRemovals(s *revocation.Set, at time.Time) *removals {
	h := &removals{}
	s.OnClientRemoved(func(id string) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.ids = append(h.ids, id)
		if !s.ClientRemoved(id, at) {
			h.early = append(h.early, id)
		}
	})
	return h
}

func (h *removals) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ids)
}

// TestRemovedClientReachesEverySet: a removal recorded by a Revoker is
// learned by subscribed Sets (announcement or the reload after their
// subscription) and by a Set started later (its first load); each refuses
// the client's tokens issued at or before the removal and accepts those
// issued after it (the client added back), and no other client's. The
// client id is not taken for a grant id.
func TestRemovedClientReachesEverySet(t *testing.T) {
	setups.Run(t, removedClientReachesEverySet)
}

func removedClientReachesEverySet(t *testing.T, r testharness.Clients) {
	ctx := context.Background()
	a, b := newSet(t, r.Client(), revocation.Options{}), newSet(t, r.Client(), revocation.Options{})
	removedAt := time.Now().Truncate(time.Second).Add(500 * time.Millisecond)
	rev := revocation.NewRevoker(r.Client(), time.Hour, nil)
	if err := rev.RemoveClients(ctx, removedAt, "web app", "cli"); err != nil {
		t.Fatal(err)
	}
	later := newSet(t, r.Client(), revocation.Options{NoSubscribe: true, ReconcileInterval: time.Hour})
	for name, s := range map[string]*revocation.Set{"a": a, "b": b, "started later": later} {
		eventually(t, 30*time.Second, name+" refuses web app's tokens", func() bool {
			return s.ClientRemoved("web app", removedAt) && s.ClientRemoved("cli", removedAt)
		})
		for _, iat := range []time.Time{removedAt.Add(-time.Hour), removedAt.Truncate(time.Second)} {
			if !s.ClientRemoved("web app", iat) {
				t.Errorf("%s: a token issued at %v, before the removal at %v, is accepted", name, iat, removedAt)
			}
		}
		if s.ClientRemoved("web app", removedAt.Add(time.Second).Truncate(time.Second)) {
			t.Errorf("%s: a token issued after the removal (the client added back) is refused", name)
		}
		if s.ClientRemoved("other", removedAt) || s.ClientRemoved("", removedAt) || s.ClientRemoved("web", removedAt) {
			t.Errorf("%s: a client that was not removed counts as removed", name)
		}
		if s.Revoked("client") || s.Revoked("web app") || s.Revoked("web") || s.Len() != 0 {
			t.Errorf("%s: a client's removal was taken for a revoked grant (%d grants held)", name, s.Len())
		}
		if n := s.RemovedClients(); n != 2 {
			t.Errorf("%s: RemovedClients = %d, want 2", name, n)
		}
	}
}

// TestRemovedClientLatestRemovalCounts: records of one client from
// several replicas or removals merge to the latest removal, whatever order
// they arrive in; recording the same removal twice is harmless; a removal
// older than the records' lifetime is not recorded.
func TestRemovedClientLatestRemovalCounts(t *testing.T) {
	r := testharness.StartRedis(t)
	ctx := context.Background()
	s := newSet(t, r.Client(), revocation.Options{NoSubscribe: true, ReconcileInterval: time.Hour})
	rev := revocation.NewRevoker(r.Client(), time.Hour, nil)
	t0 := time.Now().Truncate(time.Second).Add(-10 * time.Minute)
	for _, at := range []time.Time{t0.Add(time.Minute), t0.Add(5 * time.Minute), t0, t0.Add(5 * time.Minute)} {
		if err := rev.RemoveClients(ctx, at, "app"); err != nil {
			t.Fatal(err)
		}
	}
	if err := rev.RemoveClients(ctx, time.Now().Add(-2*time.Hour), "ancient"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if !s.ClientRemoved("app", t0.Add(5*time.Minute)) || s.ClientRemoved("app", t0.Add(6*time.Minute)) {
		t.Errorf("app: the latest removal (t0+5m) does not count")
	}
	if s.ClientRemoved("ancient", time.Now().Add(-3*time.Hour)) {
		t.Errorf("a removal older than the records' lifetime was recorded")
	}
	members, err := r.Client().ZRange(ctx, r.Client().Key("revocation", "clients"), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 3 {
		t.Errorf("records %q, want one per distinct removal of app (3), none for ancient", members)
	}
}

// TestOnClientRemovedTellsEachNewRemoval: a hook hears a client's removal
// from the local Revoker, an announcement and a reload that finds a missed
// one, after ClientRemoved refuses; a later removal of the same client is
// told again, the same removal recorded again is not.
func TestOnClientRemovedTellsEachNewRemoval(t *testing.T) {
	r := testharness.StartRedis(t)
	ctx := context.Background()
	rdb := r.Client()
	local := newSet(t, rdb, revocation.Options{NoSubscribe: true, ReconcileInterval: time.Hour})
	other := newSet(t, rdb, revocation.Options{ReconcileInterval: time.Hour})
	at := time.Now().Add(-time.Minute)
	hl, ho := listenRemovals(local, at), listenRemovals(other, at)
	rev := revocation.NewRevoker(rdb, time.Hour, local)
	// The subscription confirms asynchronously: a probe removal tells
	// when announcements arrive.
	eventually(t, 30*time.Second, "other subscribed", func() bool {
		_ = rev.RemoveClients(ctx, time.Now(), "probe")
		return other.ClientRemoved("probe", time.Now().Add(-time.Second))
	})
	if err := rev.RemoveClients(ctx, at, "app"); err != nil {
		t.Fatal(err)
	}
	if err := rev.RemoveClients(ctx, at, "app"); err != nil { // another replica, same time
		t.Fatal(err)
	}
	if err := rev.RemoveClients(ctx, at.Add(time.Second), "app"); err != nil { // removed again, later
		t.Fatal(err)
	}
	if err := rev.RemoveClients(ctx, at, "last"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "other hears last", func() bool { return slices.Contains(ho.got(), "last") })
	// A record whose announcement was missed.
	if err := rdb.ZAdd(ctx, rdb.Key("revocation", "clients"), redis.Z{
		Score:  float64(time.Now().Add(time.Hour).UnixMilli()),
		Member: strconv.FormatInt(at.UnixMilli(), 10) + " missed",
	}).Err(); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*revocation.Set{local, other} {
		if err := s.Reload(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for name, h := range map[string]*removals{"local": hl, "subscribed": ho} {
		got := slices.DeleteFunc(h.got(), func(id string) bool { return id == "probe" })
		if want := []string{"app", "app", "last", "missed"}; !slices.Equal(got, want) {
			t.Errorf("%s hook heard %q, want %q", name, got, want)
		}
		h.mu.Lock()
		if len(h.early) > 0 {
			t.Errorf("%s hook told of %q before ClientRemoved refused", name, h.early)
		}
		h.mu.Unlock()
	}
}

// TestClientAnnouncements: malformed client announcements change nothing;
// a grant announcement in the old form is still read, even for a grant
// named "client"; and a client announcement is never read as a grant —
// the old form's reader sees "client" followed by an expiry that is not a
// number, which is what a verifier older than client records ignores.
func TestClientAnnouncements(t *testing.T) {
	r := testharness.StartRedis(t)
	rdb := r.Client()
	ctx := context.Background()
	s := newSet(t, rdb, revocation.Options{ReconcileInterval: time.Hour})
	ch := rdb.Key("revocation")
	now := time.Now()
	ms := func(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
	exp := ms(now.Add(time.Hour))
	eventually(t, 30*time.Second, "subscribed", func() bool {
		rdb.Publish(ctx, ch, "probe "+exp)
		return s.Revoked("probe")
	})
	for _, p := range []string{
		"client",
		"client ",
		"client " + ms(now) + " " + exp,
		"client " + ms(now) + " " + exp + " ",
		"client x " + exp + " bad-removal",
		"client " + ms(now) + " x bad-expiry",
		"client -5 " + exp + " negative",
		"client " + ms(now) + " " + exp + " \xff\xfe",
		"client " + ms(now) + " " + exp + " " + strings.Repeat("x", revocation.MaxClientIDLength+1),
	} {
		rdb.Publish(ctx, ch, p)
	}
	rdb.Publish(ctx, ch, "client "+ms(now)+" "+exp+" good client")
	eventually(t, 30*time.Second, "the good client announcement", func() bool { return s.ClientRemoved("good client", now) })
	for _, id := range []string{"bad-removal", "bad-expiry", "negative", "", " ", "\xff\xfe"} {
		if s.ClientRemoved(id, now) {
			t.Errorf("malformed announcement removed client %q", id)
		}
	}
	if n := s.RemovedClients(); n != 1 {
		t.Errorf("RemovedClients = %d, want 1", n)
	}
	if s.Revoked("client") || s.Len() != 1 {
		t.Errorf("a client announcement was read as a grant (%d grants held)", s.Len())
	}
	rdb.Publish(ctx, ch, "client "+exp)
	eventually(t, 30*time.Second, `old-form announcement of the grant "client"`, func() bool { return s.Revoked("client") })
	if s.RemovedClients() != 1 {
		t.Errorf("the old-form grant announcement was read as a client's")
	}
}

func TestRemoveClientsRefusesBadIDs(t *testing.T) {
	r := testharness.StartRedis(t)
	rev := revocation.NewRevoker(r.Client(), time.Hour, nil)
	for _, id := range []string{"", strings.Repeat("x", revocation.MaxClientIDLength+1), "\xff"} {
		if err := rev.RemoveClients(context.Background(), time.Now(), "fine", id); !errors.Is(err, revocation.ErrInvalidClientID) {
			t.Errorf("RemoveClients(%q) = %v, want ErrInvalidClientID", id, err)
		}
	}
	if n, err := r.Client().ZCard(context.Background(), r.Client().Key("revocation", "clients")).Result(); err != nil || n != 0 {
		t.Errorf("%d records (%v) after refused calls, want none (a bad id records nothing)", n, err)
	}
}

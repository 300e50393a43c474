package revocation_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/revocation"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// heard records what an OnRevoke hook was told, and whether Revoked
// already answered true for each grant when it was.
type heard struct {
	mu      sync.Mutex
	ids     []string
	early   []string // told before Revoked answered true
	set     *revocation.Set
	removed func()
}

func listen(s *revocation.Set) *heard {
	h := &heard{set: s}
	h.removed = s.OnRevoke(func(id string) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.ids = append(h.ids, id)
		if !s.Revoked(id) {
			h.early = append(h.early, id)
		}
	})
	return h
}

func (h *heard) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ids)
}

func (h *heard) count(id string) int {
	n := 0
	for _, x := range h.got() {
		if x == id {
			n++
		}
	}
	return n
}

// TestOnRevokeTellsEachNewRevocationOnce: a hook hears each grant the Set
// learns is revoked — by announcement, by a reload that finds a record
// whose announcement was missed, by the local Revoker — once, after
// Revoked answers true; not a revocation extended, not grants held before
// it registered, and nothing after remove.
func TestOnRevokeTellsEachNewRevocationOnce(t *testing.T) {
	setups.Run(t, onRevokeTellsEachNewRevocationOnce)
}

func onRevokeTellsEachNewRevocationOnce(t *testing.T, r testharness.Clients) {
	ctx := context.Background()
	rdb := r.Client()
	rev := revocation.NewRevoker(rdb, time.Hour, nil)
	before, g1, g2, missed := "grant-before", "grant-1", "grant-2", "grant-missed"
	if err := rev.Revoke(ctx, before); err != nil {
		t.Fatal(err)
	}
	s := newSet(t, rdb, revocation.Options{ReconcileInterval: time.Hour})
	eventually(t, 30*time.Second, "grant-before loaded", func() bool { return s.Revoked(before) })
	h, gone := listen(s), listen(s)

	// Announced: heard once, the extension of a held record not again.
	// The subscription may confirm after the first Revoke; its reload then
	// finds the record, which is still one telling.
	if err := rev.Revoke(ctx, g1); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "hook hears grant-1", func() bool { return h.count(g1) == 1 })
	if err := rev.Revoke(ctx, g1); err != nil {
		t.Fatal(err)
	}
	// Announcements arrive in order: once grant-2 is heard, grant-1's
	// second announcement has been handled.
	gone.removed()
	if err := rev.Revoke(ctx, g2); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "hook hears grant-2", func() bool { return h.count(g2) == 1 })

	// A record whose announcement was missed: the reload tells it.
	exp := float64(time.Now().Add(time.Hour).UnixMilli())
	if err := rdb.ZAdd(ctx, rdb.Key("revocation", "grants"), redis.Z{Score: exp, Member: missed}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if n := h.count(missed); n != 1 {
		t.Errorf("grant-missed heard %d times after the reload that found it, want 1", n)
	}
	if err := s.Reload(ctx); err != nil {
		t.Fatal(err)
	}

	want := []string{g1, g2, missed}
	if got := h.got(); !slices.Equal(got, want) {
		t.Errorf("hook heard %q, want %q (each new revocation once; grant-before was held before it registered)", got, want)
	}
	if got := gone.got(); !slices.Equal(got, []string{g1}) {
		t.Errorf("removed hook heard %q, want only grant-1, before its remove", got)
	}
	h.mu.Lock()
	if len(h.early) > 0 {
		t.Errorf("hook told of %q before Revoked answered true", h.early)
	}
	h.mu.Unlock()
}

// TestOnRevokeHearsTheLocalRevoker: the revoking replica's hooks are told
// before Revoke returns, without a subscription.
func TestOnRevokeHearsTheLocalRevoker(t *testing.T) {
	r := testharness.StartRedis(t)
	local := newSet(t, r.Client(), revocation.Options{NoSubscribe: true, ReconcileInterval: time.Hour})
	h := listen(local)
	if err := revocation.NewRevoker(r.Client(), time.Hour, local).Revoke(context.Background(), "grant-local"); err != nil {
		t.Fatal(err)
	}
	if got := h.got(); !slices.Equal(got, []string{"grant-local"}) {
		t.Errorf("hook heard %q right after Revoke, want [grant-local]", got)
	}
}

// TestOnRevokeHookMayReload: a reload tells its hooks after its lock is
// released, so a hook that reloads (or waits for a reload elsewhere) does
// not deadlock the Set's reloads (session-18 review).
func TestOnRevokeHookMayReload(t *testing.T) {
	r := testharness.StartRedis(t)
	rdb := r.Client()
	ctx := context.Background()
	s := newSet(t, rdb, revocation.Options{NoSubscribe: true, ReconcileInterval: time.Hour})
	reloaded := make(chan error, 1)
	s.OnRevoke(func(string) { reloaded <- s.Reload(ctx) })
	exp := float64(time.Now().Add(time.Hour).UnixMilli())
	if err := rdb.ZAdd(ctx, rdb.Key("revocation", "grants"), redis.Z{Score: exp, Member: "grant-reload"}).Err(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Reload(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Reload did not return: its hook's own Reload waits for the lock Reload holds")
	}
	if err := <-reloaded; err != nil {
		t.Errorf("the hook's Reload: %v", err)
	}
}

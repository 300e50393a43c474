package testharness_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// TestRedisSetups starts the Cluster and the Sentinel setup, writes through
// a client of each and checks the deployment is what it claims to be.
func TestRedisSetups(t *testing.T) {
	ctx := context.Background()
	cluster, err := testharness.NewRedisCluster()
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	sentinel, err := testharness.NewRedisSentinel()
	if err != nil {
		t.Fatal(err)
	}
	defer sentinel.Close()

	cc := testharness.RedisClient(t, cluster)
	for i := range 30 { // spread over the masters
		if err := cc.Set(ctx, cc.Key(fmt.Sprint(i)), "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	holding := 0
	err = cc.UniversalClient.(*redis.ClusterClient).ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		size, err := n.DBSize(ctx).Result()
		mu.Lock()
		defer mu.Unlock()
		if size > 0 {
			holding++
		}
		return err
	})
	if err != nil || holding != 3 {
		t.Errorf("%d of the cluster's masters hold keys (%v), want 3", holding, err)
	}
	t.Run("PauseNode", func(t *testing.T) { testPauseNode(t, cluster, cc) })

	sc := testharness.RedisClient(t, sentinel)
	if err := sc.Set(ctx, sc.Key("k"), "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	master, err := sentinel.MasterAddr()
	if err != nil || master != sentinel.Master.Addr() {
		t.Errorf("sentinels name master %q (%v), want %s", master, err, sentinel.Master.Addr())
	}
}

// testPauseNode: a paused node answers nothing — a command written to it
// times out — and, once resumed, runs what it was sent meanwhile.
func testPauseNode(t *testing.T, cluster *testharness.RedisCluster, cc *redisx.Client) {
	ctx := context.Background()
	key := cc.Key("{pause}k")
	addr, err := cluster.MasterOf(key)
	if err != nil {
		t.Fatal(err)
	}
	// A connection made before the pause (a new one's handshake would time out).
	nc := redis.NewClient(&redis.Options{Addr: addr, Username: testharness.RedisACLUser, Password: testharness.RedisACLPassword,
		ReadTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer nc.Close()
	if err := nc.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	resume, err := cluster.PauseNode(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resume() })
	var ne interface{ Timeout() bool }
	if err := nc.Set(ctx, key, "sent while paused", 0).Err(); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("SET to a paused node: %v, want a read timeout", err)
	}
	if err := resume(); err != nil {
		t.Fatal(err)
	}
	testharness.Eventually(t, 5*time.Second, "the SET sent while paused runs once resumed", func() (bool, string) {
		v, err := cc.Get(ctx, key).Result()
		return v == "sent while paused", fmt.Sprintf("%q %v", v, err)
	})
}

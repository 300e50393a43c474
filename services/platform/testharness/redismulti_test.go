package testharness_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

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
	sc := testharness.RedisClient(t, sentinel)
	if err := sc.Set(ctx, sc.Key("k"), "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	master, err := sentinel.MasterAddr()
	if err != nil || master != sentinel.Master.Addr() {
		t.Errorf("sentinels name master %q (%v), want %s", master, err, sentinel.Master.Addr())
	}
}

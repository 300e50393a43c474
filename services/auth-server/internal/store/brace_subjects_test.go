package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/auth-server/internal/oauth"
	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// Subjects whose names hold hash-tag braces (an upstream IdP chooses the
// subject) cannot move a grant's keys out of their slots: on standalone,
// Sentinel and Cluster, grants of such subjects are created and refreshed,
// every key left in Redis has a TTL, and each subject's sweep mark exists,
// lives at most a minute, and (Cluster) is in its index's hash slot.
func TestBraceSubjectsKeepKeysInTheirSlots(t *testing.T) {
	subjects := []string{"{a}", "}{", "x{y}z", "{", "}", "{}", "{{user-1}}"}
	for _, setup := range setups {
		t.Run(setup.Mode(), func(t *testing.T) {
			ctx := context.Background()
			s, rdb := newStore(t, setup, 30*time.Second)
			for i, sub := range subjects {
				for j := range 2 {
					id := fmt.Sprintf("brace-%d-%d", i, j)
					r := request(t, s, id)
					r.Session.(*oauth.Session).Subject = sub
					if err := s.CreateAuthorizeCodeSession(ctx, id+".c", r); err != nil {
						t.Fatal(err)
					}
					if err := redeem(ctx, s, id+".c", r, id+".rt"); err != nil {
						t.Fatalf("subject %q: redeem: %v", sub, err)
					}
					if err := rotate(ctx, s, r, id+".rt", id+".rt2"); err != nil {
						t.Fatalf("subject %q: refresh: %v", sub, err)
					}
				}
			}
			keys := testharness.RedisKeys(t, rdb)
			for _, k := range keys {
				if ttl := rdb.PTTL(ctx, k).Val(); ttl == -1 {
					t.Errorf("key %q has no TTL", k)
				}
			}
			for _, sub := range subjects {
				index := rdb.Key("as", "subject-grants", redisx.Hash(sub))
				if n := rdb.ZCard(ctx, index).Val(); n != 2 {
					t.Errorf("subject %q: index %s holds %d members, want 2", sub, index, n)
				}
				marks := 0
				for _, k := range keys {
					if !strings.Contains(k, "subject-sweep") || !strings.Contains(k, redisx.Tag(index)) {
						continue
					}
					marks++
					if ttl := rdb.PTTL(ctx, k).Val(); ttl <= 0 || ttl > time.Minute {
						t.Errorf("subject %q: sweep mark %s TTL %v, want at most a minute", sub, k, ttl)
					}
					if setup.Mode() == config.RedisCluster {
						if a, b := rdb.ClusterKeySlot(ctx, k).Val(), rdb.ClusterKeySlot(ctx, index).Val(); a != b {
							t.Errorf("subject %q: sweep mark %s in slot %d, the index in %d", sub, k, a, b)
						}
					}
				}
				if marks < 1 || marks > 2 { // 2: the test crossed a minute
					t.Errorf("subject %q: %d sweep marks, want 1 (2 across a minute)", sub, marks)
				}
			}
		})
	}
}

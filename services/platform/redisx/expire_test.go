package redisx_test

import (
	"context"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// TestExpireAtLeast: a key without an expiry gets one, a sooner expiry is
// extended, a later one is kept, and a missing key is not created — in a
// pipeline and in a MULTI/EXEC transaction, on a real Redis.
func TestExpireAtLeast(t *testing.T) {
	rdb := testharness.StartRedis(t).Client()
	ctx := context.Background()
	for _, tx := range []bool{false, true} {
		name := map[bool]string{false: "pipeline", true: "transaction"}[tx]
		key := func(k string) string { return rdb.Key("expire", name, k) }
		if err := rdb.Set(ctx, key("none"), "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.Set(ctx, key("sooner"), "v", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.Set(ctx, key("later"), "v", 3*time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		pipe := rdb.Pipeline()
		if tx {
			pipe = rdb.TxPipeline()
		}
		for _, k := range []string{"none", "sooner", "later", "missing"} {
			redisx.ExpireAtLeast(ctx, pipe, key(k), time.Hour)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for k, want := range map[string][2]time.Duration{
			"none":    {time.Hour - 5*time.Second, time.Hour},
			"sooner":  {time.Hour - 5*time.Second, time.Hour},
			"later":   {3*time.Hour - 5*time.Second, 3 * time.Hour},
			"missing": {-2 * time.Nanosecond, -2 * time.Nanosecond}, // go-redis: TTL of a missing key
		} {
			got, err := rdb.TTL(ctx, key(k)).Result()
			if err != nil {
				t.Fatal(err)
			}
			if got < want[0] || got > want[1] {
				t.Errorf("%s: key %q has TTL %s after ExpireAtLeast(1h), want %s to %s", name, k, got, want[0], want[1])
			}
		}
	}
}

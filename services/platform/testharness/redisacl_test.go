package testharness_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// RestrictKeys makes the keys under a prefix read-only (or write-only) to
// the default user and leaves every other key as it was, until restore;
// AddUser's Config logs in as the new user, held to its rules.
func TestRedisACLHelpers(t *testing.T) {
	r := testharness.StartRedis(t)
	ctx := context.Background()
	c := r.Client()
	set := func(key string) error { return c.Do(ctx, "SET", key, "v").Err() }
	for _, k := range []string{"tollgate:revocation:g1", "tollgate:as:x", "tollgate", "other", "tollgate:revocatio"} {
		if err := set(k); err != nil {
			t.Fatalf("SET %s before: %v", k, err)
		}
	}

	restore := r.RestrictKeys(t, "tollgate:revocation:", "%R")
	if err := set("tollgate:revocation:g2"); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("SET under the read-only prefix: %v, want NOPERM", err)
	}
	if err := c.Do(ctx, "GET", "tollgate:revocation:g1").Err(); err != nil {
		t.Errorf("GET under the read-only prefix: %v", err)
	}
	for _, k := range []string{"tollgate:as:y", "other2", "tollgate:revocatioX", "x", "tollgate:revocation"} {
		if err := set(k); err != nil {
			t.Errorf("SET %s, outside the prefix: %v", k, err)
		}
	}
	restore()
	if err := set("tollgate:revocation:g2"); err != nil {
		t.Errorf("SET after restore: %v", err)
	}

	r.RestrictKeys(t, "tollgate:as:consent:", "%W")
	if err := c.Do(ctx, "GET", "tollgate:as:consent:a").Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("GET under the write-only prefix: %v, want NOPERM", err)
	}
	if err := set("tollgate:as:consent:a"); err != nil {
		t.Errorf("SET under the write-only prefix: %v", err)
	}

	cfg := r.AddUser(t, "reader", "reader-password", "~*", "+@connection", "+get")
	rc, err := redisx.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := rc.Do(ctx, "GET", "other").Err(); err != nil {
		t.Errorf("GET as reader: %v", err)
	}
	if err := rc.Do(ctx, "SET", "other", "w").Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("SET as reader: %v, want NOPERM", err)
	}
}

package redisx_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

func TestClientFromURL(t *testing.T) {
	r := testharness.StartRedis(t, "--requirepass", "pw-123")
	ctx := context.Background()

	c, err := redisx.New(config.Redis{URL: "redis://:pw-123@" + r.Addr() + "/3", KeyPrefix: "t:"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Options().DB != 3 || c.Key("code", "abc") != "t:code:abc" {
		t.Errorf("db=%d key=%s", c.Options().DB, c.Key("code", "abc"))
	}
	// A password from REDIS_PASSWORD overrides the URL's.
	c2, _ := redisx.New(config.Redis{URL: "redis://" + r.Addr() + "/0", Password: "pw-123"})
	defer c2.Close()
	if err := c2.Ping(ctx); err != nil {
		t.Errorf("password override: %v", err)
	}
	bad, _ := redisx.New(config.Redis{URL: "redis://:wrong@" + r.Addr() + "/0"})
	defer bad.Close()
	if err := bad.Ping(ctx); err == nil {
		t.Error("wrong password accepted")
	}
	if _, err := redisx.New(config.Redis{URL: "redis://:secretpw@host:notaport/0"}); err == nil || strings.Contains(err.Error(), "secretpw") {
		t.Errorf("bad URL error leaks or passes: %v", err)
	}
}

func TestDurabilityCheck(t *testing.T) {
	ctx := context.Background()
	volatile := testharness.StartRedis(t)
	if err := volatile.Client().CheckDurable(ctx); err == nil {
		t.Error("a Redis without persistence passed the durability check")
	}
	durable := testharness.StartRedis(t, "--appendonly", "yes")
	if err := durable.Client().CheckDurable(ctx); err != nil {
		t.Errorf("AOF Redis refused: %v", err)
	}
}

func TestOutageFailsFast(t *testing.T) {
	r := testharness.StartRedis(t)
	c := r.Client()
	r.Stop()
	start := time.Now()
	err := c.Ping(context.Background())
	if err == nil || !redisx.IsUnavailable(err) {
		t.Fatalf("ping after stop: %v", err)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("outage took %s to report", d)
	}
	r.Start()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("client did not recover after Redis came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestHashIsStableAndHidesTheSecret(t *testing.T) {
	h := redisx.Hash("secret-code")
	if h != redisx.Hash("secret-code") || len(h) != 64 || strings.Contains(h, "secret") {
		t.Errorf("hash = %s", h)
	}
}

func TestOpenRefusesVolatileRedisWhenAsked(t *testing.T) {
	ctx := context.Background()
	volatile := testharness.StartRedis(t)
	cfg := volatile.Config()
	cfg.CheckDurable = true
	if _, err := redisx.Open(ctx, cfg); err == nil || !strings.Contains(err.Error(), "persistence") {
		t.Errorf("volatile Redis with CheckDurable: %v", err)
	}
	cfg.CheckDurable = false
	c, err := redisx.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	durable := testharness.StartRedis(t, "--appendonly", "yes")
	cfg = durable.Config()
	cfg.CheckDurable = true
	c, err = redisx.Open(ctx, cfg)
	if err != nil {
		t.Errorf("durable Redis refused: %v", err)
	} else {
		c.Close()
	}
}

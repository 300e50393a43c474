package redisx_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// Not a test of Redis failures: timeouts of a second, not the production
// 80ms, which a -race build on a loaded CI machine missed (i/o timeout).
func TestClientFromURL(t *testing.T) {
	r := testharness.StartRedis(t, "--requirepass", "pw-123")
	ctx := context.Background()

	c, err := redisx.New(config.Redis{URL: "redis://:pw-123@" + r.Addr() + "/3", KeyPrefix: "t:", DialTimeout: time.Second, CommandTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if c.UniversalClient.(*redis.Client).Options().DB != 3 || c.Key("code", "abc") != "t:code:abc" {
		t.Errorf("db=%d key=%s", c.UniversalClient.(*redis.Client).Options().DB, c.Key("code", "abc"))
	}
	// A password from REDIS_PASSWORD overrides the URL's.
	c2, _ := redisx.New(config.Redis{URL: "redis://" + r.Addr() + "/0", Password: "pw-123", DialTimeout: time.Second, CommandTimeout: time.Second})
	defer c2.Close()
	if err := c2.Ping(ctx); err != nil {
		t.Errorf("password override: %v", err)
	}
	bad, _ := redisx.New(config.Redis{URL: "redis://:wrong@" + r.Addr() + "/0", DialTimeout: time.Second, CommandTimeout: time.Second})
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

// dialCounter is a go-redis hook that counts dial attempts.
type dialCounter struct{ n atomic.Int64 }

func (d *dialCounter) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d.n.Add(1)
		return next(ctx, network, addr)
	}
}
func (d *dialCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (d *dialCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestRefusedRedisIsDialedOnce: a command that needs a new connection to a
// Redis refusing connections fails after one dial, in every mode. go-redis
// dials 5 times 100 ms apart by default: with Redis killed every request
// that reached Redis (the breaker's first three, then each probe) took
// 400 ms to answer 503 — measured 0.41–0.74 s on every service of the
// fleet, readiness included, where failures.md promised about a millisecond.
func TestRefusedRedisIsDialedOnce(t *testing.T) {
	r := testharness.StartRedis(t)
	r.Stop()
	c, err := redisx.New(productionTimeouts(r))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d := &dialCounter{}
	c.AddHook(d)
	if err := c.Ping(context.Background()); !redisx.IsUnavailable(err) {
		t.Fatalf("ping with Redis stopped: %v, want unavailable", err)
	}
	if n := d.n.Load(); n != 1 {
		t.Errorf("%d dials for one command, want 1: the breaker, not a retry loop, handles outages", n)
	}
	for _, cfg := range []config.Redis{
		{Mode: config.RedisSentinel, URL: "redis://127.0.0.1:1?addr=127.0.0.1:2&master_name=m"},
		{Mode: config.RedisCluster, URL: "redis://127.0.0.1:1?addr=127.0.0.1:2"},
	} {
		c, err := redisx.New(cfg)
		if err != nil {
			t.Fatalf("%s: %v", cfg.Mode, err)
		}
		var retries int
		var dialTimeout time.Duration
		switch u := c.UniversalClient.(type) {
		case *redis.ClusterClient:
			retries, dialTimeout = u.Options().DialerRetries, u.Options().DialTimeout
		case *redis.Client:
			retries, dialTimeout = u.Options().DialerRetries, u.Options().DialTimeout
		}
		if retries != 1 {
			t.Errorf("%s: DialerRetries %d, want 1", cfg.Mode, retries)
		}
		// redisx's dialer: an attempt and, after a timeout, one of twice as long.
		if want := 3 * config.DefaultRedisDialTimeout; dialTimeout != want {
			t.Errorf("%s: go-redis DialTimeout %s, want %s", cfg.Mode, dialTimeout, want)
		}
		c.Close()
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

// TestOpenRefusesAnEvictingRedisWhenAsked: every key Tollgate writes has a
// TTL, so under volatile-lru (the default parameter group of ElastiCache,
// Azure Cache and Memorystore), or any other policy but noeviction, a full
// Redis evicts grants, sessions and the revocation records — a verifier
// started afterwards accepted a revoked grant's access tokens (brk46b). The
// production check refuses such a server, naming the policy and the fix;
// noeviction passes, and with the check off the policy is the operator's.
func TestOpenRefusesAnEvictingRedisWhenAsked(t *testing.T) {
	ctx := context.Background()
	for _, policy := range []string{"volatile-lru", "allkeys-lru", "volatile-ttl", "allkeys-random"} {
		r := testharness.StartRedis(t, "--appendonly", "yes", "--maxmemory", "64mb", "--maxmemory-policy", policy)
		cfg := r.Config()
		cfg.CheckDurable = true
		c, err := redisx.Open(ctx, cfg)
		if err == nil {
			c.Close()
			t.Errorf("maxmemory-policy %s: Open succeeded; want ErrEvictingServer", policy)
			continue
		}
		if !errors.Is(err, redisx.ErrEvictingServer) || !strings.Contains(err.Error(), "maxmemory-policy is "+policy) || !strings.Contains(err.Error(), "noeviction") {
			t.Errorf("maxmemory-policy %s: %v; want ErrEvictingServer naming the policy and noeviction", policy, err)
		}
		cfg.CheckDurable = false
		if c, err := redisx.Open(ctx, cfg); err != nil {
			t.Errorf("maxmemory-policy %s, REDIS_CHECK_DURABLE=false: %v", policy, err)
		} else {
			c.Close()
		}
	}
	r := testharness.StartRedis(t, "--appendonly", "yes", "--maxmemory", "64mb", "--maxmemory-policy", "noeviction")
	cfg := r.Config()
	cfg.CheckDurable = true
	if c, err := redisx.Open(ctx, cfg); err != nil {
		t.Errorf("noeviction Redis refused: %v", err)
	} else {
		c.Close()
	}
}

// TestHungRedisFailsFastAndRecovers: a Redis that stops answering (SIGSTOP)
// fails commands within the command timeout, then the breaker refuses them
// at once with ErrUnavailable; after SIGCONT the half-open probe closes the
// breaker again. Bounds are generous (the machine is shared); the measured
// latencies are in BenchmarkCommandWhileRedisIsHung and docs/operations.
func TestHungRedisFailsFastAndRecovers(t *testing.T) {
	r := testharness.StartRedis(t)
	c, err := redisx.New(productionTimeouts(r))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, c.Key("k"), "v", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	r.Pause()
	for i := 0; i < 10; i++ {
		start := time.Now()
		err := c.Get(ctx, c.Key("k")).Err()
		if err == nil || !redisx.IsUnavailable(err) {
			t.Fatalf("get %d on a hung redis: %v", i, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("get %d took %s on a hung redis", i, d)
		}
	}
	if c.CircuitState() != "open" {
		t.Fatalf("breaker %s after 10 failures", c.CircuitState())
	}
	if err := c.Get(ctx, c.Key("k")).Err(); !errors.Is(err, redisx.ErrUnavailable) {
		t.Fatalf("open breaker: %v, want ErrUnavailable", err)
	}
	// Pipelines go through the breaker too.
	if _, err := c.Pipelined(ctx, func(p redis.Pipeliner) error { p.Get(ctx, c.Key("k")); return nil }); !errors.Is(err, redisx.ErrUnavailable) {
		t.Fatalf("pipeline on an open breaker: %v", err)
	}
	r.Resume()
	waitRecovered(t, c)
	if v, err := c.Get(ctx, c.Key("k")).Result(); err != nil || v != "v" {
		t.Fatalf("after resume: %q %v", v, err)
	}
}

// TestBreakerIgnoresAnswersAndCallers: a missing key, an error reply and a
// caller's cancelled context are not Redis failures and never open the breaker.
func TestBreakerIgnoresAnswersAndCallers(t *testing.T) {
	r := testharness.StartRedis(t)
	c := r.Client()
	ctx := context.Background()
	if err := c.Set(ctx, c.Key("s"), "x", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for i := 0; i < 5; i++ {
		if err := c.Get(ctx, c.Key("missing")).Err(); !errors.Is(err, redis.Nil) {
			t.Fatalf("missing key: %v", err)
		}
		if err := c.LPush(ctx, c.Key("s"), "y").Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGTYPE") {
			t.Fatalf("wrong type: %v", err)
		}
		if err := c.Get(cancelled, c.Key("s")).Err(); err == nil {
			t.Fatal("cancelled context: no error")
		}
	}
	if c.CircuitState() != "closed" {
		t.Fatalf("breaker %s after answers and cancelled callers", c.CircuitState())
	}
}

// productionTimeouts is r's configuration with the default timeouts.
func productionTimeouts(r *testharness.Redis) config.Redis {
	cfg := r.Config()
	cfg.DialTimeout, cfg.CommandTimeout, cfg.BreakerOpen = 0, 0, 0
	return cfg
}

func waitRecovered(t *testing.T, c *redisx.Client) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for err := c.Ping(context.Background()); err != nil; err = c.Ping(context.Background()) {
		if time.Now().After(deadline) {
			t.Fatalf("client did not recover (breaker %s): %v", c.CircuitState(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkCommandWhileRedisIsHung measures how long a command takes to
// fail while Redis is hung and the breaker is open (the steady state of an
// outage), and how long recovery takes after Redis resumes.
func BenchmarkCommandWhileRedisIsHung(b *testing.B) {
	r := testharness.StartRedis(b)
	c, err := redisx.New(productionTimeouts(r))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	r.Pause()
	for i := 0; i < 5; i++ {
		_ = c.Ping(ctx)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.Get(ctx, c.Key("k")).Err(); err == nil {
			b.Fatal("hung redis answered")
		}
	}
	b.StopTimer()
	r.Resume()
	start := time.Now()
	for c.Ping(ctx) != nil {
		if time.Since(start) > 10*time.Second {
			b.Fatal("no recovery")
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.ReportMetric(float64(time.Since(start).Milliseconds()), "recovery-ms")
}

// TestRestartedRedisCostsNoCommand: after Redis restarts, the pooled
// connections to the old process are dead; none of them may fail a
// command. go-redis finds them before use with its per-command pool check
// (connCheck: a non-blocking MSG_PEEK read sees the peer's FIN) and dials
// anew. With that check off — a dialer returning a net.Conn without
// syscall.Conn, tried 2026-12-01 — each dead connection failed its next
// command with EOF (40 of 40 here: three opened the breaker, and each
// half-open probe then met another dead connection), so a Redis restart
// became an outage of up to pool size × BreakerOpen
// (docs/benchmarks/auth-server-history.md, session "authlog").
func TestRestartedRedisCostsNoCommand(t *testing.T) {
	r := testharness.StartRedis(t)
	c, err := redisx.New(r.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	var wg sync.WaitGroup
	for range 16 { // 16 pooled connections, each busy at once
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.Do(context.Background(), "DEBUG", "SLEEP", "0.05").Err() }()
	}
	wg.Wait()
	if n := c.PoolStats().IdleConns; n < 8 {
		t.Fatalf("only %d pooled connections", n)
	}
	r.Stop()
	r.Start()
	for i := range 40 {
		if err := c.Set(context.Background(), "k", i, 0).Err(); err != nil {
			t.Fatalf("command %d after the restart: %v (breaker %s)", i, err, c.CircuitState())
		}
	}
}

// REDIS_URL's pool_size is the operator's and reaches the client;
// min_idle_conns and max_active_conns, which change how the client fails
// (config's tuned options), are refused by New itself.
func TestPoolOptionsFromURL(t *testing.T) {
	r := testharness.StartRedis(t)
	cfg := r.Config()
	cfg.URL += "?pool_size=3&max_idle_conns=2"
	c, err := redisx.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o := c.UniversalClient.(*redis.Client).Options()
	if o.PoolSize != 3 || o.MaxIdleConns != 2 || o.MinIdleConns != 0 || o.MaxActiveConns != 0 {
		t.Errorf("pool_size=3&max_idle_conns=2: PoolSize %d, MaxIdleConns %d, MinIdleConns %d, MaxActiveConns %d; want 3, 2, 0, 0",
			o.PoolSize, o.MaxIdleConns, o.MinIdleConns, o.MaxActiveConns)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, opt := range []string{"min_idle_conns=2", "max_active_conns=2"} {
		cfg := r.Config()
		cfg.URL += "?" + opt
		name, _, _ := strings.Cut(opt, "=")
		if c, err := redisx.New(cfg); err == nil || !strings.Contains(err.Error(), "option "+name+" is set by the client") {
			if c != nil {
				_ = c.Close()
			}
			t.Errorf("%s: %v, want it refused", opt, err)
		}
	}
}

// replyError is a Redis error reply no redis-server the tests run can
// give: Redis before 6.0's wording.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

// TestIsAuthFailure: the replies refusing the client's credentials, from a
// real redis-server where it gives them, are auth failures; a command's
// refusal (NOPERM, WRONGTYPE) and a missing key are not.
func TestIsAuthFailure(t *testing.T) {
	ctx := context.Background()
	withPassword := testharness.StartRedis(t, "--requirepass", "right-password")
	// HELLO renamed away: go-redis falls back to AUTH <password>, which a
	// Redis without a password refuses (HELLO itself takes any password).
	withoutPassword := testharness.StartRedis(t, "--rename-command", "HELLO", "")
	reply := func(r *testharness.Redis, password string, cmd ...any) error {
		cfg := r.Config()
		cfg.Password = password
		c, err := redisx.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.Do(ctx, cmd...).Err()
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"WRONGPASS", reply(withPassword, "wrong", "PING"), true},
		{"NOAUTH", reply(withPassword, "", "PING"), true},
		{"a password to a Redis without one", reply(withoutPassword, "some-password", "PING"), true},
		{"the same before Redis 6.0", replyError("ERR Client sent AUTH, but no password is set"), true},
		{"WRONGTYPE", func() error {
			_ = reply(withPassword, "right-password", "SET", "s", "x")
			return reply(withPassword, "right-password", "LPUSH", "s", "y")
		}(), false},
		{"missing key", reply(withPassword, "right-password", "GET", "missing"), false},
		{"NOPERM", func() error {
			c, err := redisx.New(withoutPassword.AddUser(t, "reader", "reader-password", "~*", "+@connection", "+get"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			return c.Set(ctx, "k", "v", 0).Err()
		}(), false},
		{"no error", reply(withoutPassword, "", "PING"), false},
	} {
		if tc.name != "no error" && tc.err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if got := redisx.IsAuthFailure(tc.err); got != tc.want {
			t.Errorf("%s: IsAuthFailure(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

package redisx_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer = testharness.SyncBuffer

// TestRefusedPasswordOpensTheBreakerAndRecovers: a Redis refusing the
// client's password (WRONGPASS, NOAUTH, a password sent to a Redis that
// has none) refuses every new connection until an operator acts, so it
// opens the breaker as an unreachable Redis does: after 3 refusals every
// command fails at once with ErrUnavailable, without dialling Redis, and
// the log names the refusal as the cause. Once Redis takes the password
// (here CONFIG SET requirepass, as a Redis restarted with its
// configuration), the first command the breaker lets through after
// REDIS_BREAKER_OPEN succeeds: recovery needs no restart and comes with
// the first probe.
func TestRefusedPasswordOpensTheBreakerAndRecovers(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// serverPassword is Redis's requirepass (none: HELLO is renamed
		// away, so go-redis falls back to AUTH <password>, which such a
		// Redis refuses; HELLO takes any password for a user without one).
		serverPassword, clientPassword, reply string
	}{
		{"wrong password", "right-password", "wrong-password", "WRONGPASS"},
		{"no password", "right-password", "", "NOAUTH"},
		{"a password to a Redis without one", "", "some-password", "ERR AUTH <password> called without any password configured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"--requirepass", tc.serverPassword}
			if tc.serverPassword == "" {
				args = []string{"--rename-command", "HELLO", ""}
			}
			r := testharness.StartRedis(t, args...)
			// The operator's connection, authenticated before the change
			// and kept (one connection: CONFIG SET does not log it out).
			admin := redis.NewClient(&redis.Options{Addr: r.Addr(), Password: tc.serverPassword, PoolSize: 1, MaxRetries: -1})
			t.Cleanup(func() { _ = admin.Close() })
			if err := admin.Ping(ctx).Err(); err != nil {
				t.Fatal(err)
			}

			var logs syncBuffer
			cfg := r.Config() // REDIS_BREAKER_OPEN: the default, 500 ms
			cfg.Password = tc.clientPassword
			c, err := redisx.New(cfg, redisx.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			d := &dialCounter{}
			c.AddHook(d)

			for i := range 3 {
				if err := c.Set(ctx, c.Key("k"), "v", time.Minute).Err(); !redisx.IsAuthFailure(err) || !strings.Contains(err.Error(), tc.reply) {
					t.Fatalf("command %d: %v, want %s", i, err, tc.reply)
				}
			}
			if s := c.CircuitState(); s != "open" {
				t.Fatalf("breaker %s after 3 refused passwords, want open", s)
			}
			dials := d.n.Load()
			for i := range 5 {
				if err := c.Get(ctx, c.Key("k")).Err(); !errors.Is(err, redisx.ErrUnavailable) {
					t.Fatalf("command %d on the open breaker: %v, want ErrUnavailable", i, err)
				}
			}
			if n := d.n.Load() - dials; n != 0 {
				t.Errorf("%d dials while the breaker was open, want none", n)
			}
			if l := logs.String(); !strings.Contains(l, `"to":"open"`) || !strings.Contains(l, `"cause":"`+tc.reply) {
				t.Errorf("log %q: want the breaker's opening with the cause %s", l, tc.reply)
			}

			if err := admin.ConfigSet(ctx, "requirepass", tc.clientPassword).Err(); err != nil {
				t.Fatal(err)
			}
			fixed := time.Now()
			for {
				err := c.Set(ctx, c.Key("k"), "v", time.Minute).Err()
				if errors.Is(err, redisx.ErrUnavailable) {
					if time.Since(fixed) > 10*time.Second {
						t.Fatalf("breaker still %s 10 s after the password was fixed", c.CircuitState())
					}
					time.Sleep(10 * time.Millisecond)
					continue
				}
				if err != nil {
					t.Fatalf("the first command the breaker let through after the fix: %v (breaker %s)", err, c.CircuitState())
				}
				break
			}
			t.Logf("served again %s after the password was fixed (REDIS_BREAKER_OPEN 500 ms)", time.Since(fixed).Round(time.Millisecond))
			if s := c.CircuitState(); s != "closed" {
				t.Errorf("breaker %s after a successful probe, want closed", s)
			}
		})
	}
}

// TestBreakerIgnoresNOPERM: an ACL refusing a command or key (NOPERM) is
// a refusal of that command, not of the connection — the capability
// backends' restricted user meets it on every connection's CLIENT SETINFO
// — and never opens the breaker.
func TestBreakerIgnoresNOPERM(t *testing.T) {
	r := testharness.StartRedis(t)
	ctx := context.Background()
	cfg := r.AddUser(t, "reader", "reader-password", "~*", "+@connection", "+get")
	c, err := redisx.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	for i := range 5 {
		if err := c.Set(ctx, c.Key("k"), "v", time.Minute).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
			t.Fatalf("set %d under the ACL user: %v, want NOPERM", i, err)
		}
	}
	if s := c.CircuitState(); s != "closed" {
		t.Errorf("breaker %s after NOPERM replies, want closed", s)
	}
}

// Package redisx builds the fleet's Redis client from configuration and
// holds the conventions every Redis store follows: one key prefix, keys
// derived from secrets are hashes, and every key has a TTL. The client fails
// fast while Redis is down: short timeouts, no retries, and a circuit
// breaker (sony/gobreaker) that answers at once while Redis is known to be
// down and probes it again every BreakerOpen.
package redisx

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/config"
)

// Client is a Redis client with the install's key prefix and a circuit
// breaker around every command (see breaker.go).
type Client struct {
	*redis.Client
	prefix  string
	breaker *breaker
}

// Option adjusts New.
type Option func(*options)

type options struct {
	log *slog.Logger
	reg prometheus.Registerer
}

// WithLogger logs every circuit-breaker state change on log.
func WithLogger(log *slog.Logger) Option { return func(o *options) { o.log = log } }

// WithMetrics registers tollgate_redis_circuit_state and
// tollgate_redis_circuit_rejections_total on reg.
func WithMetrics(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// New returns a client for cfg. rediss:// URLs use TLS 1.2 or newer.
//
// Failing fast: dials and every socket read and write are bounded by
// cfg.DialTimeout and cfg.CommandTimeout (80ms by default), a failed command
// is not retried (no retry storms), and after three consecutive connection
// failures the circuit breaker opens: every command then fails at once with
// an error wrapping ErrUnavailable, for cfg.BreakerOpen (500ms), after which
// one command probes Redis and closes the breaker again if it succeeds.
func New(cfg config.Redis, opt ...Option) (*Client, error) {
	var o options
	for _, f := range opt {
		f(&o)
	}
	opts, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", errors.New(strings.ReplaceAll(err.Error(), cfg.URL, "<REDIS_URL>")))
	}
	if cfg.Password != "" {
		opts.Password = cfg.Password
	}
	if opts.TLSConfig != nil && opts.TLSConfig.MinVersion < tls.VersionTLS12 {
		opts.TLSConfig.MinVersion = tls.VersionTLS12
	}
	orDefault := func(d, def time.Duration) time.Duration {
		if d <= 0 {
			return def
		}
		return d
	}
	dial := orDefault(cfg.DialTimeout, config.DefaultRedisDialTimeout)
	cmd := orDefault(cfg.CommandTimeout, config.DefaultRedisCommandTimeout)
	opts.DialTimeout = dial
	opts.ReadTimeout = cmd
	opts.WriteTimeout = cmd
	// Waiting for a free pooled connection: under a burst every connection
	// can be busy with a healthy Redis, so this is longer than a command;
	// while Redis is down the open breaker refuses commands before they wait.
	opts.PoolTimeout = max(10*cmd, time.Second)
	opts.MaxRetries = -1 // no retries: the breaker, not a retry loop, handles outages
	c := &Client{Client: redis.NewClient(opts), prefix: cfg.KeyPrefix}
	c.breaker, err = newBreaker(orDefault(cfg.BreakerOpen, config.DefaultRedisBreakerOpen), o.log, o.reg)
	if err != nil {
		_ = c.Client.Close()
		return nil, err
	}
	c.AddHook(c.breaker)
	return c, nil
}

// CircuitState is the breaker's state: "closed" (Redis answers), "open"
// (commands fail at once) or "half-open" (one probe in flight).
func (c *Client) CircuitState() string { return c.breaker.state() }

// Key joins parts under the install's prefix: Key("code", h) = "tollgate:code:h".
func (c *Client) Key(parts ...string) string {
	return c.prefix + strings.Join(parts, ":")
}

// Prefix is the install's key prefix.
func (c *Client) Prefix() string { return c.prefix }

// Hash returns the hex SHA-256 of a secret, for use in keys: secrets are
// never stored or used as keys in the clear.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Ping reports whether Redis answers; it goes through the breaker, so while
// the breaker is open it fails at once with ErrUnavailable.
func (c *Client) Ping(ctx context.Context) error { return c.Client.Ping(ctx).Err() }

// CheckDurable fails unless the server persists data (AOF or RDB snapshots),
// so a production install does not silently lose sessions and grants on restart.
func (c *Client) CheckDurable(ctx context.Context) error {
	info, err := c.Info(ctx, "persistence").Result()
	if err != nil {
		return fmt.Errorf("redis persistence check: %w", err)
	}
	if strings.Contains(info, "aof_enabled:1") {
		return nil
	}
	save, err := c.ConfigGet(ctx, "save").Result()
	if err == nil && strings.TrimSpace(save["save"]) != "" {
		return nil
	}
	return errors.New("redis has neither AOF nor RDB persistence; enable appendonly or set REDIS_CHECK_DURABLE=false if persistence is managed elsewhere")
}

// IsUnavailable reports whether err means Redis could not be reached (as
// opposed to a missing key): a connection error, a timeout or an open
// circuit breaker (ErrUnavailable).
func IsUnavailable(err error) bool {
	return err != nil && !errors.Is(err, redis.Nil)
}

// Open returns a client for cfg (with opt, as New) and, when cfg.CheckDurable is set (the
// production default), refuses a server without persistence: sessions,
// grants and refresh-token families must survive a Redis restart. Redis
// being unreachable at start-up is not an error (readiness reports it and
// the client reconnects), but a reachable, volatile Redis is.
func Open(ctx context.Context, cfg config.Redis, opt ...Option) (*Client, error) {
	c, err := New(cfg, opt...)
	if err != nil {
		return nil, err
	}
	if !cfg.CheckDurable {
		return c, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(cctx); err != nil {
		return c, nil
	}
	if err := c.CheckDurable(cctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

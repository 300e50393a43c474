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

// Client is a Redis client for one of the three deployment modes
// (config.RedisStandalone, RedisSentinel, RedisCluster) with the install's
// key prefix and a circuit breaker around every command (see breaker.go).
// The embedded UniversalClient is a *redis.Client (standalone; sentinel,
// built by redis.NewFailoverClient) or a *redis.ClusterClient.
type Client struct {
	redis.UniversalClient
	mode    string
	prefix  string
	breaker *breaker
	giveUp  time.Duration // GiveUpAfter
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

// tuning is what Tollgate sets in every mode, whatever the URL says.
type tuning struct {
	dial, cmd, pool time.Duration
	tls             *tls.Config
}

func (t tuning) applyTLS(c *tls.Config) *tls.Config {
	if c == nil {
		return nil
	}
	c = c.Clone()
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	if t.tls != nil {
		c.RootCAs = t.tls.RootCAs
	}
	return c
}

// dialAttempts is how often a connection is dialled before the command that
// needed it fails: once. go-redis dials 5 times 100 ms apart by default
// (DialerRetries, DialerRetryTimeout), so a refused connection took 400 ms
// to fail a request, and a dial timing out 5 × REDIS_DIAL_TIMEOUT + 400 ms;
// the breaker, not a retry loop, handles outages. config refuses
// dialer_retries in REDIS_URL.
const dialAttempts = 1

// New returns a client for cfg: cfg.Mode picks go-redis's URL parser and
// client (redis.ParseURL and NewClient, ParseFailoverURL and
// NewFailoverClient, ParseClusterURL and NewClusterClient; see
// config.Redis.URL for the forms). rediss:// URLs use TLS 1.2 or newer,
// verified against cfg.TLSCAFile's CAs when set.
//
// Failing fast, the same in every mode: dials and every socket read and
// write are bounded by cfg.DialTimeout and cfg.CommandTimeout (80ms by
// default), a failed command is not retried (no retry storms), and after
// three consecutive connection failures the circuit breaker opens: every
// command then fails at once with an error wrapping ErrUnavailable, for
// cfg.BreakerOpen (500ms), after which one command probes Redis and closes
// the breaker again if it succeeds. There is one breaker per client, also
// in cluster mode: with Redis's default cluster-require-full-coverage a
// cluster that lost a master refuses commands until a replica takes over.
func New(cfg config.Redis, opt ...Option) (*Client, error) {
	var o options
	for _, f := range opt {
		f(&o)
	}
	if _, err := cfg.ParseTarget(); err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	orDefault := func(d, def time.Duration) time.Duration {
		if d <= 0 {
			return def
		}
		return d
	}
	t := tuning{
		dial: orDefault(cfg.DialTimeout, config.DefaultRedisDialTimeout),
		cmd:  orDefault(cfg.CommandTimeout, config.DefaultRedisCommandTimeout),
	}
	// Waiting for a free pooled connection: under a burst every connection
	// can be busy with a healthy Redis, so this is longer than a command;
	// while Redis is down the open breaker refuses commands before they wait.
	t.pool = max(10*t.cmd, time.Second)
	if cfg.TLSCAFile != "" {
		roots, err := config.LoadCAFile(cfg.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("redis tls: %w", err)
		}
		t.tls = &tls.Config{RootCAs: roots}
	}
	c := &Client{mode: cfg.Mode, prefix: cfg.KeyPrefix, giveUp: t.pool + 2*t.cmd}
	var reload func()
	switch cfg.Mode {
	case config.RedisCluster:
		opts, _ := redis.ParseClusterURL(cfg.URL)
		if cfg.Password != "" {
			opts.Password = cfg.Password
		}
		opts.TLSConfig = t.applyTLS(opts.TLSConfig)
		opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = t.dial, t.cmd, t.cmd, t.pool
		opts.DialerRetries = dialAttempts
		// No retries (the breaker handles outages), but MOVED/ASK
		// redirections are followed: they are how a cluster answers after a
		// failover or a slot migration, not a failure. (go-redis v9.23's
		// cluster client also tries a command again after a network error
		// or timeout, up to MaxRedirects times, whatever MaxRetries says.)
		opts.MaxRetries = -1
		opts.MaxRedirects = 3
		// go-redis reloads the slot map on MOVED/ASK and otherwise only every
		// ClusterStateReloadInterval (60s by default): after a master dies,
		// commands for its slots keep going to the dead address until then.
		// A connection failure reloads it at once (the breaker's onFailure;
		// go-redis coalesces reloads), and this bounds the rest.
		opts.ClusterStateReloadInterval = 10 * time.Second
		cc := redis.NewClusterClient(opts)
		reload = func() { cc.ReloadState(context.Background()) }
		c.UniversalClient = cc
	case config.RedisSentinel:
		opts, _ := redis.ParseFailoverURL(cfg.URL)
		if cfg.Password != "" {
			opts.Password = cfg.Password
		}
		if cfg.SentinelPassword != "" {
			opts.SentinelPassword = cfg.SentinelPassword
		}
		opts.TLSConfig = t.applyTLS(opts.TLSConfig)
		opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = t.dial, t.cmd, t.cmd, t.pool
		opts.DialerRetries = dialAttempts
		opts.MaxRetries = -1
		c.UniversalClient = redis.NewFailoverClient(opts)
	default:
		c.mode = config.RedisStandalone
		opts, _ := redis.ParseURL(cfg.URL)
		if cfg.Password != "" {
			opts.Password = cfg.Password
		}
		opts.TLSConfig = t.applyTLS(opts.TLSConfig)
		opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = t.dial, t.cmd, t.cmd, t.pool
		opts.DialerRetries = dialAttempts
		opts.MaxRetries = -1 // no retries: the breaker, not a retry loop, handles outages
		c.UniversalClient = redis.NewClient(opts)
	}
	var err error
	c.breaker, err = newBreaker(orDefault(cfg.BreakerOpen, config.DefaultRedisBreakerOpen), o.log, o.reg)
	if err != nil {
		_ = c.UniversalClient.Close()
		return nil, err
	}
	c.breaker.onFailure = reload
	c.AddHook(c.breaker)
	return c, nil
}

// GiveUpAfter is how long a command's caller waits for one attempt of it
// once issued, a connection at hand: for a pooled connection, to write
// the command, for its reply (a new connection's dial and handshake come
// on top; so do a script's EVAL after a NOSCRIPT, and, in Cluster mode,
// go-redis's further attempts after a timeout). A command that reaches
// Redis later than this after it was issued — queued in a socket while
// Redis hung — most likely runs for a caller that has already answered
// its client.
func (c *Client) GiveUpAfter() time.Duration { return c.giveUp }

// Mode is the deployment mode: config.RedisStandalone, RedisSentinel or RedisCluster.
func (c *Client) Mode() string { return c.mode }

// CircuitState is the breaker's state: "closed" (Redis answers), "open"
// (commands fail at once) or "half-open" (one probe in flight).
func (c *Client) CircuitState() string { return c.breaker.state() }

// Key joins parts under the install's prefix: Key("code", h) = "tollgate:code:h".
func (c *Client) Key(parts ...string) string {
	return c.prefix + strings.Join(parts, ":")
}

// Tag wraps s in braces, a Redis Cluster hash tag: keys whose first {…}
// holds the same s are in one hash slot, so one script, transaction or
// multi-key command may touch them together (docs/operations/redis.md
// lists every key and its tag). s must not contain braces.
func Tag(s string) string { return "{" + s + "}" }

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
func (c *Client) Ping(ctx context.Context) error { return c.UniversalClient.Ping(ctx).Err() }

// CheckDurable fails unless the server persists data (AOF or RDB snapshots),
// so a production install does not silently lose sessions and grants on
// restart. In cluster mode every master is checked; in sentinel mode the
// current master.
func (c *Client) CheckDurable(ctx context.Context) error {
	if cc, ok := c.UniversalClient.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			if err := checkDurable(ctx, n); err != nil {
				return fmt.Errorf("cluster node %s: %w", n.Options().Addr, err)
			}
			return nil
		})
	}
	return checkDurable(ctx, c.UniversalClient)
}

func checkDurable(ctx context.Context, c redis.Cmdable) error {
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

// Package redisx builds the fleet's Redis client from configuration and
// holds the conventions every Redis store follows: one key prefix, keys
// derived from secrets are hashes, and every key has a TTL.
package redisx

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/config"
)

// Client is a Redis client with the install's key prefix.
type Client struct {
	*redis.Client
	prefix string
}

// New returns a client for cfg. rediss:// URLs use TLS 1.2 or newer. Timeouts
// are short so that a Redis outage answers 503 quickly instead of hanging.
func New(cfg config.Redis) (*Client, error) {
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
	opts.DialTimeout = 2 * time.Second
	opts.ReadTimeout = 2 * time.Second
	opts.WriteTimeout = 2 * time.Second
	opts.PoolTimeout = 3 * time.Second
	opts.MaxRetries = 1
	return &Client{Client: redis.NewClient(opts), prefix: cfg.KeyPrefix}, nil
}

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

// Ping is a readiness check.
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
// opposed to a missing key).
func IsUnavailable(err error) bool {
	return err != nil && !errors.Is(err, redis.Nil)
}

// Open returns a client for cfg and, when cfg.CheckDurable is set (the
// production default), refuses a server without persistence: sessions,
// grants and refresh-token families must survive a Redis restart. Redis
// being unreachable at start-up is not an error (readiness reports it and
// the client reconnects), but a reachable, volatile Redis is.
func Open(ctx context.Context, cfg config.Redis) (*Client, error) {
	c, err := New(cfg)
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

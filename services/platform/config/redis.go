package config

import (
	"net/url"
	"strings"
	"time"
)

// Redis is how a service reaches Redis.
type Redis struct {
	// URL is redis://[user:password@]host:port/db or rediss:// for TLS.
	URL string
	// Password overrides the URL's password (REDIS_PASSWORD or REDIS_PASSWORD_FILE).
	Password string
	// KeyPrefix is prepended to every key, so several installs can share a server.
	KeyPrefix string
	// CheckDurable makes start-up refuse a Redis without persistence (production).
	CheckDurable bool
	// DialTimeout bounds connecting, TLS handshake included (REDIS_DIAL_TIMEOUT,
	// default 80ms). Zero means the default.
	DialTimeout time.Duration
	// CommandTimeout bounds each socket read and write of a command
	// (REDIS_COMMAND_TIMEOUT, default 80ms): a hung Redis fails a request
	// after this long, and after that the circuit breaker fails requests at once.
	CommandTimeout time.Duration
	// BreakerOpen is how long the circuit breaker fails every command
	// before it lets one probe through (REDIS_BREAKER_OPEN, default 500ms).
	BreakerOpen time.Duration
}

// Defaults of the Redis timeouts (see docs/reference/configuration.md).
const (
	DefaultRedisDialTimeout    = 80 * time.Millisecond
	DefaultRedisCommandTimeout = 80 * time.Millisecond
	DefaultRedisBreakerOpen    = 500 * time.Millisecond
)

// LoadRedis reads REDIS_URL, REDIS_PASSWORD(_FILE), REDIS_KEY_PREFIX,
// REDIS_CHECK_DURABLE, REDIS_DIAL_TIMEOUT, REDIS_COMMAND_TIMEOUT and
// REDIS_BREAKER_OPEN.
func LoadRedis(s *Source, production bool) Redis {
	return Redis{
		URL:            s.Secret("REDIS_URL"),
		Password:       s.Secret("REDIS_PASSWORD"),
		KeyPrefix:      s.String("REDIS_KEY_PREFIX", "tollgate:"),
		CheckDurable:   s.Bool("REDIS_CHECK_DURABLE", production),
		DialTimeout:    s.Duration("REDIS_DIAL_TIMEOUT", DefaultRedisDialTimeout),
		CommandTimeout: s.Duration("REDIS_COMMAND_TIMEOUT", DefaultRedisCommandTimeout),
		BreakerOpen:    s.Duration("REDIS_BREAKER_OPEN", DefaultRedisBreakerOpen),
	}
}

// Validate adds Redis problems to p. Production needs an explicit URL.
func (r Redis) Validate(p *Problems, production bool) {
	if r.URL == "" {
		p.Addf("REDIS_URL: required")
		return
	}
	u, err := url.Parse(r.URL)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
		p.Addf("REDIS_URL: not a redis://, rediss:// or unix:// URL")
		return
	}
	if production && u.Scheme == "redis" && !isLoopback(u.Hostname()) && r.Password == "" && u.User == nil {
		p.Addf("REDIS_URL: production Redis needs a password (in the URL or REDIS_PASSWORD)")
	}
	if strings.ContainsAny(r.KeyPrefix, " \n") {
		p.Addf("REDIS_KEY_PREFIX: must not contain spaces")
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"REDIS_DIAL_TIMEOUT", r.DialTimeout}, {"REDIS_COMMAND_TIMEOUT", r.CommandTimeout}, {"REDIS_BREAKER_OPEN", r.BreakerOpen}} {
		if d.v < 0 || d.v > time.Minute {
			p.Addf("%s: must be between 0 and 1m", d.key)
		}
	}
}

func isLoopback(host string) bool {
	return host == "localhost" || strings.HasPrefix(host, "127.") || host == "::1"
}

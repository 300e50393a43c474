package config

import (
	"net/url"
	"strings"
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
}

// LoadRedis reads REDIS_URL, REDIS_PASSWORD(_FILE), REDIS_KEY_PREFIX and
// REDIS_CHECK_DURABLE.
func LoadRedis(s *Source, production bool) Redis {
	return Redis{
		URL:          s.Secret("REDIS_URL"),
		Password:     s.Secret("REDIS_PASSWORD"),
		KeyPrefix:    s.String("REDIS_KEY_PREFIX", "tollgate:"),
		CheckDurable: s.Bool("REDIS_CHECK_DURABLE", production),
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
}

func isLoopback(host string) bool {
	return host == "localhost" || strings.HasPrefix(host, "127.") || host == "::1"
}

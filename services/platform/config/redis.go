package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis deployment modes (REDIS_MODE).
const (
	// RedisStandalone is one Redis server (or a proxy that looks like one).
	RedisStandalone = "standalone"
	// RedisSentinel is a master with replicas watched by Redis Sentinel: the
	// client asks the sentinels for the current master and follows failovers.
	RedisSentinel = "sentinel"
	// RedisCluster is Redis Cluster: keys are spread over hash slots and
	// every key of one atomic operation shares a hash tag
	// (docs/operations/redis.md).
	RedisCluster = "cluster"
)

// Redis is how a service reaches Redis.
type Redis struct {
	// Mode is standalone, sentinel or cluster (REDIS_MODE, default standalone).
	Mode string
	// URL is in go-redis's URL form for Mode (REDIS_URL):
	//   - standalone: redis://[user:password@]host:port/db (redis.ParseURL);
	//   - cluster: redis://[user:password@]host:port?addr=host2:port2&addr=…
	//     (redis.ParseClusterURL), one seed node per address;
	//   - sentinel: redis://[sentinel-user:sentinel-password@]sentinel1:port/db
	//     ?master_name=NAME&addr=sentinel2:port&addr=…[&username=U&password=P]
	//     (redis.ParseFailoverURL): the host and addr= are the sentinels, the
	//     userinfo authenticates to the sentinels, username=/password= to
	//     the master and replicas.
	// rediss:// uses TLS (1.2 or newer) in every mode; unix:// is standalone only.
	URL string
	// Password overrides the data nodes' password of the URL (REDIS_PASSWORD or REDIS_PASSWORD_FILE).
	Password string
	// SentinelPassword overrides the sentinels' password of the URL in
	// sentinel mode (REDIS_SENTINEL_PASSWORD or REDIS_SENTINEL_PASSWORD_FILE).
	SentinelPassword string
	// TLSCAFile is a PEM bundle of the CAs that sign the Redis servers'
	// certificates (REDIS_TLS_CA_FILE); empty means the system roots.
	TLSCAFile string
	// KeyPrefix is prepended to every key, so several installs can share a server.
	KeyPrefix string
	// CheckDurable makes start-up refuse a Redis without persistence (production).
	CheckDurable bool
	// AllowPlaintextPassword lets production send a password over plain
	// redis:// to a server that is not on loopback
	// (REDIS_ALLOW_PLAINTEXT_PASSWORD, default false): only for a path the
	// network cannot read, such as a service mesh's mTLS. PlaintextPassword
	// says when it is in use; the services log a warning then.
	AllowPlaintextPassword bool
	// DialTimeout bounds connecting, TLS handshake included (REDIS_DIAL_TIMEOUT,
	// default 80ms).
	DialTimeout time.Duration
	// CommandTimeout bounds each socket read and write of a command
	// (REDIS_COMMAND_TIMEOUT, default 80ms): a hung Redis fails a request
	// after this long, and after that the circuit breaker fails requests at once.
	CommandTimeout time.Duration
	// BreakerOpen is how long the circuit breaker fails every command
	// before it lets one probe through (REDIS_BREAKER_OPEN, default 500ms).
	BreakerOpen time.Duration
	// Each of the three is more than 0 and at most 1m. Zero,
	// in a Redis built in Go, is the default; LoadRedis refuses a variable
	// set to 0 or less, and an unset one is the default.
}

// Defaults of the Redis timeouts (see docs/reference/configuration.md).
const (
	DefaultRedisDialTimeout    = 80 * time.Millisecond
	DefaultRedisCommandTimeout = 80 * time.Millisecond
	DefaultRedisBreakerOpen    = 500 * time.Millisecond
	// redisTimeoutMax bounds REDIS_DIAL_TIMEOUT, REDIS_COMMAND_TIMEOUT and
	// REDIS_BREAKER_OPEN (1m, as the problems say).
	redisTimeoutMax = time.Minute
)

// LoadRedis reads REDIS_MODE, REDIS_URL, REDIS_PASSWORD(_FILE),
// REDIS_SENTINEL_PASSWORD(_FILE), REDIS_TLS_CA_FILE, REDIS_KEY_PREFIX,
// REDIS_CHECK_DURABLE, REDIS_ALLOW_PLAINTEXT_PASSWORD, REDIS_DIAL_TIMEOUT,
// REDIS_COMMAND_TIMEOUT and REDIS_BREAKER_OPEN (each refused when set to 0
// or less: 0 would be taken for the default).
func LoadRedis(s *Source, production bool) Redis {
	return Redis{
		Mode:             strings.ToLower(s.String("REDIS_MODE", RedisStandalone)),
		URL:              s.Secret("REDIS_URL"),
		Password:         s.Secret("REDIS_PASSWORD"),
		SentinelPassword: s.Secret("REDIS_SENTINEL_PASSWORD"),
		TLSCAFile:        s.String("REDIS_TLS_CA_FILE", ""),
		KeyPrefix:        s.String("REDIS_KEY_PREFIX", "tollgate:"),
		CheckDurable:     s.Bool("REDIS_CHECK_DURABLE", production),

		AllowPlaintextPassword: s.Bool("REDIS_ALLOW_PLAINTEXT_PASSWORD", false),
		DialTimeout:            redisTimeout(s, "REDIS_DIAL_TIMEOUT", DefaultRedisDialTimeout),
		CommandTimeout:         redisTimeout(s, "REDIS_COMMAND_TIMEOUT", DefaultRedisCommandTimeout),
		BreakerOpen:            redisTimeout(s, "REDIS_BREAKER_OPEN", DefaultRedisBreakerOpen),
	}
}

// redisTimeout is key's duration, def when unset. Set to 0 or less it is a
// problem: a zero Redis timeout is the default to redisx, so
// REDIS_COMMAND_TIMEOUT=0 (meant as "no timeout", say) would silently
// have been 80ms.
func redisTimeout(s *Source, key string, def time.Duration) time.Duration {
	d := s.Duration(key, def)
	if d <= 0 {
		s.problems.Addf("%s: %s is out of range: must be more than 0 and at most 1m (unset: %s)", key, d, def)
		return def
	}
	return d
}

// RedisTarget is what a REDIS_URL names once parsed by go-redis's parser
// for its mode: the addresses to dial first and the credentials.
type RedisTarget struct {
	// Addrs are the server (standalone), the seed nodes (cluster) or the
	// sentinels (sentinel).
	Addrs []string
	// MasterName is the sentinels' name of the master (sentinel only).
	MasterName string
	// Username and Password authenticate to the data nodes.
	Username, Password string
	// SentinelUsername and SentinelPassword authenticate to the sentinels.
	SentinelUsername, SentinelPassword string
	TLS                                bool
	DB                                 int
}

// tuned are the URL options Tollgate sets from its own variables; in the
// URL they would be overwritten silently, so they are refused.
var tuned = map[string]string{
	"dial_timeout": "REDIS_DIAL_TIMEOUT", "read_timeout": "REDIS_COMMAND_TIMEOUT",
	"write_timeout": "REDIS_COMMAND_TIMEOUT", "max_retries": "the circuit breaker (no retries)",
	"pool_timeout": "REDIS_COMMAND_TIMEOUT (10× it, at least 1s)", "max_redirects": "the client (3)",
	"dialer_retries": "the client (one dial; the circuit breaker handles outages)", "dialer_retry_timeout": "the client (one dial; the circuit breaker handles outages)",
	"pipeline_pool_size":   "the client (pipelines share the commands' pool, so REDIS_COMMAND_TIMEOUT and REDIS_DIAL_TIMEOUT bound them)",
	"max_concurrent_dials": "the client (dials are not queued, so REDIS_DIAL_TIMEOUT bounds them)",
	// The pool's size (pool_size), its idle connections (max_idle_conns,
	// conn_max_idle_time, conn_max_lifetime, pool_fifo) are the operator's:
	// no bound above depends on them. These two change how the client
	// fails, so they are the client's:
	"min_idle_conns":   "the client (no warm pool: during an outage its background refill dials fill go-redis's dial-error limit and keep every dial failing past the circuit breaker's probe)",
	"max_active_conns": "the client (no cap on connections: past it a command fails at once instead of waiting for a turn, and the circuit breaker counts that as Redis failing; size the pool with pool_size)",
}

// ParseTarget parses URL with go-redis's parser for Mode. Errors never
// contain the URL (it may hold a password).
func (r Redis) ParseTarget() (RedisTarget, error) {
	redact := func(err error) error {
		msg := err.Error()
		if r.URL != "" {
			msg = strings.ReplaceAll(msg, r.URL, "<REDIS_URL>")
		}
		if u, perr := url.Parse(r.URL); perr == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok && pw != "" {
				msg = strings.ReplaceAll(msg, pw, "<password>")
			}
		}
		return errors.New(strings.TrimPrefix(msg, "redis: "))
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		return RedisTarget{}, errors.New("not a URL")
	}
	for k := range u.Query() {
		if v, ok := tuned[k]; ok {
			return RedisTarget{}, fmt.Errorf("option %s is set by %s; remove it from the URL", k, v)
		}
	}
	var t RedisTarget
	switch r.Mode {
	case RedisStandalone, "":
		if u.Query().Has("addr") {
			return t, errors.New("addr= lists several nodes: set REDIS_MODE=cluster or REDIS_MODE=sentinel, or remove it")
		}
		o, err := redis.ParseURL(r.URL)
		if err != nil {
			return t, redact(err)
		}
		if err := poolInRange(o.PoolSize, o.MaxIdleConns); err != nil {
			return t, err
		}
		t = RedisTarget{Addrs: []string{o.Addr}, Username: o.Username, Password: o.Password, TLS: o.TLSConfig != nil, DB: o.DB}
	case RedisCluster:
		if p := strings.Trim(u.Path, "/"); p != "" && p != "0" {
			return t, errors.New("Redis Cluster has only database 0: remove the path")
		}
		if u.Query().Has("master_name") {
			return t, errors.New("master_name= is for REDIS_MODE=sentinel")
		}
		o, err := redis.ParseClusterURL(r.URL)
		if err != nil {
			return t, redact(err)
		}
		if err := poolInRange(o.PoolSize, o.MaxIdleConns); err != nil {
			return t, err
		}
		t = RedisTarget{Addrs: o.Addrs, Username: o.Username, Password: o.Password, TLS: o.TLSConfig != nil}
	case RedisSentinel:
		o, err := redis.ParseFailoverURL(r.URL)
		if err != nil {
			return t, redact(err)
		}
		if err := poolInRange(o.PoolSize, o.MaxIdleConns); err != nil {
			return t, err
		}
		if o.MasterName == "" {
			return t, errors.New("sentinel mode needs master_name=<the sentinels' name of the master>")
		}
		t = RedisTarget{Addrs: o.SentinelAddrs, MasterName: o.MasterName, Username: o.Username, Password: o.Password,
			SentinelUsername: o.SentinelUsername, SentinelPassword: o.SentinelPassword, TLS: o.TLSConfig != nil, DB: o.DB}
	default:
		return t, fmt.Errorf("unknown mode %q", r.Mode)
	}
	return t, nil
}

// poolInRange refuses the URL's pool options that are the operator's
// (pool_size, max_idle_conns; the rest are tuned) outside 0..2³¹−1, which go-redis
// parses but then panics on when the client is made ("makechan: size out
// of range" for a negative pool_size): the operator gets the problem
// naming REDIS_URL's option instead of a goroutine dump. 0 is go-redis's
// default (pool_size: 10 a CPU).
func poolInRange(poolSize, maxIdle int) error {
	for _, o := range []struct {
		name string
		v    int
	}{{"pool_size", poolSize}, {"max_idle_conns", maxIdle}} {
		if o.v < 0 || o.v > math.MaxInt32 {
			return fmt.Errorf("%s %d is out of range: 0 (go-redis's default) to %d", o.name, o.v, math.MaxInt32)
		}
	}
	return nil
}

// Validate adds Redis problems to p, all of them. Production needs an
// explicit URL and, over plain redis:// to servers not on loopback, a
// password on the data nodes that does not cross the network in plaintext:
// rediss://, or REDIS_ALLOW_PLAINTEXT_PASSWORD=true when something else
// (a service mesh's mTLS) protects the path.
func (r Redis) Validate(p *Problems, production bool) {
	switch r.Mode {
	case RedisStandalone, RedisSentinel, RedisCluster, "":
	default:
		p.Addf("REDIS_MODE: %q is not one of standalone, sentinel, cluster", r.Mode)
	}
	if r.URL == "" {
		p.Addf("REDIS_URL: required")
	} else if u, err := url.Parse(r.URL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
		p.Addf("REDIS_URL: not a redis://, rediss:// or unix:// URL")
	} else if u.Scheme == "unix" && r.Mode != RedisStandalone && r.Mode != "" {
		p.Addf("REDIS_URL: unix:// sockets are for REDIS_MODE=standalone only")
	} else if t, err := r.ParseTarget(); err != nil {
		if r.Mode == RedisStandalone || r.Mode == RedisSentinel || r.Mode == RedisCluster || r.Mode == "" {
			p.Addf("REDIS_URL (REDIS_MODE=%s): %v", orStandalone(r.Mode), err)
		}
	} else {
		if production && u.Scheme == "redis" && r.Password == "" && t.Password == "" && !allLoopback(t.Addrs, r.Mode) {
			p.Addf("REDIS_URL: production Redis needs a password (in the URL or REDIS_PASSWORD), and over rediss:// unless REDIS_ALLOW_PLAINTEXT_PASSWORD=true")
		}
		if production && !r.AllowPlaintextPassword && r.plaintextPassword(u, t) {
			p.Addf("REDIS_URL: a password over plain redis:// is readable on the network; production needs rediss:// (TLS), or REDIS_ALLOW_PLAINTEXT_PASSWORD=true when a service mesh's mTLS or another encrypted path carries the connection (docs/operations/redis.md#plaintext-passwords)")
		}
		if !t.TLS && r.TLSCAFile != "" {
			p.Addf("REDIS_TLS_CA_FILE: set, but REDIS_URL is not rediss://")
		}
	}
	if r.SentinelPassword != "" && r.Mode != RedisSentinel {
		p.Addf("REDIS_SENTINEL_PASSWORD: only used with REDIS_MODE=sentinel")
	}
	if r.TLSCAFile != "" {
		if _, err := LoadCAFile(r.TLSCAFile); err != nil {
			p.Addf("REDIS_TLS_CA_FILE: %v", err)
		}
	}
	if strings.ContainsAny(r.KeyPrefix, " \n{}") {
		p.Addf("REDIS_KEY_PREFIX: must not contain spaces or braces (braces are hash tags in Redis Cluster)")
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"REDIS_DIAL_TIMEOUT", r.DialTimeout}, {"REDIS_COMMAND_TIMEOUT", r.CommandTimeout}, {"REDIS_BREAKER_OPEN", r.BreakerOpen}} {
		if d.v < 0 || d.v > redisTimeoutMax {
			p.Addf("%s: %s is out of range: must be more than 0 and at most 1m", d.key, d.v)
		}
	}
}

// PlaintextPassword reports whether r sends a password (the data nodes' or
// the sentinels') unencrypted over the network: a redis:// URL whose
// servers are not all on loopback. It is the case
// REDIS_ALLOW_PLAINTEXT_PASSWORD allows in production, for the warning the
// services log at start-up.
func (r Redis) PlaintextPassword() bool {
	u, err := url.Parse(r.URL)
	if err != nil {
		return false
	}
	t, err := r.ParseTarget()
	return err == nil && r.plaintextPassword(u, t)
}

func (r Redis) plaintextPassword(u *url.URL, t RedisTarget) bool {
	if u.Scheme != "redis" || t.TLS || allLoopback(t.Addrs, r.Mode) {
		return false
	}
	return r.Password != "" || t.Password != "" || r.SentinelPassword != "" || t.SentinelPassword != ""
}

// LoadCAFile reads a PEM bundle of CA certificates.
func LoadCAFile(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %q: %v", path, errors.Unwrap(err))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%q holds no PEM certificate", path)
	}
	return pool, nil
}

func orStandalone(mode string) string {
	if mode == "" {
		return RedisStandalone
	}
	return mode
}

// allLoopback reports whether every address is on loopback. The sentinels'
// addresses say nothing about where the master is, nor a cluster's seed
// nodes about the nodes its slot map (CLUSTER SLOTS) sends commands to, so
// sentinel and cluster mode never are.
func allLoopback(addrs []string, mode string) bool {
	if mode == RedisSentinel || mode == RedisCluster {
		return false
	}
	for _, a := range addrs {
		h, _, err := net.SplitHostPort(a)
		if err != nil || !isLoopback(h) {
			return false
		}
	}
	return len(addrs) > 0
}

// isLoopback reports whether host is "localhost" or a loopback IP address
// (127.0.0.0/8, ::1 in any spelling). A name is never read by its first
// label: 127.attacker.example is a name like any other.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

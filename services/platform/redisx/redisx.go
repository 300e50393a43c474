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
	"net"
	"reflect"
	"strconv"
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
	log     *slog.Logger  // WithLogger's, or nil

	// pubsubResubscribes is tollgate_redis_pubsub_resubscribes_total
	// (Listen), nil without WithMetrics.
	pubsubResubscribes *prometheus.CounterVec
}

// Option adjusts New.
type Option func(*options)

type options struct {
	log     *slog.Logger
	reg     prometheus.Registerer
	netDial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// WithLogger logs every circuit-breaker state change on log.
func WithLogger(log *slog.Logger) Option { return func(o *options) { o.log = log } }

// WithMetrics registers tollgate_redis_circuit_state,
// tollgate_redis_circuit_rejections_total and
// tollgate_redis_pubsub_resubscribes_total (Listen) on reg.
func WithMetrics(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// tuning is what Tollgate sets in every mode, whatever the URL says.
type tuning struct {
	dial, cmd, pool time.Duration
	tls             *tls.Config
	// netDial, when set (tests: export_test.go), makes each dial attempt
	// instead of net.Dialer; TLS is then its business.
	netDial func(ctx context.Context, network, addr string) (net.Conn, error)
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

// dialAttempts is go-redis's DialerRetries: its pool calls the dialer once
// per connection it needs, never again after a failure. go-redis dials 5
// times 100 ms apart by default (DialerRetries, DialerRetryTimeout), so a
// refused connection took 400 ms to fail a request, and a dial timing out
// 5 × REDIS_DIAL_TIMEOUT + 400 ms; the breaker, not a retry loop, handles
// outages. config refuses dialer_retries in REDIS_URL. The one dial retry
// Tollgate makes, after a timeout only, is redisx's own (tuning.dialer).
const dialAttempts = 1

// A connection's dial is one attempt bounded by REDIS_DIAL_TIMEOUT and, only
// when that attempt timed out, one more bounded by secondDial ×
// REDIS_DIAL_TIMEOUT, at once: dialBudget × REDIS_DIAL_TIMEOUT in all, the
// DialTimeout go-redis is given (its pool bounds each call of the dialer by
// it). A refused or reset connection, a DNS or TLS verification failure is
// not dialled again: a Redis that is down still fails a command in about a
// millisecond. A dial times out without Redis being down when the pod is
// starved of CPU — loopback dials measured 86–96 ms under -race with 80 ms
// allowed (3608e78) — and the longer second attempt lets such a dial
// succeed instead of failing a request with 503; a black-holed Redis (SYNs
// dropped) costs 3 × REDIS_DIAL_TIMEOUT per dial instead of 1 × until the
// breaker opens.
//
// Not chosen: a warm pool (go-redis MinIdleConns). A floor of idle
// connections only spares the dials of a burst smaller than the floor, and
// a CPU-starved pod meeting a burst larger than its usual load is the case
// at hand; every pod would hold the floor's connections open, and the
// floor's refills are background dials go-redis counts towards its
// dial-error limit (PoolSize failed dials, after which every dial fails
// with the last error until a probe every second succeeds), so during an
// outage they would delay recovery past the breaker's probe.
const (
	secondDial = 2
	dialBudget = 1 + secondDial
)

// dialer returns the go-redis Options.Dialer of every mode (and of the
// sentinels' connections): net (or, with tlsConf, TLS 1.2+ over net) dials
// of addr, each attempt bounded as dialBudget says and by ctx, the pool's
// bound of dialBudget × t.dial. It returns the last attempt's error.
func (t tuning) dialer(tlsConf *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	attempt := func(ctx context.Context, network, addr string, within time.Duration) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, within)
		defer cancel()
		if t.netDial != nil {
			return t.netDial(ctx, network, addr)
		}
		nd := &net.Dialer{KeepAliveConfig: keepAlive}
		if tlsConf == nil {
			return nd.DialContext(ctx, network, addr)
		}
		return (&tls.Dialer{NetDialer: nd, Config: tlsConf}).DialContext(ctx, network, addr)
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := attempt(ctx, network, addr, t.dial)
		if err == nil || !timedOut(err) || ctx.Err() != nil {
			return conn, err
		}
		return attempt(ctx, network, addr, secondDial*t.dial)
	}
}

// timedOut reports whether a dial failed because its time ran out (a net
// timeout, or a TLS handshake interrupted by its context), as opposed to
// being refused or failing otherwise.
func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// onePool is go-redis's PipelinePoolSize: negative, no dedicated pipeline
// pool, so a pipeline (or MULTI/EXEC transaction) takes its connection from
// the one pool every command uses. go-redis v9.23 gives pipelines a pool
// of their own by default; when it has no idle connection it dials one
// (up to dialBudget × REDIS_DIAL_TIMEOUT), and when that dial fails it
// falls back to the main pool: another wait for a turn (PoolTimeout) and
// another dial. A pipeline through a black-holed Redis then took four dial
// attempts, and its caller could wait past GiveUpAfter. config refuses
// pipeline_pool_size in REDIS_URL.
const onePool = -1

// dialsUnqueued is go-redis's MaxConcurrentDials: 0, its default, which is
// the pool size, so a caller that holds a turn in the pool never waits for
// another's dial. Below the pool size a dial waits for a dial permit,
// bounded only by the caller's context, outside GiveUpAfter. config
// refuses max_concurrent_dials in REDIS_URL.
const dialsUnqueued = 0

// noIdleFloor is go-redis's MinIdleConns: 0, no warm pool (dialBudget
// says why). config refuses min_idle_conns in REDIS_URL.
const noIdleFloor = 0

// noActiveCap is go-redis's MaxActiveConns: 0, no cap on the connections
// the pool holds. Under a cap a command that finds it reached fails at
// once (ErrPoolExhausted) instead of waiting its turn (PoolTimeout), and
// the breaker, which tells local contention (a pool timeout) from Redis
// failing only by that error, would count it and open on a busy pod with
// a healthy Redis. The pool's size (pool_size in REDIS_URL, go-redis's
// default 10 per CPU) is what bounds a pod's connections. config refuses
// max_active_conns in REDIS_URL.
const noActiveCap = 0

// keepAlive is go-redis's default dialers' TCP keep-alive: probe after 30 s
// idle, 3 probes 5 s apart.
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 5 * time.Second, Count: 3}

// owned is every go-redis option New sets the same way in every mode,
// whatever REDIS_URL says (config refuses most of them in the URL), given
// the URL's TLS settings and password: the one place they are set. New
// copies them into the mode's options by field name (own): go-redis's
// three option types — Options (standalone), FailoverOptions (sentinel),
// ClusterOptions — have these fields under the same names and types but
// share no type. Its UniversalOptions is no such type: it is the input of
// NewUniversalClient, kept up to date (its Simple, Failover and Cluster
// copy the newer fields: DialerRetries, MaxConcurrentDials,
// PipelinePoolSize), but it has no URL parser and nothing converts the
// parsers' options into it; taking that way would mean copying every
// field the three parsers set, by hand, into a type that does not carry
// them all under the same meaning (a sentinel URL's addresses become
// Addrs, ReadOnly stands for the failover client's ReplicaOnly).
func (t tuning) owned(cfg config.Redis, urlTLS *tls.Config, urlPassword string) *redis.Options {
	tlsConf := t.applyTLS(urlTLS)
	o := &redis.Options{
		Password:  urlPassword,
		TLSConfig: tlsConf,
		Dialer:    t.dialer(tlsConf),
		// See New's doc and dialBudget.
		DialTimeout: dialBudget * t.dial, ReadTimeout: t.cmd, WriteTimeout: t.cmd, PoolTimeout: t.pool,
		DialerRetries:    dialAttempts,
		PipelinePoolSize: onePool, MaxConcurrentDials: dialsUnqueued,
		MinIdleConns: noIdleFloor, MaxActiveConns: noActiveCap,
		MaxRetries: -1, // no retries: the breaker, not a retry loop, handles outages
	}
	if cfg.Password != "" {
		o.Password = cfg.Password
	}
	return o
}

// ownedFields are the fields of owned that own copies: the same name and
// type in redis.Options, FailoverOptions and ClusterOptions
// (TestOwnedOptionsInEveryMode).
var ownedFields = [...]string{
	"Password", "TLSConfig", "Dialer",
	"DialTimeout", "ReadTimeout", "WriteTimeout", "PoolTimeout",
	"DialerRetries", "PipelinePoolSize", "MaxConcurrentDials", "MinIdleConns", "MaxActiveConns",
	"MaxRetries",
}

// own sets the owned options in opts, a *redis.Options,
// *redis.FailoverOptions or *redis.ClusterOptions that a URL parser
// returned.
func (t tuning) own(opts any, cfg config.Redis) {
	dst := reflect.ValueOf(opts).Elem()
	urlTLS, _ := dst.FieldByName("TLSConfig").Interface().(*tls.Config)
	src := reflect.ValueOf(t.owned(cfg, urlTLS, dst.FieldByName("Password").String())).Elem()
	for _, name := range ownedFields {
		dst.FieldByName(name).Set(src.FieldByName(name))
	}
}

// New returns a client for cfg: cfg.Mode picks go-redis's URL parser and
// client (redis.ParseURL and NewClient, ParseFailoverURL and
// NewFailoverClient, ParseClusterURL and NewClusterClient; see
// config.Redis.URL for the forms). rediss:// URLs use TLS 1.2 or newer,
// verified against cfg.TLSCAFile's CAs when set.
//
// Failing fast, the same in every mode: every socket read and write is
// bounded by cfg.CommandTimeout (80ms by default), a dial by cfg.DialTimeout
// (80ms) and, only after a timeout, by one more attempt of twice that (never
// after a refusal: see dialBudget), a failed command is not retried (no
// retry storms), and after
// three consecutive connection failures or refused passwords
// (IsAuthFailure) the circuit breaker opens: every
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
	if cfg.AllowPlaintextPassword && cfg.PlaintextPassword() && o.log != nil {
		// Production refuses this without the opt-out (config.Redis.Validate).
		o.log.Warn("Redis password sent over plain redis:// (allowed by REDIS_ALLOW_PLAINTEXT_PASSWORD): readable by anyone on the network path unless something else, such as a service mesh's mTLS, encrypts it; use rediss://",
			"mode", cfg.Mode)
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

		netDial: o.netDial,
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
	c := &Client{mode: cfg.Mode, prefix: cfg.KeyPrefix, giveUp: t.pool + dialBudget*t.dial + 2*t.cmd, log: o.log}
	var reload func()
	switch cfg.Mode {
	case config.RedisCluster:
		opts, _ := redis.ParseClusterURL(cfg.URL)
		t.own(opts, cfg)
		// No retries (the breaker handles outages), but MOVED/ASK
		// redirections are followed: they are how a cluster answers after a
		// failover or a slot migration, not a failure. (go-redis v9.23's
		// cluster client also tries a command again after a network error
		// or timeout, up to MaxRedirects times, whatever MaxRetries says.)
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
		t.own(opts, cfg)
		if cfg.SentinelPassword != "" {
			opts.SentinelPassword = cfg.SentinelPassword
		}
		c.UniversalClient = redis.NewFailoverClient(opts)
	default:
		c.mode = config.RedisStandalone
		opts, _ := redis.ParseURL(cfg.URL)
		t.own(opts, cfg)
		c.UniversalClient = redis.NewClient(opts)
	}
	var err error
	c.breaker, err = newBreaker(orDefault(cfg.BreakerOpen, config.DefaultRedisBreakerOpen), o.log, o.reg)
	if err != nil {
		_ = c.UniversalClient.Close()
		return nil, err
	}
	c.breaker.onFailure = reload
	if o.reg != nil {
		c.pubsubResubscribes = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_redis_pubsub_resubscribes_total",
			Help: "Redis pub/sub subscriptions closed and made again because they went silent (no reply to a PING in time) or broke, by kind of subscription.",
		}, []string{"kind"})
		if err := o.reg.Register(c.pubsubResubscribes); err != nil {
			_ = c.UniversalClient.Close()
			return nil, fmt.Errorf("redis metrics: %w", err)
		}
	}
	c.AddHook(c.breaker)
	return c, nil
}

// GiveUpAfter bounds how long a command's or a pipeline's caller waits for
// one attempt of it: the wait for a turn in the pool (PoolTimeout: 10 ×
// REDIS_COMMAND_TIMEOUT, at least 1 s), then, when no pooled connection is
// idle, a new connection's dial (3 × REDIS_DIAL_TIMEOUT at most: a
// timed-out attempt and the longer one after it, see dialBudget; before
// redisx dialled a timed-out connection again, the dial was left out of
// this bound), then the write and the reply (a REDIS_COMMAND_TIMEOUT each;
// a pipeline's commands are written at once and their replies read under
// one deadline). With the defaults 1 s + 240 ms + 160 ms = 1.4 s.
// Pipelines and MULTI/EXEC transactions share the commands' pool (see
// onePool: go-redis's own pipeline pool could add a second pool wait and
// dial), and every dial starts as soon as its caller has a turn (see
// dialsUnqueued). Not included, on top: a new connection's handshake
// (HELLO, AUTH, SELECT: reads and writes bounded as a command's), a
// script's EVAL after a NOSCRIPT, and, in Cluster mode, go-redis's further
// attempts after a timeout. A command that reaches Redis later than this
// after it was issued — queued in a socket while Redis hung — most likely
// runs for a caller that has already answered its client (auth-server's
// late-rotation guard).
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

// ExpireAtLeast queues on pipe what makes key live at least ttl from when
// the commands run, never shorter than it already does: EXPIRE key ttl NX
// sets the expiry of a key that has none (one just created by a command
// before it on pipe), then EXPIRE key ttl GT extends an expiry that is
// sooner; each is a no-op otherwise, and a key that does not exist stays
// absent (both answer 0). For a key several writers share with different
// lifetimes (a sorted set of records, an index of grants): the writer with
// the shortest one must not cut the key under the others' longer entries.
//
// ttl is in whole seconds (EXPIRE), truncated; under a second counts as
// one. The commands need Redis 7.0 or later (EXPIRE's NX and GT options):
// an older server answers each with an error, which pipe's Exec returns
// (CheckVersion refuses such a server at start-up).
func ExpireAtLeast(ctx context.Context, pipe redis.Pipeliner, key string, ttl time.Duration) {
	pipe.ExpireNX(ctx, key, ttl)
	pipe.ExpireGT(ctx, key, ttl)
}

// Hash returns the hex SHA-256 of a secret, for use in keys: secrets are
// never stored or used as keys in the clear.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Ping reports whether Redis answers; it goes through the breaker, so while
// the breaker is open it fails at once with ErrUnavailable.
func (c *Client) Ping(ctx context.Context) error { return c.UniversalClient.Ping(ctx).Err() }

// CheckDurable fails unless the server keeps what it is given: it persists
// data (AOF or RDB snapshots), so a production install does not silently
// lose sessions and grants on restart, and it does not evict keys at
// maxmemory (maxmemory-policy noeviction). Every key Tollgate writes has a
// TTL, so volatile-* policies — the default parameter group of most
// managed Redis services — evict them as readily as allkeys-*: grants,
// refresh tokens, sessions and the revocation records, after which a
// verifier that starts accepts a revoked grant's access tokens. In cluster
// mode every master is checked; in sentinel mode the current master.
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
	if err := checkPersistence(ctx, c); err != nil {
		return err
	}
	return checkNoEviction(ctx, c)
}

func checkPersistence(ctx context.Context, c redis.Cmdable) error {
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

// ErrEvictingServer is returned (wrapped, naming the policy) by
// CheckDurable and Open for a server whose maxmemory-policy is not
// noeviction.
var ErrEvictingServer = errors.New("redis evicts keys at maxmemory")

// checkNoEviction reads maxmemory_policy from INFO memory (which managed
// services answer where CONFIG GET is refused). A server that does not
// report it is not refused: its policy cannot be told.
func checkNoEviction(ctx context.Context, c redis.Cmdable) error {
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return fmt.Errorf("redis eviction policy check: %w", err)
	}
	for _, line := range strings.Split(info, "\n") {
		policy, ok := strings.CutPrefix(strings.TrimSpace(line), "maxmemory_policy:")
		if !ok || policy == "noeviction" {
			continue
		}
		return fmt.Errorf("%w: maxmemory-policy is %s, which removes Tollgate's keys (grants, refresh tokens, sessions, revocation records: all have a TTL) when memory is full; "+
			"set maxmemory-policy noeviction (on a managed Redis, in its parameter group), or REDIS_CHECK_DURABLE=false if you accept losing them (docs/operations/redis.md#sizing)",
			ErrEvictingServer, policy)
	}
	return nil
}

// MinServerVersion is the oldest Redis the fleet runs on: 7.0, for
// EXPIRE's NX and GT options (ExpireAtLeast). Open refuses an older
// server (CheckVersion).
const MinServerVersion = "7.0"

// ErrServerTooOld is returned (wrapped, naming the version found) by
// CheckVersion and Open for a server older than MinServerVersion.
var ErrServerTooOld = errors.New("redis server too old")

// CheckVersion fails with ErrServerTooOld when the server runs a Redis
// older than MinServerVersion: in cluster mode every master, in sentinel
// mode the current master. It reads the version from HELLO without
// arguments (Redis 6.2 and later: the connection's protocol is left as it
// is), which every ACL user Tollgate documents may run, else from INFO
// server (Redis 6.0 refuses HELLO without a protocol version). A server
// that answers neither (both refused by its ACL or renamed) is not
// refused: its version cannot be told; a command it does not support
// fails when it is sent. An unreachable server is an error.
func (c *Client) CheckVersion(ctx context.Context) error {
	if cc, ok := c.UniversalClient.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			if err := checkVersion(ctx, n); err != nil {
				return fmt.Errorf("cluster node %s: %w", n.Options().Addr, err)
			}
			return nil
		})
	}
	return checkVersion(ctx, c.UniversalClient)
}

func checkVersion(ctx context.Context, c redis.UniversalClient) error {
	v, err := serverVersion(ctx, c)
	if err != nil || v == "" {
		return err
	}
	if !atLeast(v, MinServerVersion) {
		return fmt.Errorf("%w: it runs %s; Tollgate needs Redis %s or later (EXPIRE NX and GT)", ErrServerTooOld, v, MinServerVersion)
	}
	return nil
}

// serverVersion is the server's version ("7.2.4"), or "" when the server
// refuses both HELLO and INFO.
func serverVersion(ctx context.Context, c redis.UniversalClient) (string, error) {
	hello, err := c.Do(ctx, "HELLO").Result()
	if err == nil {
		var v any
		switch h := hello.(type) {
		case map[any]any: // RESP3
			v = h["version"]
		case []any: // RESP2: field, value, …
			for i := 0; i+1 < len(h); i += 2 {
				if h[i] == "version" {
					v = h[i+1]
				}
			}
		}
		if s, ok := v.(string); ok && s != "" {
			return s, nil
		}
	} else if !isErrorReply(err) {
		return "", fmt.Errorf("redis version check: %w", err)
	}
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		if isErrorReply(err) {
			return "", nil
		}
		return "", fmt.Errorf("redis version check: %w", err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v, nil
		}
	}
	return "", nil
}

// isErrorReply reports whether err is the server's error reply (a refused
// or unknown command), not a failure to reach it.
func isErrorReply(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && !errors.Is(err, redis.Nil)
}

// atLeast reports whether version v ("7.0.15", "6.2.14") is min
// ("7.0") or later, comparing major and minor numbers; a version it
// cannot read counts as recent enough.
func atLeast(v, min string) bool {
	num := func(s string) (int, int, bool) {
		maj, rest, _ := strings.Cut(s, ".")
		minor, _, _ := strings.Cut(rest, ".")
		a, err1 := strconv.Atoi(maj)
		b, err2 := strconv.Atoi(minor)
		return a, b, err1 == nil && err2 == nil
	}
	a, b, ok := num(v)
	x, y, _ := num(min)
	return !ok || a > x || a == x && b >= y
}

// IsUnavailable reports whether err means Redis could not be reached (as
// opposed to a missing key): a connection error, a timeout or an open
// circuit breaker (ErrUnavailable).
func IsUnavailable(err error) bool {
	return err != nil && !errors.Is(err, redis.Nil)
}

// IsAuthFailure reports whether err is Redis refusing the client's
// credentials — a reply it then gives every new connection until an
// operator acts, so Redis is unusable to this client: WRONGPASS (a wrong
// password, or an ACL user unknown or disabled), NOAUTH (no password where
// one is required), and a password sent to a Redis that requires none
// (REDIS_PASSWORD set, and Redis restarted without its configuration, say):
// Redis 6.0 and later answer AUTH <password> with "ERR AUTH <password>
// called without any password configured for the default user", Redis
// before 6.0 with "ERR Client sent AUTH, but no password is set". go-redis
// sends the password in HELLO, which a Redis 6.0+ default user without a
// password accepts whatever the password; it falls back to AUTH <password>
// when HELLO is refused — Redis before 6.0, or HELLO renamed or disabled
// (rename-command, some managed Redis services and proxies). go-redis's
// IsAuthError knows only the first two. Not NOPERM: an ACL refusing one
// command or key (telemetry.RedisResult says why).
func IsAuthFailure(err error) bool {
	if err == nil {
		// Before rerr below, which errors.As makes escape: no allocation
		// for the commands that succeed.
		return false
	}
	if redis.IsAuthError(err) {
		return true
	}
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := rerr.Error()
	return strings.HasPrefix(msg, "ERR AUTH <password> called without any password configured") ||
		strings.HasPrefix(msg, "ERR Client sent AUTH, but no password is set")
}

// IsConnectionRefusal reports whether err is Redis refusing to set up this
// client's connections: its credentials (IsAuthFailure), or the database
// REDIS_URL names — "ERR DB index is out of range" (a /N beyond the
// server's databases), "ERR SELECT is not allowed in cluster mode" (a /N
// at a cluster-mode endpoint), NOPERM for 'select' (an ACL user without
// +select). go-redis sends SELECT when it sets up each connection, drops
// the connection on the refusal and answers the command with it, so like
// a refused password it meets every command until an operator acts: the
// circuit breaker counts it, and tollgate_redis_up shows Redis down.
func IsConnectionRefusal(err error) bool {
	if err == nil {
		return false
	}
	if IsAuthFailure(err) {
		return true
	}
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := rerr.Error()
	return strings.HasPrefix(msg, "ERR DB index is out of range") ||
		strings.HasPrefix(msg, "ERR SELECT is not allowed in cluster mode") ||
		strings.HasPrefix(msg, "NOPERM") && strings.Contains(msg, "'select' command")
}

// Open returns a client for cfg (with opt, as New) and refuses a server it
// reaches at start-up that runs a Redis older than MinServerVersion
// (CheckVersion, ErrServerTooOld) or, when cfg.CheckDurable is set (the
// production default), one without persistence or that evicts keys
// (ErrEvictingServer): sessions, grants, refresh-token families and
// revocation records must survive a Redis restart and a full memory. Redis being
// unreachable at start-up is not an error (readiness reports it and the
// client reconnects), but a reachable Redis that is too old or volatile is.
func Open(ctx context.Context, cfg config.Redis, opt ...Option) (*Client, error) {
	c, err := New(cfg, opt...)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(cctx); err != nil {
		return c, nil
	}
	if err := c.CheckVersion(cctx); errors.Is(err, ErrServerTooOld) {
		_ = c.Close()
		return nil, err
	}
	if !cfg.CheckDurable {
		return c, nil
	}
	if err := c.CheckDurable(cctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

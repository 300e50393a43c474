package telemetry

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/redisx"
)

// redisCommands bound the command label of the Redis metrics: the commands
// the fleet and its libraries use and their close relatives. Any other
// command is counted as "other".
var redisCommands = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range strings.Fields(`get set setnx setex psetex getdel getex getset mget mset del unlink exists
		expire pexpire expireat pexpireat persist ttl pttl type incr incrby decr decrby
		hget hset hsetnx hmget hmset hgetall hdel hincrby hexists hlen
		sadd srem smembers sismember scard zadd zrem zrange zrangebyscore zremrangebyscore zcard zscore
		lpush rpush lrange ltrim llen lpop rpop
		xadd xrange xrevrange xlen xtrim xread
		publish subscribe psubscribe unsubscribe punsubscribe
		eval evalsha eval_ro evalsha_ro script
		ping info config hello auth select client multi exec watch unwatch scan`) {
		m[c] = true
	}
	return m
}()

// RedisCommandLabel bounds a Redis command name for use as a metric label.
func RedisCommandLabel(name string) string { return commandOf(name).label }

// redisCommand is what the metrics hook needs of a command name: its label
// and whether it is one of writeCommands.
type redisCommand struct {
	label  string
	writes bool
}

// commandInfo maps each of redisCommands to its redisCommand: one map
// read per command where the hook made three (go-redis lower-cases the
// names it reports, so the first read finds them).
var commandInfo = func() map[string]redisCommand {
	m := map[string]redisCommand{}
	for c := range redisCommands {
		m[c] = redisCommand{label: c, writes: writeCommands[c]}
	}
	return m
}()

func commandOf(name string) redisCommand {
	if c, ok := commandInfo[name]; ok {
		return c
	}
	if c, ok := commandInfo[strings.ToLower(name)]; ok {
		return c
	}
	return redisCommand{label: "other"}
}

// Redis command results: ok, miss (a nil reply, not an error), error (the
// server refused the command) and unavailable (no answer: refused
// connection, timeout, closed pool; or an answer refusing every command of
// the connection: see refusesConnection).
const (
	redisOK          = "ok"
	redisMiss        = "miss"
	redisError       = "error"
	redisUnavailable = "unavailable"
)

// RedisResult classifies the outcome of a command.
func RedisResult(err error) string {
	switch {
	case err == nil:
		return redisOK
	case errors.Is(err, redis.Nil):
		return redisMiss
	case errors.Is(err, context.Canceled):
		return redisError // the caller gave up: no statement about Redis
	case isErrorReply(err) && !isNetError(err) && !refusesConnection(err):
		return redisError
	}
	return redisUnavailable
}

// isErrorReply reports whether err is (or wraps) a Redis error reply. Its
// target, which errors.As makes escape, is declared only here: the
// commands that succeed, most of them, allocate nothing for it.
func isErrorReply(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr)
}

// refusesConnection reports whether a Redis error reply refuses the
// connection rather than the command: the same reply meets every command
// until an operator or Redis acts. Authentication (redisx.IsAuthFailure:
// WRONGPASS, NOAUTH — a wrong or missing REDIS_PASSWORD — and a password
// sent to a Redis that has none, "ERR AUTH <password> called without any
// password configured"; go-redis's connection set-up gets it, and the
// command that needed the connection is answered with it), the database
// REDIS_URL names refused at set-up (redisx.IsConnectionRefusal), the
// server's connection limit, and the replies redisx's circuit breaker
// counts as Redis not able to serve yet (LOADING, MASTERDOWN, BUSY,
// CLUSTERDOWN, TRYAGAIN). Not NOPERM: an ACL refuses one command or key,
// not the connection — the capability backends' restricted user meets it
// on every connection's CLIENT SETINFO, and a key outside a user's
// patterns is a bug of that command, not Redis down.
func refusesConnection(err error) bool {
	var rerr redis.Error
	return redisx.IsConnectionRefusal(err) || redis.IsMaxClientsError(err) ||
		redis.IsLoadingError(err) || redis.IsMasterDownError(err) || redis.IsClusterDownError(err) || redis.IsTryAgainError(err) ||
		errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "BUSY ")
}

// writeCommands are the commands of redisCommands (so a command's label
// looks them up) that Redis refuses with
// an OOM reply at maxmemory under noeviction (its denyoom flag): their
// success shows Redis takes writes again. Not the scripts: a script
// without flags is refused only at its first such write, and many of the
// fleet's write nothing on some paths (the rate limiter's refusal, a
// session claim of a missing key), so a script that succeeds proves
// nothing.
var writeCommands = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range strings.Fields(`set setnx setex psetex getset mset incr incrby decr decrby
		hset hsetnx hmset hincrby sadd zadd lpush rpush xadd`) {
		m[c] = true
	}
	return m
}()

// oomHold is how long an OOM or READONLY reply keeps tollgate_redis_up at
// 0 when no
// write outside a script succeeds after it (a service whose only writes
// are the rate limiter's script): longer than TollgateRedisDown's `for: 1m`
// plus a scrape interval (30 s) and a gap of light traffic — at one hold
// of a minute, failing requests 90 s apart read 0, 0, 1 at every third
// scrape and the alert's minute never completed (review5) — and the
// longest Redis is reported down after it has room again. A variable for
// the tests.
var oomHold = 3 * time.Minute

// refusesWrites reports whether err is Redis refusing a write it would
// refuse every client until an operator acts: at maxmemory with nothing it
// may evict (noeviction: "OOM command not allowed when used memory >
// 'maxmemory'"), or a read-only replica ("READONLY You can't write against
// a read only replica": a REDIS_URL left on a demoted master, a managed
// Redis's reader endpoint), in a script's error too. Either way Redis
// serves reads and PING while every request fails at its first write.
func refusesWrites(err error) bool {
	if err == nil || err == redis.Nil {
		// Before rerr, which errors.As makes escape (an allocation per
		// command otherwise): a success and a miss — the commonest
		// replies — are neither OOM nor READONLY. go-redis returns
		// redis.Nil itself, never wrapped.
		return false
	}
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "OOM ") || redis.IsReadOnlyError(err)
}

func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// redisMetrics is a go-redis hook recording every command and pipeline,
// and a collector of the client's pool statistics.
type redisMetrics struct {
	client   redis.UniversalClient
	duration *prometheus.HistogramVec
	// observers are duration's series by command and result, looked up
	// without hashing the labels into the vector on every command.
	observers *SeriesCache[redisSeries, prometheus.Observer]
	up        atomic.Int32
	// refusedWrite is the time of the latest OOM or READONLY reply (Unix
	// ns; 0: none since the last write that succeeded). While Redis
	// refuses writes it answers reads, PING and scripts that write
	// nothing, so only a write says it is usable again — or oomHold
	// without another such reply.
	refusedWrite atomic.Int64

	upDesc, hits, misses, timeouts, stale, total, idle *prometheus.Desc
}

// InstrumentRedisMetrics registers the Redis client metrics of rdb with reg:
//
//   - tollgate_redis_command_duration_seconds{command,result}: every
//     command (pipelines and transactions as "pipeline"), by bounded
//     command name and result (ok, miss, error, unavailable);
//   - tollgate_redis_up: 1 when the last command got an answer, 0 when it
//     found Redis unreachable or refusing the connection (result
//     unavailable: a wrong password, for example; readiness probes keep it
//     current) — and 0 from an OOM reply (Redis at maxmemory under
//     noeviction) or a READONLY one (a read-only replica) until a write
//     outside a script succeeds or oomHold passes without another such
//     reply: every request writes its rate-limit bucket (a script), so
//     every request fails while reads and the readiness probe's PING
//     still succeed, and under traffic the refusals keep it 0. The
//     command stays result "error" (Redis
//     answered) and the circuit breaker stays closed (reads go on;
//     docs/operations/failures.md);
//   - tollgate_redis_pool_*: the client's connection pool (hits, misses,
//     timeouts, stale connections, total and idle connections).
func InstrumentRedisMetrics(rdb redis.UniversalClient, reg prometheus.Registerer) error {
	m := &redisMetrics{
		client: rdb,
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tollgate_redis_command_duration_seconds",
			Help:    "Redis command latency by command and result (ok, miss, error, unavailable).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"command", "result"}),
		upDesc:   prometheus.NewDesc("tollgate_redis_up", "1 when the last Redis command got an answer, 0 when Redis was unreachable or refused the connection (wrong password, loading) or refused a write (OOM: out of memory; READONLY: a read-only replica) in the last three minutes and no write succeeded since.", nil, nil),
		hits:     prometheus.NewDesc("tollgate_redis_pool_hits_total", "Times a free connection was found in the pool.", nil, nil),
		misses:   prometheus.NewDesc("tollgate_redis_pool_misses_total", "Times no free connection was found in the pool.", nil, nil),
		timeouts: prometheus.NewDesc("tollgate_redis_pool_timeouts_total", "Times a wait for a pool connection timed out.", nil, nil),
		stale:    prometheus.NewDesc("tollgate_redis_pool_stale_connections_total", "Stale connections removed from the pool.", nil, nil),
		total:    prometheus.NewDesc("tollgate_redis_pool_connections", "Connections in the pool.", nil, nil),
		idle:     prometheus.NewDesc("tollgate_redis_pool_idle_connections", "Idle connections in the pool.", nil, nil),
	}
	m.observers = &SeriesCache[redisSeries, prometheus.Observer]{Make: func(k redisSeries) prometheus.Observer {
		return m.duration.WithLabelValues(k.command, k.result)
	}}
	m.up.Store(1)
	for _, c := range []prometheus.Collector{m.duration, m} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	rdb.AddHook(m)
	return nil
}

// redisSeries is the labels of a tollgate_redis_command_duration_seconds
// series: a bounded command label and a result.
type redisSeries struct{ command, result string }

func (m *redisMetrics) observe(command string, writes bool, start time.Time, err error, refused bool) {
	result := RedisResult(err)
	m.observers.Get(redisSeries{command, result}).Observe(time.Since(start).Seconds())
	switch {
	case refused:
		m.refusedWrite.Store(time.Now().UnixNano())
	case err == nil && writes:
		m.refusedWrite.Store(0)
	}
	switch result {
	case redisUnavailable:
		m.up.Store(0)
	case redisOK, redisMiss, redisError:
		if !errors.Is(err, context.Canceled) {
			m.up.Store(1)
		}
	}
}

func (m *redisMetrics) DialHook(next redis.DialHook) redis.DialHook { return next }

func (m *redisMetrics) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		c := commandOf(cmd.Name())
		m.observe(c.label, c.writes, start, err, refusesWrites(err))
		return err
	}
}

func (m *redisMetrics) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		// A pipeline writes if one of its commands does; the refusal may
		// be any command's (in a transaction, the queued command's, with
		// EXEC answered EXECABORT).
		writes, refused := false, refusesWrites(err)
		for _, c := range cmds {
			writes = writes || writeCommands[c.Name()] // go-redis lower-cases Name
			refused = refused || refusesWrites(c.Err())
		}
		m.observe("pipeline", writes, start, err, refused)
		return err
	}
}

func (m *redisMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.upDesc, m.hits, m.misses, m.timeouts, m.stale, m.total, m.idle} {
		ch <- d
	}
}

func (m *redisMetrics) Collect(ch chan<- prometheus.Metric) {
	s := m.client.PoolStats()
	up := float64(m.up.Load())
	if at := m.refusedWrite.Load(); at != 0 && time.Since(time.Unix(0, at)) < oomHold {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(m.upDesc, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(m.hits, prometheus.CounterValue, float64(s.Hits))
	ch <- prometheus.MustNewConstMetric(m.misses, prometheus.CounterValue, float64(s.Misses))
	ch <- prometheus.MustNewConstMetric(m.timeouts, prometheus.CounterValue, float64(s.Timeouts))
	ch <- prometheus.MustNewConstMetric(m.stale, prometheus.CounterValue, float64(s.StaleConns))
	ch <- prometheus.MustNewConstMetric(m.total, prometheus.GaugeValue, float64(s.TotalConns))
	ch <- prometheus.MustNewConstMetric(m.idle, prometheus.GaugeValue, float64(s.IdleConns))
}

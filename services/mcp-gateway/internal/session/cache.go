package session

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/redisx"
)

// cacheEntries bounds the records a replica keeps in memory (about 250
// bytes each with the LRU's own bookkeeping): past it, the least recently
// used record is dropped and read again from Redis on its next use.
const cacheEntries = 1 << 16

// maxRenewEvery is the longest a replica waits before it renews a session's
// idle TTL again; Admit renews at most this often.
const maxRenewEvery = time.Minute

// cached is what a replica remembers of a session after its first sight:
// the fields that do not change after initialize, and when it last renewed
// the idle TTL in Redis.
type cached struct {
	rec     Record // ClientInfo and Capabilities left out
	renewed atomic.Int64
}

// Admit is the steady-state check of a request to session id: whether the
// session is live, its record, and the renewal of its idle TTL, sent in one
// pipeline together with what queue adds to it (the rate limit), so one
// Redis round trip in all.
//
// The record is read in full the first time this replica sees the session
// and kept in memory afterwards (once initialize has settled its protocol
// version: nothing a later request checks changes after that). Liveness is
// still asked of Redis on every call, so a DELETE on any replica or an
// expiry is seen at once by all; the memory only saves reading and parsing
// the record. The idle TTL is renewed at most once every renewEvery
// (maxRenewEvery, or half the TTL if shorter) per replica, so an idle
// session lives between IdleTTL−renewEvery and IdleTTL after its last use.
//
// ClientInfo and Capabilities may be empty in the answer; Get has them.
// queue may be nil. ErrNotFound means no live session has the id.
func (s *Store) Admit(ctx context.Context, id string, queue func(redis.Pipeliner)) (Record, error) {
	h := redisx.Hash(id)
	key := s.keyOf(h)
	p := s.rdb.Pipeline()
	if queue != nil {
		queue(p)
	}
	if id == "" {
		_, _ = p.Exec(ctx)
		return Record{}, ErrNotFound
	}
	now := time.Now()
	c, hit := s.cache.Get(h)
	var (
		exists *redis.IntCmd
		renew  *redis.BoolCmd
		get    *redis.MapStringStringCmd
	)
	switch {
	case !hit:
		get = p.HGetAll(ctx, key)
		renew = p.PExpire(ctx, key, s.ttl)
	case now.Sub(time.Unix(0, c.renewed.Load())) >= s.renewEvery:
		renew = p.PExpire(ctx, key, s.ttl)
		if s.perSubject > 0 {
			// The subject's count follows the renewal (Redis' clock is not
			// at hand here; replicas' clocks are close enough for a score
			// that only decides when an entry is dropped).
			sk := s.subjectKey(c.rec.Subject)
			p.ZAddXX(ctx, sk, redis.Z{Score: float64(now.Add(s.ttl).UnixMilli()), Member: h})
			p.PExpire(ctx, sk, s.ttl)
		}
	default:
		exists = p.Exists(ctx, key)
	}
	_, _ = p.Exec(ctx) // each command's own error is read below
	switch {
	case get != nil:
		s.observe(false)
		if err := get.Err(); err != nil {
			return Record{}, fmt.Errorf("read session: %w", err)
		}
		m := get.Val()
		if len(m) == 0 {
			return Record{}, ErrNotFound
		}
		rec := recordOf(m)
		if rec.ProtocolVersion != "" || rec.Transport == LegacySSE {
			e := &cached{rec: rec}
			e.rec.ClientInfo, e.rec.Capabilities = "", ""
			e.renewed.Store(now.UnixNano())
			s.cache.Add(h, e)
		}
		return rec, nil
	case renew != nil:
		s.observe(true)
		live, err := renew.Result()
		if err != nil {
			return Record{}, fmt.Errorf("read session: %w", err)
		}
		if !live {
			s.cache.Remove(h)
			return Record{}, ErrNotFound
		}
		c.renewed.Store(now.UnixNano())
		return c.rec, nil
	default:
		s.observe(true)
		n, err := exists.Result()
		if err != nil {
			return Record{}, fmt.Errorf("read session: %w", err)
		}
		if n == 0 {
			s.cache.Remove(h)
			return Record{}, ErrNotFound
		}
		return c.rec, nil
	}
}

// Forget drops what this replica remembers of the session whose id hashes
// to hash (its end was announced by another replica). Correctness does not
// depend on it — Admit asks Redis whether the session lives — it frees the
// memory at once.
func (s *Store) Forget(hash string) { s.cache.Remove(hash) }

// OnLookup has f called after every Admit with whether the record came
// from memory (for a metric). Set it before the store is used.
func (s *Store) OnLookup(f func(hit bool)) { s.onLookup = f }

func (s *Store) observe(hit bool) {
	if s.onLookup != nil {
		s.onLookup(hit)
	}
}

// Cached is the number of records this replica holds in memory.
func (s *Store) Cached() int { return s.cache.Len() }

func newCache() *lru.Cache[string, *cached] {
	c, err := lru.New[string, *cached](cacheEntries)
	if err != nil {
		panic(err) // only for a size < 1
	}
	return c
}

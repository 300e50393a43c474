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

// cacheEntries bounds the records a replica keeps in memory (250–500
// bytes each with the LRU's own bookkeeping): past it, the least recently
// used record is dropped and read again from Redis on its next use. An
// expired session's record stays until pushed out, so under churn a
// replica holds all of them (docs/reference/mcp.md: 16–32 MiB).
const cacheEntries = 1 << 16

// maxRenewEvery is the longest a replica waits before it renews a session's
// idle TTL again; Admit renews at most this often.
const maxRenewEvery = time.Minute

// cached is what a replica remembers of a session after its first sight:
// the fields that do not change after initialize, and when it last renewed
// the idle TTL in Redis.
type cached struct {
	rec     Record // ClientInfo and Capabilities left out, ClientName kept
	renewed atomic.Int64
	// gen is the store's generation (Store.Invalidate) when Redis last
	// confirmed the session live; 0: not confirmed since a termination
	// may have been missed.
	gen atomic.Uint64
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
// While the store follows terminations (Follow), a session this replica
// has seen confirmed live is admitted from memory, without asking Redis,
// until its renewal is due: a DELETE on any replica reaches every replica
// through the terminations channel before the DELETE is answered
// (the gateway waits for each replica's acknowledgement), which calls
// Forget; an expiry is noticed at the renewal, due before the session can
// have expired. When queue is not nil Redis is always asked (the caller
// adds its own commands to the trip).
//
// ClientInfo and Capabilities may be empty in the answer; Get has them.
// ClientName is there (up to maxValue bytes: what a check of a client's
// name needs after initialize, on every request).
// queue may be nil. ErrNotFound means no live session has the id.
func (s *Store) Admit(ctx context.Context, id string, queue func(redis.Pipeliner)) (Record, error) {
	h := redisx.Hash(id)
	now := time.Now()
	gen, forgets := s.gen.Load(), s.forgets.Load()
	c, hit := s.cache.Get(h)
	if hit && queue == nil && s.following.Load() && c.gen.Load() == gen &&
		now.Sub(time.Unix(0, c.renewed.Load())) < s.renewEvery {
		s.observe(LookupMemory)
		return c.rec, nil
	}
	// confirmed marks e live as of this trip, unless a termination (or a
	// lapse in following them) came in meanwhile.
	confirmed := func(e *cached) {
		if s.forgets.Load() == forgets {
			e.gen.Store(gen)
		} else {
			e.gen.Store(0)
		}
	}
	key := s.keyOf(h)
	p := s.rdb.Pipeline()
	if queue != nil {
		queue(p)
	}
	if id == "" {
		_, _ = p.Exec(ctx)
		return Record{}, ErrNotFound
	}
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
			// The pair's count follows the renewal (Redis' clock is not
			// at hand here; replicas' clocks are close enough for a score
			// that only decides when an entry is dropped).
			sk := s.subjectKey(c.rec.Subject, c.rec.ClientID)
			until := float64(now.Add(s.ttl).UnixMilli())
			p.ZAddXX(ctx, sk, redis.Z{Score: until, Member: member(h)}, redis.Z{Score: until, Member: h})
			p.PExpire(ctx, sk, s.ttl)
		}
	default:
		exists = p.Exists(ctx, key)
	}
	_, _ = p.Exec(ctx) // each command's own error is read below
	switch {
	case get != nil:
		s.observe(LookupMiss)
		if err := get.Err(); err != nil {
			return Record{}, fmt.Errorf("read session: %w", err)
		}
		m := get.Val()
		if len(m) == 0 {
			return Record{}, ErrNotFound
		}
		rec := recordOf(m)
		// The pair's set learns of this use as of a renewal (EvictIdleAfter).
		s.touch(ctx, h, rec, now)
		if rec.ProtocolVersion != "" || rec.Transport == LegacySSE {
			e := &cached{rec: rec}
			e.rec.ClientInfo, e.rec.Capabilities = "", ""
			if len(e.rec.ClientName) > maxValue {
				e.rec.ClientName = ""
			}
			e.renewed.Store(now.UnixNano())
			confirmed(e)
			s.cache.Add(h, e)
		}
		return rec, nil
	case renew != nil:
		s.observe(LookupHit)
		live, err := renew.Result()
		if err != nil {
			return Record{}, fmt.Errorf("read session: %w", err)
		}
		if !live {
			s.cache.Remove(h)
			return Record{}, ErrNotFound
		}
		c.renewed.Store(now.UnixNano())
		confirmed(c)
		return c.rec, nil
	default:
		s.observe(LookupHit)
		n, err := exists.Result()
		if err != nil {
			return Record{}, fmt.Errorf("read session: %w", err)
		}
		if n == 0 {
			s.cache.Remove(h)
			return Record{}, ErrNotFound
		}
		confirmed(c)
		return c.rec, nil
	}
}

// Forget drops what this replica remembers of the session whose id hashes
// to hash (its end was announced by another replica). Correctness does not
// depend on it — Admit asks Redis whether the session lives — it frees the
// memory at once.
//
// While the store follows terminations, Forget is what makes a DELETE
// elsewhere seen here: call it for every termination announced.
func (s *Store) Forget(hash string) {
	s.forgets.Add(1)
	s.cache.Remove(hash)
}

// Follow tells the store whether this replica is receiving every
// termination announced (its subscription is confirmed). While it is,
// Admit answers confirmed sessions from memory. Each call with true is a
// new subscription, which may have missed terminations: every session is
// confirmed with Redis again before it is answered from memory.
func (s *Store) Follow(following bool) {
	s.gen.Add(1)
	s.following.Store(following)
}

// Lookup is where Admit found a session.
type Lookup string

// Lookups.
const (
	// LookupMemory: record and liveness from memory, no Redis command.
	LookupMemory Lookup = "memory"
	// LookupHit: record from memory, liveness (or renewal) asked of Redis.
	LookupHit Lookup = "hit"
	// LookupMiss: record read from Redis.
	LookupMiss Lookup = "miss"
)

// OnLookup has f called after every Admit with where the session was
// found (for a metric). Set it before the store is used.
func (s *Store) OnLookup(f func(Lookup)) { s.onLookup = f }

func (s *Store) observe(l Lookup) {
	if s.onLookup != nil {
		s.onLookup(l)
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

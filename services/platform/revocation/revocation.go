// Package revocation spreads revoked grants, and clients removed from the
// auth-server's clients file, to every token verifier of the fleet without
// a Redis round trip per request.
//
// A grant is one authorization (the auth-server's fosite request id, kept
// across refresh-token rotation); every access token carries its id in the
// grant_id claim (tokens.AccessClaims). When the auth-server revokes a grant
// (RFC 7009 revocation of either token, a replayed authorization code,
// refresh-token reuse), a Revoker
//
//  1. records it in one Redis sorted set, {prefix}revocation:grants, member
//     the grant id, score the Unix time in milliseconds at which the record
//     may be forgotten (when the grant's last access token expires, or
//     without that the revocation time + the longest access-token lifetime,
//     + TokenMargin): after that no token of the grant can pass the expiry
//     check anyway;
//  2. announces it on the pub/sub channel {prefix}revocation, payload
//     "<grant id> <expiry ms>".
//
// Each verifier keeps a Set: the unexpired records in memory, loaded at
// start, updated from the subscription, and reloaded in full after every
// (re)subscription and every reconcile interval (default 15 s), so a replica
// that missed announcements (pub/sub is fire-and-forget; a subscription drops
// while Redis restarts) converges within that bound. A subscription whose
// connection goes silent without being closed (a proxy that keeps ACKing
// and forwards nothing) is noticed by its unanswered PING and replaced,
// then every record reloaded, within about redisx.PubSubPingEvery +
// PubSubPongWithin (6 s) of its last reply (redisx.Client.Listen). Records are never
// removed before they expire, so a reload merges into what is known instead
// of replacing it. Memory is bounded by the number of grants revoked within
// one retention (about 100 bytes each): the auth-server retains a record
// until the grant's last access token expires, as the grant's record says
// (RevokeUntil), and, where it does not say, for the longest access-token
// lifetime its configuration allows, not its current ACCESS_TOKEN_TTL,
// which a token issued before it was lowered outlives
// (oauth.RevocationRetention).
//
// Redis unavailable: the Set keeps answering from its last known state; it
// never fails readiness, because token verification itself does not need
// Redis. The dropped subscription is retried at least every ResubscribeWait
// (500 ms) and each new subscription reloads every record, so within about
// that long of Redis answering again the Set has caught up — with what was
// revoked right after the outage too, whose announcement it could not
// receive. A verifier that starts while Redis is down accepts tokens of
// grants revoked before its start until then; these windows are documented
// in docs/reference/oauth.md.
//
// Holders of long-lived state opened with a token (the mcp-gateway's event
// streams) cannot ask Revoked per request, since no request comes: they
// register with Set.OnRevoke and are told each grant the Set learns is
// revoked, on the goroutine that learned it, right after Revoked starts
// answering true for it. A hook costs nothing per holder until a
// revocation arrives (no polling), and it is told as soon as the Set knows:
// within the announcement's delivery (about a millisecond) for a Set that
// is subscribed, within the reconcile interval for one that missed the
// announcement, after a Redis outage by the reload that follows the
// new subscription (within about ResubscribeWait of Redis answering), and
// for a Set whose subscription went silent by the reload that follows its
// replacement (within about 6 s of the silence).
// While Redis is down no hook is called for grants revoked meanwhile —
// nothing new is known — and the Set keeps its last state; the hooks fire
// for them on the first reload that finds them.
//
// Removed clients: the same machinery records and announces the clients
// the operator removed from the auth-server's clients file, so that their
// access tokens stop at every verifier, not only at the auth-server
// (Revoker.RemoveClients, Set.ClientRemoved, Set.OnClientRemoved; the
// encoding and its compatibility with older verifiers are in clients.go).
//
// Redis Cluster: the records are one key per kind (one slot; the
// transaction that writes them touches no other key) and the channel is one classic pub/sub
// channel, which a cluster broadcasts to every node, so the design works
// unchanged; sharded pub/sub is not needed at this volume.
package revocation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/redisx"
)

// DefaultReconcileInterval is how often a Set reloads every record, the
// bound on how long a replica that missed an announcement keeps accepting a
// revoked grant's tokens.
const DefaultReconcileInterval = 15 * time.Second

// ResubscribeWait is the longest a dropped subscription waits before it tries
// again (the wait starts at 100 ms and doubles up to it:
// redisx.PubSubRetryWait), so a Redis back after an outage of any length
// is subscribed to — and every record reloaded — within about this long.
// While Redis is still down a retry costs one refused or timed-out dial
// (REDIS_DIAL_TIMEOUT) per replica. A reload that fails after a
// subscription is retried as often until it succeeds.
const ResubscribeWait = redisx.PubSubRetryWait

// MaxGrantIDLength bounds a grant id (fosite request ids are UUIDs, 36
// characters); longer or malformed ids are refused by Revoke and ignored in
// announcements.
const MaxGrantIDLength = 128

// ErrInvalidGrantID is returned by Revoke for an empty, overlong or
// malformed grant id.
var ErrInvalidGrantID = errors.New("revocation: invalid grant id")

// recordsKey and channel are the Redis names under the install's prefix.
func recordsKey(rdb *redisx.Client) string { return rdb.Key("revocation", "grants") }
func channel(rdb *redisx.Client) string    { return rdb.Key("revocation") }

func validGrantID(id string) bool {
	if id == "" || len(id) > MaxGrantIDLength {
		return false
	}
	for _, r := range id {
		if r <= ' ' || r > '~' {
			return false
		}
	}
	return true
}

// Revoker records and announces revoked grants (auth-server side).
type Revoker struct {
	rdb    *redisx.Client
	retain time.Duration
	now    func() time.Time
	// local, when set, learns each revocation at once, so the revoking
	// replica refuses the grant even before its own subscription delivers.
	local *Set
}

// NewRevoker returns a Revoker whose records live for retain: the longest
// lifetime any access token may have plus the verifiers' clock leeway.
// Revokers with different retentions may share the records (a rollout):
// each record keeps the longer expiry (ZADD GT) and the key is never
// shortened (redisx.ExpireAtLeast). local may be nil.
func NewRevoker(rdb *redisx.Client, retain time.Duration, local *Set) *Revoker {
	return &Revoker{rdb: rdb, retain: retain, now: time.Now, local: local}
}

// TokenMargin is how long a record outlives the access tokens it names
// (RevokeUntil): the verifiers' clock leeway (30 s) and a minute for
// tokens minted while the revocation was under way.
const TokenMargin = 90 * time.Second

// Revoke records grantID as revoked for the Revoker's retention and
// announces it: RevokeUntil without a known end.
func (r *Revoker) Revoke(ctx context.Context, grantID string) error {
	return r.RevokeUntil(ctx, grantID, time.Time{})
}

// RevokeUntil records grantID as revoked and announces it. The record
// lives until tokensEnd, when the last access token issued with the grant
// expires, plus TokenMargin; with the zero tokensEnd (unknown), for the
// Revoker's retention — unless the grant is recorded already, whose
// record (made when its end was known, or for the retention) is kept as
// it is: a grant revoked again once its state is gone (a reused code,
// say) does not make a tight record the retention's. A record is never
// shortened (ZADD GT), nor the key (redisx.ExpireAtLeast). It returns a
// Redis error unwrapped, so callers map it to their unavailable error.
func (r *Revoker) RevokeUntil(ctx context.Context, grantID string, tokensEnd time.Time) error {
	if !validGrantID(grantID) {
		return ErrInvalidGrantID
	}
	now := r.now()
	exp := now.Add(r.retain)
	if !tokensEnd.IsZero() {
		exp = tokensEnd.Add(TokenMargin)
		if tokensEnd.Before(now) {
			exp = now.Add(TokenMargin)
		}
	}
	key := recordsKey(r.rdb)
	pipe := r.rdb.TxPipeline()
	pipe.ZRemRangeByScore(ctx, key, "-inf", "("+strconv.FormatInt(now.UnixMilli(), 10))
	z := redis.Z{Score: float64(exp.UnixMilli()), Member: grantID}
	if tokensEnd.IsZero() {
		pipe.ZAddNX(ctx, key, z)
	} else {
		pipe.ZAddGT(ctx, key, z)
	}
	score := pipe.ZScore(ctx, key, grantID)
	redisx.ExpireAtLeast(ctx, pipe, key, exp.Sub(now)+time.Minute)
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	// The record as it is now: this one, or a longer one kept.
	recorded := max(int64(score.Val()), exp.UnixMilli())
	if tokensEnd.IsZero() {
		recorded = int64(score.Val())
	}
	if r.local != nil {
		r.local.add(grantID, recorded)
	}
	// Announced only once recorded, so a subscriber that reloads on the
	// announcement finds the record; outside the transaction, because
	// PUBLISH names no key (a cluster routes it anywhere). A lost
	// announcement is caught by the reconcile.
	return r.rdb.Publish(ctx, channel(r.rdb), grantID+" "+strconv.FormatInt(recorded, 10)).Err()
}

// Options configure a Set.
type Options struct {
	Redis *redisx.Client
	Log   *slog.Logger
	// ReconcileInterval is how often every record is reloaded (default
	// DefaultReconcileInterval).
	ReconcileInterval time.Duration
	// NoSubscribe skips the announcements: the Set converges by
	// reconciling only. Tests use it to play a replica that misses every
	// announcement.
	NoSubscribe bool
	// Metrics, when set, receives tollgate_revocation_* metrics.
	Metrics prometheus.Registerer
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Set is a verifier's in-memory view of the revoked grants. Revoked is a
// map lookup under a read lock; it never touches Redis.
type Set struct {
	o Options

	mu     sync.RWMutex
	grants map[string]grantRecord // by grant id

	reloadMu sync.Mutex // one reload at a time
	metrics  *metrics

	revokeHooks hookList // OnRevoke's

	// clients are the removed clients (clients.go), under mu.
	clients     map[string]clientRecord
	clientHooks hookList // OnClientRemoved's
}

// New returns an empty Set; Start loads and follows the records.
func New(o Options) (*Set, error) {
	if o.Redis == nil {
		return nil, errors.New("revocation: Redis is required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.ReconcileInterval <= 0 {
		o.ReconcileInterval = DefaultReconcileInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Set{o: o, grants: map[string]grantRecord{}, clients: map[string]clientRecord{}}
	m, err := newMetrics(o.Metrics, s)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	return s, nil
}

// Revoked reports whether grantID was revoked. An empty id (a token issued
// before grant ids existed) is never revoked.
func (s *Set) Revoked(grantID string) bool {
	if grantID == "" {
		return false
	}
	s.mu.RLock()
	rec, ok := s.grants[grantID]
	s.mu.RUnlock()
	return ok && s.o.Now().UnixMilli() < rec.exp
}

// Len is the number of records held (expired ones included until the next
// reload prunes them).
func (s *Set) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.grants)
}

// OnRevoke registers f to be called with the id of each grant the Set
// learns is revoked from now on: from an announcement, from the local
// Revoker, or from a reload that finds a record the Set did not hold (a
// missed announcement). It is called once per revocation, after Revoked
// answers true for the grant, on the goroutine that learned it (the
// subscription's, the reload's that follows each subscription, the
// reconcile's, Revoke's caller's), so f must return
// quickly: it holds up the announcements after it. A grant revoked again
// while its record is held (the record extended) is not reported again,
// and grants already held when f was registered are not reported: a holder
// that registers state after OnRevoke asks Revoked once for it, which
// closes the gap between its admission and its registration. remove
// unregisters f; f may still be running when remove returns.
func (s *Set) OnRevoke(f func(grantID string)) (remove func()) {
	return s.revokeHooks.add(f)
}

// learned tells the hooks of grants that have just become revoked.
func (s *Set) learned(ids ...string) { s.revokeHooks.tell(ids) }

// hookList is a set of hooks (OnRevoke's, OnClientRemoved's), each told
// the ids a Set has just learned.
type hookList struct {
	mu    sync.Mutex
	hooks map[*func(string)]struct{} // by identity
}

// add registers f until remove is called.
func (l *hookList) add(f func(string)) (remove func()) {
	key := &f
	l.mu.Lock()
	if l.hooks == nil {
		l.hooks = map[*func(string)]struct{}{}
	}
	l.hooks[key] = struct{}{}
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		delete(l.hooks, key)
		l.mu.Unlock()
	}
}

// tell calls every hook registered now with each id, in order, outside
// the lock (a hook may register or remove hooks).
func (l *hookList) tell(ids []string) {
	if len(ids) == 0 {
		return
	}
	l.mu.Lock()
	hooks := make([]func(string), 0, len(l.hooks))
	for f := range l.hooks {
		hooks = append(hooks, *f)
	}
	l.mu.Unlock()
	for _, id := range ids {
		for _, f := range hooks {
			f(id)
		}
	}
}

func (s *Set) add(id string, exp int64) {
	now := s.o.Now().UnixMilli()
	s.mu.Lock()
	learned := mergeRecord(s.grants, id, grantRecord{exp: exp}, now)
	s.mu.Unlock()
	if learned {
		s.learned(id)
	}
}

// grantRecord is what a Set holds for one revoked grant: the latest
// record expiry it heard of, Unix ms.
type grantRecord struct{ exp int64 }

func (r grantRecord) expiry() int64 { return r.exp }

// merge: a grant is revoked or not, so a later expiry only extends the
// record; it refuses no more tokens.
func (r grantRecord) merge(rec grantRecord) (grantRecord, bool) {
	return grantRecord{exp: max(r.exp, rec.exp)}, false
}

// record is what a Set holds for one id (a revoked grant, a removed
// client) until its expiry, Unix ms.
type record[R any] interface {
	expiry() int64
	// merge is the record of what the receiver and rec say together, and
	// whether it refuses tokens the receiver did not.
	merge(rec R) (R, bool)
}

// mergeRecord merges rec into m's record of id, under mu, and reports
// whether the Set learned something that refuses more tokens: a record it
// did not hold (or held expired: its tokens have expired), or one that
// refuses more than the one it held (merge). An expired rec is ignored.
func mergeRecord[R record[R]](m map[string]R, id string, rec R, now int64) bool {
	if rec.expiry() <= now {
		return false
	}
	old, held := m[id]
	if !held || old.expiry() <= now {
		m[id] = rec
		return true
	}
	next, more := old.merge(rec)
	m[id] = next
	return more
}

// pruneRecords drops m's expired records, under mu.
func pruneRecords[R record[R]](m map[string]R, now int64) {
	maps.DeleteFunc(m, func(_ string, rec R) bool { return rec.expiry() <= now })
}

// Start loads the records once (bounded by ctx and the Redis client's
// timeouts; a failure is logged and the Set starts empty) and then follows
// announcements and reconciles in the background until ctx ends.
func (s *Set) Start(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if err := s.Reload(lctx); err != nil {
		s.o.Log.Warn("revoked grants not loaded at start; serving without them until Redis answers", "err", err)
	}
	cancel()
	go s.reconcile(ctx)
	if !s.o.NoSubscribe {
		go s.subscribe(ctx)
	}
}

// Reload reads every unexpired record from Redis and merges it into the
// Set, dropping expired records. The hooks (OnRevoke) hear of the records
// it found new after the merge, outside its lock: a hook may call Reload.
func (s *Set) Reload(ctx context.Context) error {
	s.reloadMu.Lock()
	learned, err := s.reload(ctx)
	var removed []string
	if err == nil {
		removed, err = s.reloadClients(ctx)
	}
	if err == nil {
		s.metrics.reloaded(s.o.Now())
	}
	s.reloadMu.Unlock()
	// The grants learned are told even when the clients' read failed: they
	// are held already.
	s.learned(learned...)
	s.learnedClients(removed...)
	return err
}

// reload is Reload's merge, under reloadMu; it returns the grants it
// found that the Set did not hold.
func (s *Set) reload(ctx context.Context) ([]string, error) {
	now := s.o.Now().UnixMilli()
	zs, err := s.o.Redis.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
		Key: recordsKey(s.o.Redis), ByScore: true, Start: "(" + strconv.FormatInt(now, 10), Stop: "+inf",
	}).Result()
	if err != nil {
		s.metrics.reloadFailed()
		return nil, fmt.Errorf("revocation: load revoked grants: %w", err)
	}
	var learned []string
	s.mu.Lock()
	pruneRecords(s.grants, now)
	for _, z := range zs {
		id, _ := z.Member.(string)
		if validGrantID(id) && mergeRecord(s.grants, id, grantRecord{exp: int64(z.Score)}, now) {
			learned = append(learned, id)
		}
	}
	s.mu.Unlock()
	return learned, nil
}

func (s *Set) reconcile(ctx context.Context) {
	t := time.NewTicker(s.o.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Reload(ctx); err != nil && ctx.Err() == nil {
				s.o.Log.Warn("revoked grants not reconciled; keeping the last known state", "err", err)
			}
		}
	}
}

// subscribe follows announcements (redisx.Client.Listen, which replaces a
// subscription that breaks or goes silent). Every confirmed subscription
// (the first and each after a replacement) triggers a full reload, retried
// until it succeeds, because announcements sent while unsubscribed are
// lost.
func (s *Set) subscribe(ctx context.Context) {
	resync := make(chan struct{}, 1)
	go s.resync(ctx, resync)
	s.o.Redis.Listen(ctx, []string{channel(s.o.Redis)}, redisx.PubSubHandler{
		Kind: "revocation",
		Subscribed: func(context.Context) {
			select {
			case resync <- struct{}{}:
			default: // one pending already: it reloads after this subscription
			}
		},
		Lost: func(err error) {
			s.o.Log.Info("revocation subscription lost; subscribing again, then reloading every record", "err", err)
		},
		Message: func(_ context.Context, m *redis.Message) { s.announcement(m.Payload) },
	})
}

// resync reloads every record after each subscription it is told of,
// retrying (from 100 ms, doubling up to ResubscribeWait) until a reload
// succeeds: Redis answered the subscription, so it should answer the
// reload too, but the command may take a connection that broke with the
// subscription's (a proxy that went silent), or meet a breaker still open.
// It runs beside the subscription, whose announcements are merged
// meanwhile.
func (s *Set) resync(ctx context.Context, resync <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-resync:
		}
		backoff := 100 * time.Millisecond
		for {
			err := s.Reload(ctx)
			if err == nil || ctx.Err() != nil {
				break
			}
			s.o.Log.Warn("revoked grants not reloaded after subscribing; retrying", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, ResubscribeWait)
		}
	}
}

// announcement merges one announcement: a revoked grant or a removed
// client.
func (s *Set) announcement(payload string) {
	if c, ok := parseClientAnnouncement(payload); ok {
		s.addClient(c.id, c.rec)
		s.metrics.announced()
		return
	}
	id, exp, ok := parseAnnouncement(payload)
	if !ok {
		s.o.Log.Warn("malformed revocation announcement ignored")
		return
	}
	s.add(id, exp)
	s.metrics.announced()
}

func parseAnnouncement(p string) (string, int64, bool) {
	id, expText, ok := strings.Cut(p, " ")
	if !ok || !validGrantID(id) {
		return "", 0, false
	}
	exp, err := strconv.ParseInt(expText, 10, 64)
	if err != nil || exp <= 0 {
		return "", 0, false
	}
	return id, exp, true
}

// Follow is the one call each service's Run makes: a Set configured by cfg,
// loaded and followed until ctx ends.
func Follow(ctx context.Context, rdb *redisx.Client, cfg config.Revocation, log *slog.Logger, reg prometheus.Registerer) (*Set, error) {
	s, err := New(Options{Redis: rdb, Log: log, ReconcileInterval: cfg.ReconcileInterval, Metrics: reg})
	if err != nil {
		return nil, err
	}
	s.Start(ctx)
	return s, nil
}

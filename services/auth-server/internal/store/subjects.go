package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ory/fosite"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/redisx"
)

// The grants of one subject (the connected-apps capability) are indexed in
// one sorted set, as:subject-grants:{sha256(subject)}: member the grant id,
// score when the grant was created (Unix ms, never changed). The subject is
// hashed like every other identifier in keys.
//
// The set outlives every grant in it without being touched on every
// refresh: each renewal sets its TTL to the grant's TTL plus indexSlack,
// never shortening it (redisx.ExpireAtLeast: a grant with a shorter
// lifetime, without a refresh token, must not cut the set short under an
// older grant), and records in the grant's hash (the second part
// of its "rotated" field, grant.go) until when the set is known to live; a
// rotation renews the set only when the grant would otherwise outlive it,
// about once per indexSlack per grant.
//
// The set is bounded: members whose grant record is gone (revoked,
// expired) are dropped when the set is read, and by a sweep of the whole
// set. The pipeline that lists a grant also marks the interval of the
// store's clock it falls in (SET NX of sweepMarkKey, in the set's hash
// slot, living one interval); only the grant whose SET created the mark,
// the first of the interval, sweeps, and only when it finds more than
// sweepAbove members: a subject adding many grants pays the sweep at most
// once per sweepEvery, not once per grant. A sweep keeps members younger
// than sweepMinAge. So when a grant is listed the set holds at most
// sweepAbove members, or the grants live at the interval's first grant,
// plus in both cases the members added since, and within sweepMinAge
// before, that first grant: at most those added in the last sweepEvery +
// sweepMinAge.
const (
	// indexSlack is how much longer than the renewing grant the set lives.
	indexSlack = 24 * time.Hour
	// sweepAbove is the number of members above which a new grant sweeps
	// the set (at most once per sweepEvery).
	sweepAbove = 32
	// sweepEvery is the interval in which a subject's set is swept at most
	// once.
	sweepEvery = time.Minute
	// sweepMinAge: a member this young is never swept; its grant is listed
	// before it is written (indexGrant), so its record may be on its way.
	sweepMinAge = time.Minute
)

// ErrGrantNotFound means the grant is not one of the subject's live grants.
var ErrGrantNotFound = errors.New("grant not found")

// Grant is one live grant of a subject, as the connected-apps capability
// shows it.
type Grant struct {
	ID        string
	ClientID  string
	Scopes    []string
	Audiences []string
	Created   time.Time
	// LastUsed is when tokens were last issued with the grant: the code
	// redemption or the latest refresh. Calls made with its access tokens
	// are verified locally by each service and not recorded.
	LastUsed time.Time
}

func (s *Store) subjectKey(sub string) string { return s.k("subject-grants", redisx.Hash(sub)) }

// subjectOf returns the subject of a grant's request.
func subjectOf(r fosite.Requester) string {
	if r == nil || r.GetSession() == nil {
		return ""
	}
	return r.GetSession().GetSubject()
}

// sweepMarkKey marks that the interval of the store's clock holding now
// has had (or is having) its sweep of the subject's set subjectKey. Its
// hash tag is the set's whole key (which has none, so its slot is the
// hash of the whole key): the mark is in the set's slot, and the listing
// pipeline touches no node the set's commands do not.
func (s *Store) sweepMarkKey(subjectKey string, now time.Time) string {
	return s.k("subject-sweep", redisx.Tag(subjectKey), strconv.FormatInt(now.UnixMilli()/sweepEvery.Milliseconds(), 10))
}

// listing is a grant's listing under its subject, queued on a pipeline.
type listing struct {
	sub  string        // "" without a subject: nothing queued
	card *redis.IntCmd // the set's size after the listing
	mark *redis.BoolCmd
	// id, created and ttl are the member, its score and the set's TTL, for
	// listing it again (relistGrant).
	id      string
	created time.Time
	ttl     time.Duration
}

// sweepDue reports, once the pipeline ran, whether this grant sweeps the
// set: it is over sweepAbove and the grant set the interval's sweep mark.
func (l listing) sweepDue() bool {
	return l.sub != "" && l.card.Err() == nil && l.card.Val() > sweepAbove && l.mark.Err() == nil && l.mark.Val()
}

// listGrant queues on pipe the listing of a new grant under its subject,
// to be applied before the grant is written, so that no grant whose tokens
// were issued is unlisted; a failed redemption leaves a member without a
// record, which reading or a sweep drops. It returns the listing and until
// when the set lives at least, for the grant's record (without a subject:
// when an index would have to be renewed anyway).
func (s *Store) listGrant(ctx context.Context, pipe redis.Pipeliner, r fosite.Requester, grantTTL time.Duration) (listing, time.Time) {
	now := s.now()
	until := now.Add(grantTTL + indexSlack)
	sub := subjectOf(r)
	if sub == "" {
		return listing{}, until
	}
	key := s.subjectKey(sub)
	pipe.ZAddNX(ctx, key, redis.Z{Score: float64(now.UnixMilli()), Member: r.GetID()})
	redisx.ExpireAtLeast(ctx, pipe, key, grantTTL+indexSlack)
	l := listing{sub: sub, card: pipe.ZCard(ctx, key), id: r.GetID(), created: now, ttl: grantTTL + indexSlack}
	// The mark outlives its interval: it is set within the interval and
	// lives one interval (of Redis's clock, which the store's follows
	// outside tests; a later interval has another key anyway).
	l.mark = pipe.SetNX(ctx, s.sweepMarkKey(key, now), "1", sweepEvery)
	return l, until
}

// relistAfter is how long after a redemption whose listing failed its
// grant is listed again (relistGrant): long enough for a failing node to
// have been failed over or a wrong-typed key fixed, short against the
// day a rotation would take.
const relistAfter = time.Second

// relistGrant lists again, once and in the background (relistAfter
// later), a grant whose listing failed while its redemption succeeded
// (execRedeem): the grant is the subject's to see and revoke (Grants,
// RevokeSubjectGrant), and otherwise it would wait for a rotation to renew
// the index — never, for a grant without a refresh token. Best effort: it
// never fails the request; should it fail too (or the store be closed
// first: Close), the rotation's renewal remains, and the failure is
// logged at warn and counted (relistDone).
func (s *Store) relistGrant(ctx context.Context, l listing) {
	stop, ok := s.relists.add()
	if !ok {
		s.relistDone(l, "closed", errStoreClosed)
		return
	}
	ctx = context.WithoutCancel(ctx)
	key := s.subjectKey(l.sub)
	go func() {
		defer s.relists.done()
		t := time.NewTimer(relistAfter)
		defer t.Stop()
		select {
		case <-stop.Done():
			s.relistDone(l, "closed", errStoreClosed)
			return
		case <-t.C:
		}
		if stop.Err() != nil { // both were ready: select chose at random
			s.relistDone(l, "closed", errStoreClosed)
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(stop, cancel)()
		pipe := s.rdb.Pipeline()
		pipe.ZAddNX(ctx, key, redis.Z{Score: float64(l.created.UnixMilli()), Member: l.id})
		redisx.ExpireAtLeast(ctx, pipe, key, l.ttl)
		_, err := pipe.Exec(ctx)
		switch {
		case err == nil:
			s.relistDone(l, "ok", nil)
		case stop.Err() != nil && errors.Is(err, context.Canceled):
			s.relistDone(l, "closed", fmt.Errorf("%w: %w", errStoreClosed, err))
		default:
			s.relistDone(l, "failed", err)
		}
	}()
}

var errStoreClosed = errors.New("store closed")

// relistDone counts a re-listing's result and logs one that did not list
// the grant. The log names the grant by its id and the subject by its
// hash (the index's key), as keys do: a listing holds no token, and the
// subject may be an e-mail address.
func (s *Store) relistDone(l listing, result string, err error) {
	s.relisted.WithLabelValues(result).Inc()
	if err == nil {
		return
	}
	s.log.Warn("grant not listed under its subject: connected apps do not show it and revoking the subject's grants misses it until a refresh lists it (never, without a refresh token)",
		"grant_id", l.id, "subject_hash", redisx.Hash(l.sub), "result", result, "error", err.Error())
}

// newRelistCounter makes the counter with its three series at zero, so
// that an alert on failed re-listings has a series before the first.
func newRelistCounter() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_auth_grant_relists_total",
		Help: "Background re-listings of a grant under its subject after its listing failed at redemption, by result: ok, failed (logged), closed (abandoned at shutdown, logged).",
	}, []string{"result"})
	for _, r := range []string{"ok", "failed", "closed"} {
		c.WithLabelValues(r)
	}
	return c
}

// relists tracks the running re-listings (relistGrant) so that Close can
// stop them and wait for them. The zero value is ready.
type relists struct {
	mu     sync.Mutex
	closed bool
	stop   context.Context // done once closed
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// add counts one more running re-listing and returns the context that
// is done when the store closes; false once it is closed.
func (r *relists) add() (context.Context, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, false
	}
	if r.stop == nil {
		r.stop, r.cancel = context.WithCancel(context.Background())
	}
	r.wg.Add(1)
	return r.stop, true
}

func (r *relists) done() { r.wg.Done() }

// close refuses new re-listings, stops the running ones and waits for them.
func (r *relists) close() {
	r.mu.Lock()
	r.closed = true
	if r.cancel != nil {
		r.cancel()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// indexGrant lists a grant under its subject at once (listGrant) and
// returns until when the set lives (Unix ms).
func (s *Store) indexGrant(ctx context.Context, r fosite.Requester, refresh bool) (string, error) {
	pipe := s.rdb.Pipeline()
	l, until := s.listGrant(ctx, pipe, r, s.grantTTL(r, refresh))
	if l.sub != "" {
		if _, err := pipe.Exec(ctx); err != nil {
			return "", unavailable(err)
		}
		if l.sweepDue() {
			s.sweepIndex(ctx, s.subjectKey(l.sub))
		}
	}
	return strconv.FormatInt(until.UnixMilli(), 10), nil
}

// sweepIndex drops the members of a subject's set whose grant record is
// gone (under none of its keys), except those younger
// than sweepMinAge. Best effort: a failure leaves the set as it was.
func (s *Store) sweepIndex(ctx context.Context, key string) {
	members, err := s.rdb.ZRangeByScore(ctx, key, &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(s.now().Add(-sweepMinAge).UnixMilli(), 10),
	}).Result()
	if err != nil || len(members) == 0 {
		return
	}
	pipe := s.rdb.Pipeline()
	cur := make([]*redis.IntCmd, len(members))
	legacy := make([]*redis.IntCmd, len(members))
	for i, m := range members {
		cur[i] = pipe.Exists(ctx, s.grantKey(m), s.oldGrantKey(m)) // one slot
		legacy[i] = pipe.Exists(ctx, s.legacyGrantKey(m))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return
	}
	var gone []any
	for i, m := range members {
		if cur[i].Val() == 0 && legacy[i].Val() == 0 {
			gone = append(gone, m)
		}
	}
	if len(gone) > 0 {
		_ = s.rdb.ZRem(ctx, key, gone...).Err()
	}
}

// renewIndex keeps a subject's set alive at least ttl more and lists the
// grant in it (a grant from before the index existed gets listed on its
// first rotation); it runs before the rotation that makes the grant live
// longer, so the set never expires before a grant in it.
func (s *Store) renewIndex(ctx context.Context, r fosite.Requester, ttl time.Duration) error {
	sub := subjectOf(r)
	if sub == "" {
		return nil
	}
	key := s.subjectKey(sub)
	pipe := s.rdb.Pipeline()
	pipe.ZAddNX(ctx, key, redis.Z{Score: float64(s.now().UnixMilli()), Member: r.GetID()})
	redisx.ExpireAtLeast(ctx, pipe, key, ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return unavailable(err)
	}
	return nil
}

// Grants returns the live grants of sub, most recently used first.
// newSession makes an empty session of the type the grants store.
func (s *Store) Grants(ctx context.Context, sub string, newSession func() fosite.Session) ([]Grant, error) {
	key := s.subjectKey(sub)
	members, err := s.rdb.ZRangeWithScores(ctx, key, 0, -1).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	pipe := s.rdb.Pipeline()
	recs := make([]*redis.StringCmd, len(members))
	olds := make([]*redis.StringCmd, len(members))
	for i, m := range members {
		recs[i] = pipe.Get(ctx, s.grantKey(m.Member.(string)))
		olds[i] = pipe.HGet(ctx, s.oldGrantKey(m.Member.(string)), fieldRequest)
	}
	if len(members) > 0 {
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, unavailable(err)
		}
	}
	var out []Grant
	var gone []any
	young := s.now().Add(-sweepMinAge)
	for i, m := range members {
		id := m.Member.(string)
		// A grant never refreshed was last used when it was created (its
		// code redeemed, the index's score, in ms); its record holds only
		// the authorization request's time, whole seconds and earlier.
		created := time.UnixMilli(int64(m.Score)).UTC()
		req, last, own := s.ownGrant(ctx, id, recs[i].Val(), olds[i].Val(), sub, newSession)
		if !own {
			// Dropped as sweepIndex drops: never a member younger than
			// sweepMinAge, whose grant may be being created (a redemption
			// lists it before its script writes the record).
			if !req.foreign && created.Before(young) {
				gone = append(gone, id)
			}
			continue
		}
		out = append(out, Grant{
			ID: id, ClientID: req.ClientID, Scopes: req.GrantedScope, Audiences: req.GrantedAudience,
			Created: created, LastUsed: latest(last, created),
		})
	}
	if len(gone) > 0 {
		_ = s.rdb.ZRem(ctx, key, gone...).Err() // best effort; read again next time
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].LastUsed.After(out[j].LastUsed) })
	return out, nil
}

// grantSummary is what the connected-apps capability shows of a grant.
type grantSummary struct {
	ClientID                      string
	GrantedScope, GrantedAudience []string
	// foreign: the grant names the subject but the WithGrantOwner check
	// refused it. It is not the subject's, but its index entry is kept: a grant of an issuer named
	// again (UPSTREAM_PREVIOUS_ISSUERS) is listed again.
	foreign bool
}

// ownGrant decodes a grant's record (rec, format 2, else old, format 1's
// request; "" when absent), its session into newSession(), and reports
// whether it belongs to sub: the record's own subject is checked, so that
// an index entry can never show or revoke another subject's grant, and so
// is the store's WithGrantOwner check. last is when tokens were last
// issued with it.
func (s *Store) ownGrant(ctx context.Context, id, rec, old, sub string, newSession func() fosite.Session) (grantSummary, time.Time, bool) {
	sess := newSession()
	switch {
	case rec != "":
		h, js, err := splitRecord(rec)
		if err != nil {
			return grantSummary{}, time.Time{}, false
		}
		var tail grantTail
		if err := json.Unmarshal([]byte(js), &tail); err != nil {
			return grantSummary{}, time.Time{}, false
		}
		if gs, ok := sess.(GrantSession); ok {
			err = gs.UnmarshalGrant(tail.Session)
		} else {
			err = json.Unmarshal(tail.Session, sess)
		}
		aud, _ := strings.CutPrefix(h.audiences, "!")
		g := grantSummary{ClientID: h.client, GrantedScope: splitList(h.scopes), GrantedAudience: splitList(aud)}
		subs := err == nil && sub != "" && sess.GetSubject() == sub
		g.foreign = subs && s.foreign(sess)
		return g, h.lastUsed(time.Unix(tail.RequestedAt, 0).UTC()), subs && !g.foreign
	case old != "":
		r := record{Session: sess}
		if err := json.Unmarshal([]byte(old), &r); err != nil {
			return grantSummary{}, time.Time{}, false
		}
		g := grantSummary{ClientID: r.ClientID, GrantedScope: r.GrantedScope, GrantedAudience: r.GrantedAudience}
		subs := sub != "" && sess.GetSubject() == sub
		g.foreign = subs && s.foreign(sess)
		return g, r.RequestedAt.UTC(), subs && !g.foreign
	}
	return grantSummary{}, time.Time{}, false
}

// foreign reports whether the store's WithGrantOwner check refuses a
// grant whose session is sess.
func (s *Store) foreign(sess fosite.Session) bool { return s.owned != nil && !s.owned(sess) }

// TokenGrant is what an access token's own grant record says of the
// token acting for its sub (Store.TokenGrantOf).
type TokenGrant int

const (
	// TokenGrantLive: the record is there, names sub, and the store's
	// WithGrantOwner check accepts it.
	TokenGrantLive TokenGrant = iota
	// TokenGrantGone: no record — revoked, expired, or deleted by the
	// purge of docs/guides/upstream-idp.md ("Optional cleanup"), which
	// revokes no access token — or a record that is not sub's (or cannot
	// be read). A token of it is signed and unexpired, but its grant no
	// longer vouches for its sub, which may now be another user's
	// (OpenID Connect Core §2: sub is unique only within its issuer).
	TokenGrantGone
	// TokenGrantRefused: the record names sub but WithGrantOwner refuses
	// it: the auth-server's grant of an upstream issuer it no longer
	// accepts, another user's.
	TokenGrantRefused
)

// TokenGrantOf reads grantID, an access token's grant_id, and says
// whether the token may act for sub (TokenGrantLive) or not, and why
// (TokenGrantGone, TokenGrantRefused). An empty or malformed grant id is
// TokenGrantGone. It reads the record in both formats in one round trip
// (grantRecords); when neither is there, a grant still under its key
// before hash tags is moved first, as a token's use at userinfo moves it
// (runRefresh), so it stays live. It changes nothing else. err is a store
// outage (ErrUnavailable).
func (s *Store) TokenGrantOf(ctx context.Context, sub, grantID string, newSession func() fosite.Session) (TokenGrant, error) {
	if !ValidGrantID(grantID) {
		return TokenGrantGone, nil
	}
	rec, old, err := s.grantRecords(ctx, grantID)
	if err != nil {
		return TokenGrantGone, err
	}
	if rec == "" && old == "" {
		moved, err := s.migrateGrant(ctx, grantID)
		if err != nil || !moved {
			return TokenGrantGone, err
		}
		if rec, old, err = s.grantRecords(ctx, grantID); err != nil {
			return TokenGrantGone, err
		}
	}
	g, _, own := s.ownGrant(ctx, grantID, rec, old, sub, newSession)
	switch {
	case own:
		return TokenGrantLive, nil
	case g.foreign:
		return TokenGrantRefused, nil
	}
	return TokenGrantGone, nil
}

// grantRecords reads grantID's record in both formats in one round trip:
// rec (format 2) and old (format 1's request), "" where absent. err is a
// store outage.
func (s *Store) grantRecords(ctx context.Context, grantID string) (rec, old string, err error) {
	pipe := s.rdb.Pipeline()
	r := pipe.Get(ctx, s.grantKey(grantID))
	o := pipe.HGet(ctx, s.oldGrantKey(grantID), fieldRequest)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return "", "", unavailable(err)
	}
	return r.Val(), o.Val(), nil
}

// SubjectGrantClient returns the client id of grantID if it is one of sub's
// live grants; otherwise ErrGrantNotFound, whoever's it is. It changes
// nothing but dropping an index entry whose grant is gone.
func (s *Store) SubjectGrantClient(ctx context.Context, sub, grantID string, newSession func() fosite.Session) (string, error) {
	if grantID == "" || len(grantID) > 200 {
		return "", ErrGrantNotFound
	}
	key := s.subjectKey(sub)
	if _, err := s.rdb.ZScore(ctx, key, grantID).Result(); errors.Is(err, redis.Nil) {
		return "", ErrGrantNotFound
	} else if err != nil {
		return "", unavailable(err)
	}
	rec, old, err := s.grantRecords(ctx, grantID)
	if err != nil {
		return "", err
	}
	if rec == "" && old == "" {
		_ = s.rdb.ZRem(ctx, key, grantID).Err()
		return "", ErrGrantNotFound
	}
	g, _, own := s.ownGrant(ctx, grantID, rec, old, sub, newSession)
	if !own {
		return "", ErrGrantNotFound
	}
	return g.ClientID, nil
}

// RevokeSubjectGrant revokes grantID if it is one of sub's live grants and
// returns its client id; otherwise ErrGrantNotFound, whoever's it is.
func (s *Store) RevokeSubjectGrant(ctx context.Context, sub, grantID string, newSession func() fosite.Session) (string, error) {
	clientID, err := s.SubjectGrantClient(ctx, sub, grantID, newSession)
	if err != nil {
		return "", err
	}
	if err := s.RevokeGrant(ctx, grantID); err != nil {
		return "", err
	}
	_ = s.rdb.ZRem(ctx, s.subjectKey(sub), grantID).Err()
	return clientID, nil
}

// latest is the later of a and b.
func latest(a, b time.Time) time.Time {
	if a.Before(b) {
		return b
	}
	return a
}

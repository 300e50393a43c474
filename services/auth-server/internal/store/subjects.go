package store

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"time"

	"github.com/ory/fosite"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/redisx"
)

// The grants of one subject (the connected-apps capability) are indexed in
// one sorted set, as:subject-grants:{sha256(subject)}: member the grant id,
// score when the grant was created (Unix ms, never changed). The set lives
// as long as the longest grant in it could (its TTL is renewed with every
// new grant and every rotation); members whose grant record is gone
// (revoked, expired) are dropped when the set is read. The subject is
// hashed like every other identifier in keys.

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

// indexGrant adds a new grant to its subject's set before the grant is
// written, so that no grant exists unlisted: a failed redemption leaves a
// member without a record, which reading drops.
func (s *Store) indexGrant(ctx context.Context, r fosite.Requester, refresh bool) error {
	sub := subjectOf(r)
	if sub == "" {
		return nil
	}
	key := s.subjectKey(sub)
	pipe := s.rdb.Pipeline()
	pipe.ZAddNX(ctx, key, redis.Z{Score: float64(s.now().UnixMilli()), Member: r.GetID()})
	pipe.PExpire(ctx, key, s.grantTTL(r, refresh)+time.Minute)
	if _, err := pipe.Exec(ctx); err != nil {
		return unavailable(err)
	}
	return nil
}

// renewIndex keeps a subject's set alive as long as a rotated grant.
func (s *Store) renewIndex(ctx context.Context, r fosite.Requester) error {
	sub := subjectOf(r)
	if sub == "" {
		return nil
	}
	if err := s.rdb.PExpire(ctx, s.subjectKey(sub), s.grantTTL(r, true)+time.Minute).Err(); err != nil {
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
	reqs := make([]*redis.StringCmd, len(members))
	for i, m := range members {
		reqs[i] = pipe.HGet(ctx, s.grantKey(m.Member.(string)), fieldRequest)
	}
	if len(members) > 0 {
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, unavailable(err)
		}
	}
	var out []Grant
	var gone []any
	for i, m := range members {
		id := m.Member.(string)
		b, err := reqs[i].Result()
		rec, own := ownRecord(b, sub, newSession)
		if err != nil || !own {
			gone = append(gone, id)
			continue
		}
		out = append(out, Grant{
			ID: id, ClientID: rec.ClientID, Scopes: rec.GrantedScope, Audiences: rec.GrantedAudience,
			Created: time.UnixMilli(int64(m.Score)).UTC(), LastUsed: rec.RequestedAt.UTC(),
		})
	}
	if len(gone) > 0 {
		_ = s.rdb.ZRem(ctx, key, gone...).Err() // best effort; read again next time
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].LastUsed.After(out[j].LastUsed) })
	return out, nil
}

// ownRecord decodes a grant record (its session into newSession()) and
// reports whether it belongs to sub: the record's own subject is checked,
// so that an index entry can never show or revoke another subject's grant.
func ownRecord(b string, sub string, newSession func() fosite.Session) (record, bool) {
	sess := newSession()
	rec := record{Session: sess}
	if err := json.Unmarshal([]byte(b), &rec); err != nil {
		return rec, false
	}
	return rec, sub != "" && sess.GetSubject() == sub
}

// RevokeSubjectGrant revokes grantID if it is one of sub's live grants and
// returns its client id; otherwise ErrGrantNotFound, whoever's it is.
func (s *Store) RevokeSubjectGrant(ctx context.Context, sub, grantID string, newSession func() fosite.Session) (string, error) {
	if grantID == "" || len(grantID) > 200 {
		return "", ErrGrantNotFound
	}
	key := s.subjectKey(sub)
	if _, err := s.rdb.ZScore(ctx, key, grantID).Result(); errors.Is(err, redis.Nil) {
		return "", ErrGrantNotFound
	} else if err != nil {
		return "", unavailable(err)
	}
	b, err := s.rdb.HGet(ctx, s.grantKey(grantID), fieldRequest).Result()
	rec, own := ownRecord(b, sub, newSession)
	switch {
	case errors.Is(err, redis.Nil):
		_ = s.rdb.ZRem(ctx, key, grantID).Err()
		return "", ErrGrantNotFound
	case err != nil:
		return "", unavailable(err)
	case !own:
		return "", ErrGrantNotFound
	}
	if err := s.RevokeGrant(ctx, grantID); err != nil {
		return "", err
	}
	_ = s.rdb.ZRem(ctx, key, grantID).Err()
	return rec.ClientID, nil
}

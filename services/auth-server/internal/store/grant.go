package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/redisx"
)

// A grant (one authorization: the fosite request id, kept across refreshes)
// is one Redis hash, as:grant:{<grant id>} (the braces are the Redis Cluster
// hash tag it shares with the code that created it), that lives until its refresh token
// expires (or its access token, without a refresh token):
//
//	req      the grant's request (client, scopes, audience, session), as of
//	         the last rotation
//	rt       the MAC of the current refresh token
//	prev     the MAC of the refresh token it rotated from
//	rotated  "<when that rotation happened>:<until when the subject's grant
//	         index is known to live>" (Unix ms; the first part is empty
//	         before the first rotation, the second in grants stored before
//	         it existed; see subjects.go). One field, not two: a fifth
//	         field would grow the hash's table on the first refresh.
//
// The refresh token names its grant (its handle is "<grant id>.<mac>", see
// the oauth package's token strategy) and access tokens carry the grant id,
// so nothing else is stored per token: the record count and size of a grant
// are constant whatever the number of refreshes.
//
// Rotation rule (docs/reference/oauth.md, "Refresh token rotation"): a
// refresh with the current token rotates (prev := rt, rt := successor). A
// refresh with prev within TTLs.Grace of the rotation is a concurrent
// refresh by the same client: it succeeds and gets the same successor (the
// strategy derives a successor from its predecessor deterministically), so
// no second live branch exists. Any other authentic token of the grant is a
// rotated token reused: fosite revokes the grant.
const (
	fieldRefresh  = "rt"
	fieldPrevious = "prev"
	fieldRotated  = "rotated"
)

func (s *Store) grantKey(id string) string { return s.k("grant", redisx.Tag(id)) }

// legacyGrantKey is a grant's key before hash tags (as:grant:<grant id>).
// A grant found there is moved to grantKey on first use (migrateGrant), so
// an upgrade keeps every refresh token working.
func (s *Store) legacyGrantKey(id string) string { return s.k("grant", id) }

// migrateGrant moves a grant stored under its legacy key to its tagged key,
// keeping its TTL; it reports whether there was one. DUMP/RESTORE works
// across hash slots; of concurrent migrations one RESTORE wins and the
// others meet BUSYKEY, which leaves the winner's (possibly already
// rotated) record alone.
func (s *Store) migrateGrant(ctx context.Context, id string) (bool, error) {
	old := s.legacyGrantKey(id)
	dump, err := s.rdb.Dump(ctx, old).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	} else if err != nil {
		return false, unavailable(err)
	}
	ttl, err := s.rdb.PTTL(ctx, old).Result()
	if err != nil {
		return false, unavailable(err)
	}
	if ttl <= 0 {
		ttl = s.ttl.Refresh
	}
	if err := s.rdb.Restore(ctx, s.grantKey(id), ttl, dump).Err(); err != nil && !strings.HasPrefix(err.Error(), "BUSYKEY") {
		return false, unavailable(err)
	}
	if err := s.rdb.Del(ctx, old).Err(); err != nil {
		return false, unavailable(err)
	}
	return true, nil
}

// splitHandle splits a refresh handle "<grant id>.<mac>".
func splitHandle(h string) (id, mac string, err error) {
	id, mac, ok := strings.Cut(h, ".")
	if !ok || id == "" || mac == "" {
		return "", "", fosite.ErrNotFound
	}
	return id, mac, nil
}

// splitAccess splits an access-token handle "<grant id>.<exp unix>".
func splitAccess(h string) (id string, exp time.Time) {
	id, e, ok := strings.Cut(h, ".")
	if !ok {
		return h, time.Time{}
	}
	if n, err := strconv.ParseInt(e, 10, 64); err == nil {
		exp = time.Unix(n, 0).UTC()
	}
	return id, exp
}

// CreateAccessTokenSession records the grant an access token belongs to.
// Access tokens themselves are not stored (see above); within a
// transaction this only sets the grant's record.
func (s *Store) CreateAccessTokenSession(ctx context.Context, _ string, r fosite.Requester) error {
	return s.pending(ctx, func(t *tx) { t.grant = r })
}

// GetAccessTokenSession returns the grant of an access token by its handle
// "<grant id>.<exp>"; the caller verifies the token itself (signature,
// expiry, audience). The session's access-token expiry is the token's.
func (s *Store) GetAccessTokenSession(ctx context.Context, handle string, session fosite.Session) (fosite.Requester, error) {
	id, exp := splitAccess(handle)
	req, _, err := s.grant(ctx, id, session)
	if err != nil {
		return nil, err
	}
	if !exp.IsZero() && session != nil {
		session.SetExpiresAt(fosite.AccessToken, exp)
	}
	return req, nil
}

// DeleteAccessTokenSession does nothing: an access token is not stored, it
// ends with its expiry or with its grant (RevokeGrant).
func (s *Store) DeleteAccessTokenSession(context.Context, string) error { return nil }

// CreateRefreshTokenSession records the refresh token issued with the
// grant's request; within a transaction it is written at Commit.
func (s *Store) CreateRefreshTokenSession(ctx context.Context, handle, _ string, r fosite.Requester) error {
	if _, _, err := splitHandle(handle); err != nil {
		return fmt.Errorf("refresh token handle: %w", fosite.ErrInvalidTokenFormat)
	}
	return s.pending(ctx, func(t *tx) { t.grant, t.refresh = r, handle })
}

// grant reads the grant's hash and decodes its request.
func (s *Store) grant(ctx context.Context, id string, session fosite.Session) (*fosite.Request, map[string]string, error) {
	if id == "" {
		return nil, nil, fosite.ErrNotFound
	}
	f, err := s.rdb.HGetAll(ctx, s.grantKey(id)).Result()
	if err != nil {
		return nil, nil, unavailable(err)
	}
	if _, ok := f[fieldRequest]; !ok {
		if moved, err := s.migrateGrant(ctx, id); err != nil {
			return nil, nil, err
		} else if moved {
			if f, err = s.rdb.HGetAll(ctx, s.grantKey(id)).Result(); err != nil {
				return nil, nil, unavailable(err)
			}
		}
	}
	b, ok := f[fieldRequest]
	if !ok {
		return nil, nil, fosite.ErrNotFound
	}
	req, err := s.decode(ctx, []byte(b), session)
	if err != nil {
		return nil, nil, err
	}
	return req, f, nil
}

// GetRefreshTokenSession returns the grant of a refresh token (handle
// "<grant id>.<mac>"): the current token, or the previous one within the
// grace window. Any other token of the grant was rotated: it returns the
// request with fosite.ErrInactiveToken and fosite revokes the grant.
func (s *Store) GetRefreshTokenSession(ctx context.Context, handle string, session fosite.Session) (fosite.Requester, error) {
	id, mac, err := splitHandle(handle)
	if err != nil {
		return nil, err
	}
	req, f, err := s.grant(ctx, id, session)
	if err != nil {
		return nil, err
	}
	if sc := scopeOf(ctx); sc != nil {
		sc.mu.Lock()
		if sc.indexUntil == nil {
			sc.indexUntil = map[string]string{}
		}
		_, sc.indexUntil[id], _ = strings.Cut(f[fieldRotated], ":")
		sc.mu.Unlock()
	}
	switch {
	case f[fieldRefresh] == mac:
		return req, nil
	case f[fieldPrevious] == mac && s.withinGrace(f[fieldRotated]):
		return req, nil
	}
	return req, fosite.ErrInactiveToken
}

func (s *Store) withinGrace(rotated string) bool {
	rotated, _, _ = strings.Cut(rotated, ":")
	at, err := strconv.ParseInt(rotated, 10, 64)
	return err == nil && s.now().Sub(time.UnixMilli(at)) <= s.ttl.Grace
}

// RotateRefreshToken marks the presented refresh token rotated; within a
// transaction the decision is taken at Commit, atomically with storing its
// successor (rotateScript).
func (s *Store) RotateRefreshToken(ctx context.Context, _ string, handle string) error {
	if _, _, err := splitHandle(handle); err != nil {
		return err
	}
	return s.pending(ctx, func(t *tx) { t.rotateFrom = handle })
}

// rotateScript applies the rotation rule atomically.
//
//	KEYS[1] the grant hash
//	ARGV[1] MAC presented, ARGV[2] MAC of its successor, ARGV[3] the grant
//	record, ARGV[4] now (Unix ms), ARGV[5] grace (ms), ARGV[6] TTL (ms),
//	ARGV[7] the new index expiry of the rotated field ("": unchanged)
//
// Returns 1 rotated, 2 a concurrent refresh within the grace window (the
// successor is already current; nothing changes), 0 no such grant, -1 the
// presented token is no longer current (reuse, or lost a race).
var rotateScript = redis.NewScript(`
local f = redis.call('HMGET', KEYS[1], 'rt', 'prev', 'rotated')
if not f[1] then return 0 end
local at, ix = string.match(f[3] or '', '^(%d*):?(%d*)$')
if f[1] == ARGV[1] then
  if ARGV[7] ~= '' then ix = ARGV[7] end
  redis.call('HSET', KEYS[1], 'req', ARGV[3], 'rt', ARGV[2], 'prev', ARGV[1], 'rotated', ARGV[4] .. ':' .. (ix or ''))
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  return 1
end
if f[2] == ARGV[1] and f[1] == ARGV[2] and tonumber(at) and tonumber(ARGV[4]) - tonumber(at) <= tonumber(ARGV[5]) then
  return 2
end
return -1
`)

func (s *Store) rotate(ctx context.Context, t *tx) error {
	id, from, err := splitHandle(t.rotateFrom)
	if err != nil {
		return err
	}
	if t.grant == nil || t.refresh == "" {
		return errors.New("refresh token rotation without a successor")
	}
	nid, to, err := splitHandle(t.refresh)
	if err != nil || nid != id || t.grant.GetID() != id {
		return errors.New("refresh token rotation across grants")
	}
	b, err := encode(t.grant)
	if err != nil {
		return err
	}
	now, ttl := s.now(), s.grantTTL(t.grant, true)
	// The subject's index must outlive the grant as it will be after this
	// rotation: renewed first (subjects.go) when the grant's record (read
	// by GetRefreshTokenSession in this request) says it might not —
	// about once per indexSlack; without a request scope, always.
	ix := ""
	if s.indexDue(ctx, id, now.Add(ttl)) {
		if err := s.renewIndex(ctx, t.grant, ttl+indexSlack); err != nil {
			return err
		}
		ix = strconv.FormatInt(now.Add(ttl+indexSlack).UnixMilli(), 10)
	}
	n, err := rotateScript.Run(ctx, s.rdb, []string{s.grantKey(id)},
		from, to, b, now.UnixMilli(), s.ttl.Grace.Milliseconds(), ttl.Milliseconds(), ix).Int()
	switch {
	case err != nil:
		return unavailable(err)
	case n == 0:
		return fosite.ErrNotFound
	case n < 0:
		return fosite.ErrInactiveToken
	}
	return nil
}

// indexDue reports whether grant id's subject index may expire before
// until, going by the grant's rotated field as this request read it.
func (s *Store) indexDue(ctx context.Context, id string, until time.Time) bool {
	sc := scopeOf(ctx)
	if sc == nil {
		return true
	}
	sc.mu.Lock()
	v, ok := sc.indexUntil[id]
	sc.mu.Unlock()
	at, err := strconv.ParseInt(v, 10, 64)
	return !ok || err != nil || at < until.UnixMilli()
}

// putGrant stores a grant's record outside a code redemption or rotation
// (fosite does not do this in the flows we compose; tests and tools do).
func (s *Store) putGrant(ctx context.Context, t *tx) error {
	b, err := encode(t.grant)
	if err != nil {
		return err
	}
	ix, err := s.indexGrant(ctx, t.grant, t.refresh != "")
	if err != nil {
		return err
	}
	key := s.grantKey(t.grant.GetID())
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, key, fieldRequest, b)
	if ix != "" {
		pipe.HSet(ctx, key, fieldRotated, ":"+ix)
	}
	if t.refresh != "" {
		_, mac, _ := splitHandle(t.refresh)
		pipe.HSet(ctx, key, fieldRefresh, mac)
	}
	pipe.PExpire(ctx, key, s.grantTTL(t.grant, t.refresh != ""))
	if _, err := pipe.Exec(ctx); err != nil {
		return unavailable(err)
	}
	return nil
}

// DeleteRefreshTokenSession does nothing: fosite calls it on reuse just
// before revoking the grant, which removes every token of it.
func (s *Store) DeleteRefreshTokenSession(context.Context, string) error { return nil }

// RevokeRefreshToken revokes the whole grant (refresh-token reuse, RFC 7009
// revocation, code replay).
func (s *Store) RevokeRefreshToken(ctx context.Context, grantID string) error {
	return s.pending(ctx, func(t *tx) { t.revoke = append(t.revoke, grantID) })
}

// RevokeAccessToken revokes the whole grant too (RFC 7009 §2.1 lets a
// server revoke the grant's other tokens; a leaked access token is a
// leaked grant).
func (s *Store) RevokeAccessToken(ctx context.Context, grantID string) error {
	return s.pending(ctx, func(t *tx) { t.revoke = append(t.revoke, grantID) })
}

// RevokeGrant ends a grant: it is announced to every verifier of the fleet
// (SetGrantRevoker), and its record is deleted, so its refresh tokens are
// unknown from now on and its access tokens fail at userinfo and
// introspection. It is the one place a grant is revoked.
func (s *Store) RevokeGrant(ctx context.Context, grantID string) error {
	if grantID == "" {
		return nil
	}
	if sc := scopeOf(ctx); sc != nil {
		sc.mu.Lock()
		done := sc.revoked[grantID]
		if sc.revoked == nil {
			sc.revoked = map[string]bool{}
		}
		sc.revoked[grantID] = true
		sc.mu.Unlock()
		if done {
			return nil
		}
	}
	// Tell the fleet first (services/platform/revocation): should that
	// fail, the grant stays and the caller answers 503 and may retry.
	if err := s.announceRevoked(ctx, grantID); err != nil {
		return err
	}
	// Two DELs in one round trip, not one DEL of two keys: the legacy key
	// (migrateGrant) is in another hash slot.
	pipe := s.rdb.Pipeline()
	pipe.Del(ctx, s.grantKey(grantID))
	pipe.Del(ctx, s.legacyGrantKey(grantID))
	if _, err := pipe.Exec(ctx); err != nil {
		return unavailable(err)
	}
	return nil
}

// apply writes a transaction: a code redemption (with the grant it
// creates), a rotation, or a grant record alone; then revocations.
func (s *Store) apply(ctx context.Context, t *tx) error {
	var err error
	switch {
	case t.redeem != "":
		err = s.redeem(ctx, t)
	case t.rotateFrom != "":
		err = s.rotate(ctx, t)
	case t.grant != nil:
		err = s.putGrant(ctx, t)
	}
	if err != nil {
		return err
	}
	for i, id := range t.revoke {
		if slices.Contains(t.revoke[:i], id) {
			continue
		}
		if err := s.RevokeGrant(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

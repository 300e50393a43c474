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
// is one Redis string, as:grant2:{<grant id>} (record.go; the braces are
// the Redis Cluster hash tag it shares with the code that created it), that
// lives until its refresh token expires (or its access token, without a
// refresh token).
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
//
// A refresh is one round trip: refreshScript reads the grant, applies the
// rule and rotates, when the token request said beforehand what it will
// ask (ExpectRefresh) and the grant allows it; fosite's reads and writes of
// that request are then served from the script's answer.
//
// Grants written before format 2 are hashes, as:grant:{<grant id>} (and,
// before hash tags, as:grant:<grant id>): the scripts read them, and their
// first rotation rewrites them in format 2 (migrateScript).

func (s *Store) grantKey(id string) string { return s.k("grant2", redisx.Tag(id)) }

// oldGrantKey is a format-1 grant's key (a hash: req, rt, prev, rotated).
func (s *Store) oldGrantKey(id string) string { return s.k("grant", redisx.Tag(id)) }

// legacyGrantKey is a format-1 grant's key before hash tags
// (as:grant:<grant id>). A grant found there is moved to oldGrantKey on
// first use (migrateGrant), so an upgrade keeps every refresh token working.
func (s *Store) legacyGrantKey(id string) string { return s.k("grant", id) }

// revokedKey marks a grant revoked for moveWindow×2 (RevokeGrant), in the
// grant's hash slot, so that a move from the legacy key (another slot)
// that read the grant before the revocation deleted it cannot restore it
// after (moveScript).
func (s *Store) revokedKey(id string) string { return s.k("revoked", redisx.Tag(id)) }

// moveWindow bounds a move from the legacy key: from its start (the Redis
// clock of the grant's slot) to its RESTORE. A move that took longer is
// refused (ErrUnavailable; the next use moves again), so the revocation
// mark needs to outlive a revocation by no more than twice this.
const moveWindow = time.Minute

// Fields of a format-1 grant hash.
const (
	fieldRefresh  = "rt"
	fieldPrevious = "prev"
	fieldRotated  = "rotated" // "<rotation ms>:<index until ms>"
)

// moveStartScript starts a move: the Redis time (Unix ms) of the grant's
// slot, or -1 when the grant was revoked (its mark is there).
//
//	KEYS[1] the revocation mark (revokedKey)
var moveStartScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local t = redis.call('TIME')
return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`)

// moveScript restores a legacy grant's DUMP under oldGrantKey unless the
// grant was revoked since the move started.
//
//	KEYS[1] oldGrantKey, KEYS[2] the revocation mark, KEYS[3] grantKey
//	(one slot); ARGV[1] the DUMP, ARGV[2] its TTL (ms), ARGV[3] when the
//	move started (moveStartScript), ARGV[4] moveWindow (ms)
//
// Returns 1 (restored), 2 (moved before: either key exists), 0 (revoked),
// or an error when the move took longer than the window.
//
// Why this is enough (RevokeGrant deletes the legacy key first, then sets
// the mark and deletes the slot's keys): a move that read the grant did so
// before the legacy key's deletion; if it restores before the mark is set,
// the revocation's DEL that follows removes what it restored; if after,
// either the mark is there (refused) or it expired, 2×moveWindow after it
// was set, which is more than moveWindow after the move started (refused).
var moveScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now - tonumber(ARGV[3]) > tonumber(ARGV[4]) then return redis.error_reply('ERR grant move took longer than its window') end
if redis.call('EXISTS', KEYS[1], KEYS[3]) > 0 then return 2 end
redis.call('RESTORE', KEYS[1], ARGV[2], ARGV[1])
return 1
`)

// migrateGrant moves a grant stored under its legacy key to oldGrantKey,
// keeping its TTL; it reports whether the grant is there now. DUMP/RESTORE
// works across hash slots; of concurrent moves one restores and the others
// find its key, which they leave alone (it may be rotated already). A
// revocation is final: a move that read the grant before it was revoked
// does not bring it back (moveScript).
func (s *Store) migrateGrant(ctx context.Context, id string) (bool, error) {
	old := s.legacyGrantKey(id)
	start, err := moveStartScript.Run(ctx, s.rdb, []string{s.revokedKey(id)}).Int64()
	if err != nil {
		return false, unavailable(err)
	} else if start < 0 {
		return false, nil
	}
	pipe := s.rdb.Pipeline()
	dumpCmd, ttlCmd := pipe.Dump(ctx, old), pipe.PTTL(ctx, old)
	_, _ = pipe.Exec(ctx) // each command's error is read below
	if err := dumpCmd.Err(); errors.Is(err, redis.Nil) {
		return false, nil
	} else if err != nil {
		return false, unavailable(err)
	} else if err := ttlCmd.Err(); err != nil {
		return false, unavailable(err)
	}
	ttl := ttlCmd.Val()
	if ttl <= 0 {
		ttl = s.ttl.Refresh
	}
	n, err := moveScript.Run(ctx, s.rdb, []string{s.oldGrantKey(id), s.revokedKey(id), s.grantKey(id)},
		dumpCmd.Val(), ttl.Milliseconds(), start, moveWindow.Milliseconds()).Int()
	if err != nil {
		return false, unavailable(err)
	}
	if err := s.rdb.Del(ctx, old).Err(); err != nil {
		return false, unavailable(err)
	}
	return n != 0, nil
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
	if id == "" {
		return nil, fosite.ErrNotFound
	}
	res, err := s.runRefresh(ctx, id, "", nil)
	if err != nil {
		return nil, err
	}
	req, err := s.decodeResult(ctx, id, res, session)
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

// RefreshIntent is what a refresh token request will do, said before
// fosite reads the grant (ExpectRefresh), so that the read rotates the
// token in the same round trip when the grant allows everything fosite
// and the token endpoint will check: the client, the refresh token's
// expiry, the scope parameter, the resource parameter, the client's
// allowed scopes and audiences, the scopes a refresh needs. The script
// checks them conservatively: when one fails (or it cannot tell), it
// changes nothing, fosite refuses the request with its own error, and a
// request that passes anyway rotates at Commit, a second round trip.
type RefreshIntent struct {
	// Successor is the handle "<grant id>.<mac>" of the token the refresh
	// issues (derived from the presented one).
	Successor string
	// ClientID is the authenticated client.
	ClientID string
	// Scopes are the scopes the request names (none: nil).
	Scopes []string
	// Resource is the requested resource in the form a grant stores it
	// (clients.CanonicalResource), or NoResource for a resource parameter
	// that cannot match; "" without one.
	Resource string
	// ClientScopes and ClientAudiences are what the client may be granted
	// now (exact matches); RefreshScopes, when not empty, the scopes of
	// which a grant needs one to refresh (fosite's RefreshTokenScopes).
	ClientScopes, ClientAudiences, RefreshScopes []string
}

// NoResource is a RefreshIntent.Resource that matches no grant.
const NoResource = "\n"

// ExpectRefresh records, in ctx's request scope (WithRequestScope), what
// the refresh of the token with store handle "<grant id>.<mac>" will do.
// Without a request scope it does nothing.
func ExpectRefresh(ctx context.Context, handle string, in RefreshIntent) {
	sc := scopeOf(ctx)
	if sc == nil {
		return
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.refresh == nil {
		sc.refresh = map[string]*refreshState{}
	}
	sc.refresh[handle] = &refreshState{intent: &in}
}

// refreshState is one refresh token's script answer within a request.
type refreshState struct {
	intent *RefreshIntent
	done   bool // the script ran; res is its answer
	res    refreshResult
}

func (s *Store) refreshStateOf(ctx context.Context, handle string) *refreshState {
	sc := scopeOf(ctx)
	if sc == nil {
		return nil
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.refresh[handle]
}

// refreshScript's answers (status).
const (
	rtNotFound  = 0          // no grant
	rtRotated   = 1          // rotated; the record's TTL extended
	rtGrace     = 2          // the previous token within the grace window, whose successor is current: nothing to change
	rtOldFormat = 3          // a format-1 hash (its fields follow)
	rtValid     = 4          // current or within grace; nothing changed (a read, or a precondition failed)
	rtIndexDue  = 5          // rotated, TTL kept: the subject's index must be renewed first (subjects.go)
	rtLate      = lateStatus // a rotation asked for by a caller that has given up by now: nothing changed (late.go)
	rtReused    = -1         // neither current nor within grace: reuse
	rtLost      = -2         // within grace, but the current token is not its successor
)

// refreshScript reads a grant and, when asked, applies the rotation rule
// and rotates, atomically.
//
//	KEYS[1] the record (format 2), KEYS[2] its format-1 hash (same tag)
//	ARGV[1] MAC presented ("": a plain read), ARGV[2] the successor's MAC
//	("": no rotation), ARGV[3] now (Unix ms), ARGV[4] grace (ms),
//	ARGV[5] the refresh token's new expiry (Unix s), ARGV[6] the record's
//	new TTL (ms); the request's preconditions (RefreshIntent), checked when
//	ARGV[7] is not "": ARGV[7] client id, ARGV[8] requested scopes,
//	ARGV[9] resource, ARGV[10] the client's scopes, ARGV[11] its
//	audiences, ARGV[12] the scopes of which a refresh needs one (lists
//	space-separated); ARGV[13] the time (Unix ms) after which a rotation
//	is refused ("": none; see refreshCall); ARGV[14] when the access token
//	the rotation comes with expires (Unix ms; "": the record's "a" is
//	left as it is), written as the JSON's first member "a" with the
//	rotation's time (record.go, accessTokensEnd)
//
// Returns {status, record} (the record as it is now), {3, hash fields},
// {0}, or {6, record, Redis's time (Unix ms)} for a rotation refused as
// late.
var refreshScript = redis.NewScript(`
local s = redis.call('GET', KEYS[1])
if not s then
  local old = redis.call('HGETALL', KEYS[2])
  if #old == 0 then return {0} end
  return {3, old}
end
if ARGV[1] == '' then return {4, s} end
local rt, prev, rot, ix, rexp, cid, sc, aud, pos = string.match(s, '^g2\n([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n()')
if not pos then return redis.error_reply('ERR grant record of an unknown format') end
local now = tonumber(ARGV[3])
local current = rt ~= '' and rt == ARGV[1]
local grace = (not current) and prev ~= '' and prev == ARGV[1] and tonumber(rot) ~= nil and now - tonumber(rot) <= tonumber(ARGV[4])
if not current and not grace then return {-1, s} end
if ARGV[2] == '' then return {4, s} end
if ARGV[13] ~= '' then
  local t = redis.call('TIME')
  local tnow = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if tnow > tonumber(ARGV[13]) then return {6, s, tnow} end
end
if ARGV[7] ~= '' then
  local function has(list, x) return string.find(' ' .. list .. ' ', ' ' .. x .. ' ', 1, true) ~= nil end
  local gaud, same = aud, true
  if string.sub(aud, 1, 1) == '!' then gaud, same = string.sub(aud, 2), false end
  local ok = cid == ARGV[7] and (rexp == '' or tonumber(rexp) * 1000 > now + 1000)
  for x in string.gmatch(ARGV[8], '%S+') do ok = ok and has(sc, x) end
  if ARGV[9] ~= '' then ok = ok and same and has(gaud, ARGV[9]) end
  for x in string.gmatch(sc, '%S+') do ok = ok and has(ARGV[10], x) end
  for x in string.gmatch(gaud, '%S+') do ok = ok and has(ARGV[11], x) end
  if ARGV[12] ~= '' then
    local one = false
    for x in string.gmatch(ARGV[12], '%S+') do one = one or has(sc, x) end
    ok = ok and one
  end
  if not ok then return {4, s} end
end
if grace then
  if rt == ARGV[2] then return {2, s} end
  if ARGV[7] ~= '' then return {4, s} end
  return {-2, s}
end
local js = string.sub(s, pos)
if ARGV[14] ~= '' then
  js = '{"a":"' .. ARGV[3] .. '/' .. ARGV[14] .. '",' .. (string.match(js, '^{"a":"[^"]*",(.*)$') or string.sub(js, 2))
end
local rec = 'g2\n' .. ARGV[2] .. '\n' .. ARGV[1] .. '\n' .. ARGV[3] .. '\n' .. ix .. '\n' .. ARGV[5] .. '\n' .. cid .. '\n' .. sc .. '\n' .. aud .. '\n' .. js
if tonumber(ix) == nil or tonumber(ix) < now + tonumber(ARGV[6]) then
  redis.call('SET', KEYS[1], rec, 'KEEPTTL')
  return {5, rec}
end
redis.call('SET', KEYS[1], rec, 'PX', ARGV[6])
return {1, rec}
`)

// refreshResult is refreshScript's answer.
type refreshResult struct {
	status int64
	rec    string            // format 2
	old    map[string]string // format 1 (rtOldFormat)
}

// runRefresh runs refreshScript for grant id: a plain read (mac ""), the
// rule for the presented mac, and, with st's intent, the rotation. The
// answer is kept in st: one run per token request.
func (s *Store) runRefresh(ctx context.Context, id, mac string, st *refreshState) (refreshResult, error) {
	if st != nil && st.done {
		return st.res, nil
	}
	if !ValidGrantID(id) {
		return refreshResult{}, fosite.ErrNotFound
	}
	var in *RefreshIntent
	if st != nil && mac != "" {
		in = st.intent
	}
	res, err := s.refreshCall(ctx, id, mac, in, false)
	if err == nil && res.status == rtNotFound {
		if moved, merr := s.migrateGrant(ctx, id); merr != nil {
			return res, merr
		} else if moved {
			res, err = s.refreshCall(ctx, id, mac, in, false)
		}
	}
	if err != nil {
		return res, err
	}
	if st != nil && mac != "" {
		st.done, st.res = true, res
	}
	return res, nil
}

// refreshCall is one refreshScript call; force rotates without
// preconditions (the rotation at Commit).
//
// A rotation is refused when it runs later than its caller can have waited
// for it: when Redis hangs, the commands written to its
// socket run when it resumes, after their callers have answered 503 —
// and a refresh token rotated then, for a client told that its refresh
// failed, would make the client's retry with the same token, once the
// grace window has passed, a reuse that revokes its grant. Refused, a
// 503 means that this rotation did not happen. The script judges "later"
// by the Redis clock against the caller's, and a refusal that reaches a
// caller still waiting is asked again bounded by Redis's own clock
// (boundedWrite, late.go).
func (s *Store) refreshCall(ctx context.Context, id, mac string, in *RefreshIntent, force bool) (refreshResult, error) {
	now := s.now()
	args := []any{mac, "", now.UnixMilli(), s.ttl.Grace.Milliseconds(),
		now.Add(s.ttl.Refresh).Round(time.Second).Unix(), (s.ttl.Refresh + time.Minute).Milliseconds(),
		"", "", "", "", "", "", "", accessEnd(now, s.ttl.Access)}
	if in != nil {
		_, succ, err := splitHandle(in.Successor)
		if err != nil {
			return refreshResult{}, errors.New("refresh without a successor")
		}
		args[1] = succ
	}
	if in != nil && !force {
		args[6], args[7], args[8] = in.ClientID, strings.Join(in.Scopes, " "), in.Resource
		args[9], args[10], args[11] = strings.Join(in.ClientScopes, " "), strings.Join(in.ClientAudiences, " "), strings.Join(in.RefreshScopes, " ")
		if in.ClientID == "" {
			args[6] = NoResource // an intent without a client never passes
		}
	}
	var v []any
	run := func(bound any) (status, redisNow int64, err error) {
		args[12] = bound
		if v, err = refreshScript.Run(ctx, s.rdb, []string{s.grantKey(id), s.oldGrantKey(id)}, args...).Slice(); err != nil {
			if errors.Is(err, redis.Nil) {
				return 0, 0, fosite.ErrNotFound
			}
			return 0, 0, unavailable(err)
		}
		if len(v) > 0 {
			status, _ = v[0].(int64)
		}
		if status == rtLate {
			redisNow, _ = v[len(v)-1].(int64)
		}
		return status, redisNow, nil
	}
	var res refreshResult
	var err error
	if args[1] == "" { // no rotation asked for: nothing to bound
		res.status, _, err = run("")
	} else {
		res.status, err = s.boundedWrite(errLateRotation, run)
	}
	if err != nil {
		return refreshResult{}, err
	}
	if len(v) > 1 {
		switch x := v[1].(type) {
		case string:
			res.rec = x
		case []any:
			res.old = map[string]string{}
			for i := 0; i+1 < len(x); i += 2 {
				k, _ := x[i].(string)
				val, _ := x[i+1].(string)
				res.old[k] = val
			}
		case map[any]any: // RESP3 map
			res.old = map[string]string{}
			for k, val := range x {
				ks, _ := k.(string)
				vs, _ := val.(string)
				res.old[ks] = vs
			}
		}
	}
	return res, nil
}

// accessEnd is when an access token issued now under ttl expires at the
// latest, Unix ms, as the rotation records it ("a", record.go): fosite
// sets the token's expiry a little after the store's read (the request
// goes on) and rounds it to the second; the second added covers the
// rounding, and the revocation's margin the rest
// (revocation.TokenMargin).
func accessEnd(now time.Time, ttl time.Duration) string {
	return strconv.FormatInt(now.Add(ttl+time.Second).UnixMilli(), 10)
}

// decodeResult decodes a script answer's grant (either format).
func (s *Store) decodeResult(ctx context.Context, id string, res refreshResult, session fosite.Session) (*fosite.Request, error) {
	switch {
	case res.status == rtNotFound:
		return nil, fosite.ErrNotFound
	case res.status == rtOldFormat:
		b, ok := res.old[fieldRequest]
		if !ok {
			return nil, fosite.ErrNotFound
		}
		return s.decode(ctx, []byte(b), session)
	}
	req, _, err := s.decodeGrant(ctx, id, res.rec, session)
	return req, err
}

// GetRefreshTokenSession returns the grant of a refresh token (handle
// "<grant id>.<mac>"): the current token, or the previous one within the
// grace window. Any other token of the grant was rotated: it returns the
// request with fosite.ErrInactiveToken and fosite revokes the grant. With
// an intent (ExpectRefresh) the same round trip rotates. The request's
// RequestedAt is the grant's creation, or, for a current token a refresh
// issued, that refresh's time (refreshIssuedAt).
func (s *Store) GetRefreshTokenSession(ctx context.Context, handle string, session fosite.Session) (fosite.Requester, error) {
	id, mac, err := splitHandle(handle)
	if err != nil {
		return nil, err
	}
	res, err := s.runRefresh(ctx, id, mac, s.refreshStateOf(ctx, handle))
	if err != nil {
		return nil, err
	}
	req, err := s.decodeResult(ctx, id, res, session)
	if err != nil {
		return nil, err
	}
	switch res.status {
	case rtReused:
		return req, fosite.ErrInactiveToken
	case rtOldFormat:
		f := res.old
		if f[fieldRefresh] == mac || f[fieldPrevious] == mac && s.withinGrace(f[fieldRotated]) {
			return req, nil
		}
		return req, fosite.ErrInactiveToken
	}
	if at, ok := refreshIssuedAt(res.rec, mac); ok {
		req.RequestedAt = at
	}
	return req, nil
}

// refreshIssuedAt is when the refresh token with MAC mac was issued, for
// a format-2 record rec whose current token it is and which a refresh
// rotated to it: the rotation's time. A grant's first token was issued
// with the grant (its RequestedAt); the previous token within the grace
// window at a rotation the record no longer holds: false for both.
// Introspection answers the time as the token's iat (RFC 7662 §2.2).
func refreshIssuedAt(rec, mac string) (time.Time, bool) {
	h, _, err := splitRecord(rec)
	if err != nil || h.rt == "" || h.rt != mac {
		return time.Time{}, false
	}
	ms, err := strconv.ParseInt(h.rotated, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(ms).UTC(), true
}

func (s *Store) withinGrace(rotated string) bool {
	rotated, _, _ = strings.Cut(rotated, ":")
	at, err := strconv.ParseInt(rotated, 10, 64)
	return err == nil && s.now().Sub(time.UnixMilli(at)) <= s.ttl.Grace
}

// RotateRefreshToken marks the presented refresh token rotated; within a
// transaction the decision is taken at Commit, unless the request's read
// already rotated (ExpectRefresh).
func (s *Store) RotateRefreshToken(ctx context.Context, _ string, handle string) error {
	if _, _, err := splitHandle(handle); err != nil {
		return err
	}
	return s.pending(ctx, func(t *tx) { t.rotateFrom = handle })
}

// extendScript records a renewed subject index in a grant rotated with
// rtIndexDue and gives the record its full TTL.
//
//	KEYS[1] the record; ARGV[1] the MAC that rotation installed,
//	ARGV[2] until when the index lives (Unix ms), ARGV[3] TTL (ms)
//
// Returns 1, or 0 when the grant is gone or rotated again since (that
// rotation renews it).
var extendScript = redis.NewScript(`
local s = redis.call('GET', KEYS[1])
if not s then return 0 end
local a, rt, b, pos = string.match(s, '^(g2\n)([^\n]*)(\n[^\n]*\n[^\n]*\n)[^\n]*\n()')
if not pos or rt ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], a .. rt .. b .. ARGV[2] .. '\n' .. string.sub(s, pos), 'PX', ARGV[3])
return 1
`)

// migrateScript rotates a format-1 grant into a format-2 record.
//
//	KEYS[1] the record, KEYS[2] the format-1 hash
//	ARGV[1] MAC presented, ARGV[2] successor's MAC, ARGV[3] now (Unix ms),
//	ARGV[4] grace (ms), ARGV[5] the new record, ARGV[6] its TTL (ms),
//	ARGV[7] the time (Unix ms) after which the rotation is refused
//
// Returns rtRotated, rtGrace, rtNotFound or rtReused; a grant a concurrent
// refresh migrated already is judged by its record; {rtLate, Redis's time}
// for a rotation refused as late (refreshCall).
var migrateScript = redis.NewScript(`
local now, grace = tonumber(ARGV[3]), tonumber(ARGV[4])
local s = redis.call('GET', KEYS[1])
if s then
  local rt, prev, rot = string.match(s, '^g2\n([^\n]*)\n([^\n]*)\n([^\n]*)\n')
  if prev == ARGV[1] and rt == ARGV[2] and tonumber(rot) and now - tonumber(rot) <= grace then return 2 end
  return -1
end
local f = redis.call('HMGET', KEYS[2], 'rt', 'prev', 'rotated')
if not f[1] then return 0 end
local at = string.match(f[3] or '', '^(%d*)')
if f[1] == ARGV[1] then
  local t = redis.call('TIME')
  local tnow = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if tnow > tonumber(ARGV[7]) then return {6, tnow} end
  redis.call('SET', KEYS[1], ARGV[5], 'PX', ARGV[6])
  redis.call('DEL', KEYS[2])
  return 1
end
if f[2] == ARGV[1] and f[1] == ARGV[2] and tonumber(at) and now - tonumber(at) <= grace then return 2 end
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
	st := s.refreshStateOf(ctx, t.rotateFrom)
	if st != nil && st.done && st.intent != nil {
		if st.intent.Successor != t.refresh {
			return errors.New("refresh token successor differs from the one expected")
		}
		switch st.res.status {
		case rtRotated, rtGrace:
			return nil // the read rotated
		case rtIndexDue:
			return s.renewAfterRotation(ctx, t.grant, to)
		case rtOldFormat:
			return s.migrate(ctx, t, st.res, from, to)
		}
		// rtValid: a precondition the script checks failed, yet the request
		// passed fosite's checks: rotate now.
	}
	res, err := s.refreshCall(ctx, id, from, &RefreshIntent{Successor: t.refresh}, true)
	if err != nil {
		return err
	}
	switch res.status {
	case rtRotated, rtGrace:
		return nil
	case rtIndexDue:
		return s.renewAfterRotation(ctx, t.grant, to)
	case rtOldFormat:
		return s.migrate(ctx, t, res, from, to)
	case rtNotFound:
		return fosite.ErrNotFound
	}
	return fosite.ErrInactiveToken
}

// renewAfterRotation renews the subject's grant index of a grant rotated
// with rtIndexDue, then records it in the grant and gives the grant its
// full TTL: the index never expires before a grant in it.
func (s *Store) renewAfterRotation(ctx context.Context, r fosite.Requester, mac string) error {
	ttl := s.ttl.Refresh + time.Minute
	if err := s.renewIndex(ctx, r, ttl+indexSlack); err != nil {
		return err
	}
	until := s.now().Add(ttl + indexSlack).UnixMilli()
	if err := extendScript.Run(ctx, s.rdb, []string{s.grantKey(r.GetID())}, mac, until, ttl.Milliseconds()).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// migrate rotates a format-1 grant (res, as read) into a format-2 record:
// the grant as stored, with the rotated state.
func (s *Store) migrate(ctx context.Context, t *tx, res refreshResult, from, to string) error {
	id := t.grant.GetID()
	orig, err := s.decode(ctx, []byte(res.old[fieldRequest]), nil)
	if err != nil {
		return err
	}
	orig.Session = t.grant.GetSession() // the stored session, as fosite decoded it (with the new refresh expiry)
	now := s.now()
	ttl := s.ttl.Refresh + time.Minute
	_, ix, _ := strings.Cut(res.old[fieldRotated], ":")
	if at, err := strconv.ParseInt(ix, 10, 64); err != nil || at < now.Add(ttl).UnixMilli() {
		if err := s.renewIndex(ctx, orig, ttl+indexSlack); err != nil {
			return err
		}
		ix = strconv.FormatInt(now.Add(ttl+indexSlack).UnixMilli(), 10)
	}
	rec, err := encodeGrant(orig, grantHeader{rt: to, prev: from, rotated: strconv.FormatInt(now.UnixMilli(), 10), indexUntil: ix})
	if err != nil {
		return err
	}
	args := []any{from, to, now.UnixMilli(), s.ttl.Grace.Milliseconds(), rec, ttl.Milliseconds(), ""}
	n, err := s.boundedWrite(errLateRotation, func(bound any) (int64, int64, error) {
		args[6] = bound
		return s.runMigrate(ctx, id, args)
	})
	switch {
	case errors.Is(err, ErrUnavailable):
		return err
	case err != nil:
		return unavailable(err)
	case n == rtNotFound:
		return fosite.ErrNotFound
	case n < 0:
		return fosite.ErrInactiveToken
	}
	return nil
}

// runMigrate runs migrateScript: its status, and Redis's time with rtLate.
func (s *Store) runMigrate(ctx context.Context, id string, args []any) (status, redisNow int64, err error) {
	v, err := migrateScript.Run(ctx, s.rdb, []string{s.grantKey(id), s.oldGrantKey(id)}, args...).Result()
	if err != nil {
		return 0, 0, err
	}
	return boundedAnswer("migrate script", v)
}

// putGrant stores a grant's record outside a code redemption or rotation
// (fosite does not do this in the flows we compose; tests and tools do).
func (s *Store) putGrant(ctx context.Context, t *tx) error {
	refresh := t.refresh != ""
	ix, err := s.indexGrant(ctx, t.grant, refresh)
	if err != nil {
		return err
	}
	h := grantHeader{indexUntil: ix}
	if refresh {
		_, h.rt, _ = splitHandle(t.refresh)
	}
	rec, err := encodeGrant(t.grant, h)
	if err != nil {
		return err
	}
	if err := s.rdb.Set(ctx, s.grantKey(t.grant.GetID()), rec, s.grantTTL(t.grant, refresh)).Err(); err != nil {
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
//
// Within a request scope a grant revoked once is not revoked again (a
// guard: a reused code's grant is revoked here by RevokeReplayedCode,
// and fosite's code handler, which would revoke its access and refresh
// tokens in turn, does not reach the store, oauth.codeGrantFactory); it
// counts as revoked only once the announcement and the deletion both
// succeeded, so a failed revocation (ErrUnavailable) retried in the same
// request is written again, never skipped.
func (s *Store) RevokeGrant(ctx context.Context, grantID string) error {
	if grantID == "" {
		return nil
	}
	sc := scopeOf(ctx)
	if sc != nil {
		sc.mu.Lock()
		done := sc.revoked[grantID]
		sc.mu.Unlock()
		if done {
			return nil
		}
	}
	// Tell the fleet first (services/platform/revocation): should that
	// fail, the grant stays and the caller answers 503 and may retry. The
	// record lives until the grant's last access token expires, as its
	// record says (tokensEnd); without one, for the longest lifetime any
	// access token may have.
	end, err := s.tokensEnd(ctx, grantID)
	if err != nil {
		return err
	}
	if err := s.announceRevoked(ctx, grantID, end); err != nil {
		return err
	}
	// The legacy key (another slot) first; then, in the grant's slot, the
	// revocation mark and both formats' keys: a move from the legacy key
	// in flight cannot restore the grant after this (moveScript). In this
	// order on a cluster too, where one pipeline's commands for different
	// nodes run concurrently.
	if err := s.rdb.Del(ctx, s.legacyGrantKey(grantID)).Err(); err != nil {
		return unavailable(err)
	}
	pipe := s.rdb.TxPipeline()
	pipe.Set(ctx, s.revokedKey(grantID), "1", 2*moveWindow)
	last := pipe.Get(ctx, s.grantKey(grantID))
	pipe.Del(ctx, s.grantKey(grantID), s.oldGrantKey(grantID))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return unavailable(err)
	}
	// A refresh between the read and the deletion issued an access token
	// the announcement did not count (a replica with a longer
	// ACCESS_TOKEN_TTL, say): announced again with it, the record only
	// grows. None can come after: the rotation needs the record.
	if rec := last.Val(); rec != "" && !end.IsZero() {
		if later := s.endOf(rec); later.IsZero() || later.After(end) {
			if err := s.announceRevoked(ctx, grantID, later); err != nil {
				return err
			}
		}
	}
	if sc != nil {
		sc.mu.Lock()
		if sc.revoked == nil {
			sc.revoked = map[string]bool{}
		}
		sc.revoked[grantID] = true
		sc.mu.Unlock()
	}
	return nil
}

// tokensEnd is when the last access token issued with grant id expires,
// from its record (endOf); the zero time when no record says (none, one
// of format 1, or one written or rotated by a version before the record
// said it).
func (s *Store) tokensEnd(ctx context.Context, id string) (time.Time, error) {
	rec, err := s.rdb.Get(ctx, s.grantKey(id)).Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, unavailable(err)
	}
	return s.endOf(rec), nil
}

// endOf is when the last access token of a format-2 record's grant
// expires (accessTokensEnd) plus the grace window (TTLs.Grace): a refresh
// of the previous token within it issues a token and writes nothing. The
// zero time when the record does not say.
func (s *Store) endOf(rec string) time.Time {
	end, ok := accessTokensEnd(rec)
	if !ok {
		return time.Time{}
	}
	return end.Add(s.ttl.Grace)
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

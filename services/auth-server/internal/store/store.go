// Package store implements fosite's storage interfaces over Redis.
//
// Conventions (docs/reference/oauth.md, "State in Redis"):
//   - keys are fosite token signatures (HMAC-SHA256 of the token) or
//     SHA-256 hashes of other secrets, never the secrets themselves;
//   - every key has a TTL, derived from the token's expiry;
//   - single use is decided by one atomic Redis command (SET NX), so of
//     many concurrent redemptions of one authorization code exactly one wins;
//   - a grant's tokens form a family keyed by the fosite request id, which
//     revocation and replay detection act on as a whole.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/redisx"
)

// ErrUnavailable wraps every Redis failure: the caller answers 503.
var ErrUnavailable = errors.New("state store unavailable")

// ErrCodeReplayed is returned by InvalidateAuthorizeCodeSession when
// another request already redeemed the code.
var ErrCodeReplayed = errors.New("authorization code already redeemed")

// ClientGetter resolves client ids (static, metadata document, dynamic).
type ClientGetter interface {
	GetClient(ctx context.Context, id string) (fosite.Client, error)
}

// TTLs bound the lifetime of stored state when a session carries no expiry.
type TTLs struct {
	Code    time.Duration
	Access  time.Duration
	Refresh time.Duration
	// Grace is how long a rotated refresh token still refreshes (concurrent
	// refreshes by the same client) before its use counts as reuse.
	Grace time.Duration
}

// Store is fosite's storage over Redis.
type Store struct {
	rdb     *redisx.Client
	clients ClientGetter
	ttl     TTLs
	now     func() time.Time
	revoker GrantRevoker // revocation.go
}

var (
	_ fosite.ClientManager               = (*Store)(nil)
	_ oauth2.AuthorizeCodeStorage        = (*Store)(nil)
	_ oauth2.TokenRevocationStorage      = (*Store)(nil)
	_ pkce.PKCERequestStorage            = (*Store)(nil)
	_ openid.OpenIDConnectRequestStorage = (*Store)(nil)
)

// New returns a store.
func New(rdb *redisx.Client, clients ClientGetter, ttl TTLs) *Store {
	return &Store{rdb: rdb, clients: clients, ttl: ttl, now: time.Now}
}

func unavailable(err error) error { return fmt.Errorf("%w: %v", ErrUnavailable, err) }

// record is a fosite.Requester at rest. The client is stored by id and
// resolved again on read, so a removed client's grants stop working.
type record struct {
	ID                string          `json:"id"`
	RequestedAt       time.Time       `json:"requested_at"`
	ClientID          string          `json:"client_id"`
	RequestedScope    []string        `json:"requested_scope,omitempty"`
	GrantedScope      []string        `json:"granted_scope,omitempty"`
	RequestedAudience []string        `json:"requested_audience,omitempty"`
	GrantedAudience   []string        `json:"granted_audience,omitempty"`
	Form              url.Values      `json:"form,omitempty"`
	Session           json.RawMessage `json:"session"`
}

func encode(r fosite.Requester) ([]byte, error) {
	sess, err := json.Marshal(r.GetSession())
	if err != nil {
		return nil, err
	}
	return json.Marshal(record{
		ID: r.GetID(), RequestedAt: r.GetRequestedAt(), ClientID: r.GetClient().GetID(),
		RequestedScope: r.GetRequestedScopes(), GrantedScope: r.GetGrantedScopes(),
		RequestedAudience: r.GetRequestedAudience(), GrantedAudience: r.GetGrantedAudience(),
		Form: r.GetRequestForm(), Session: sess,
	})
}

func (s *Store) decode(ctx context.Context, b []byte, session fosite.Session) (*fosite.Request, error) {
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("stored request: %w", err)
	}
	c, err := s.clients.GetClient(ctx, rec.ClientID)
	if err != nil {
		return nil, err
	}
	if session != nil {
		if err := json.Unmarshal(rec.Session, session); err != nil {
			return nil, fmt.Errorf("stored session: %w", err)
		}
	}
	form := rec.Form
	if form == nil {
		form = url.Values{}
	}
	return &fosite.Request{
		ID: rec.ID, RequestedAt: rec.RequestedAt, Client: c,
		RequestedScope: rec.RequestedScope, GrantedScope: rec.GrantedScope,
		RequestedAudience: rec.RequestedAudience, GrantedAudience: rec.GrantedAudience,
		Form: form, Session: session,
	}, nil
}

// ttlFor is the time until the session's expiry of kind, else def.
func (s *Store) ttlFor(r fosite.Requester, kind fosite.TokenType, def time.Duration) time.Duration {
	if sess := r.GetSession(); sess != nil {
		if exp := sess.GetExpiresAt(kind); !exp.IsZero() {
			if d := exp.Sub(s.now()); d > 0 {
				return d + time.Minute
			}
		}
	}
	return def
}

func (s *Store) put(ctx context.Context, key string, r fosite.Requester, ttl time.Duration) error {
	b, err := encode(r)
	if err != nil {
		return err
	}
	if err := s.rdb.Set(ctx, key, b, ttl).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

func (s *Store) get(ctx context.Context, key string, session fosite.Session) (*fosite.Request, error) {
	b, err := s.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fosite.ErrNotFound
	} else if err != nil {
		return nil, unavailable(err)
	}
	return s.decode(ctx, b, session)
}

func (s *Store) k(parts ...string) string { return s.rdb.Key(append([]string{"as"}, parts...)...) }

// --- clients ---------------------------------------------------------------

// GetClient implements fosite.ClientManager.
func (s *Store) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	return s.clients.GetClient(ctx, id)
}

// ClientAssertionJWTValid reports fosite.ErrJTIKnown when a private_key_jwt
// assertion id was seen before.
func (s *Store) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	n, err := s.rdb.Exists(ctx, s.k("jti", redisx.Hash(jti))).Result()
	if err != nil {
		return unavailable(err)
	}
	if n > 0 {
		return fosite.ErrJTIKnown
	}
	return nil
}

// SetClientAssertionJWT records an assertion id until it expires; a second
// use, even a concurrent one, gets fosite.ErrJTIKnown.
func (s *Store) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	ttl := exp.Sub(s.now())
	if ttl <= 0 {
		ttl = time.Minute
	}
	ok, err := s.rdb.SetNX(ctx, s.k("jti", redisx.Hash(jti)), 1, ttl+time.Minute).Result()
	if err != nil {
		return unavailable(err)
	}
	if !ok {
		return fosite.ErrJTIKnown
	}
	return nil
}

// --- authorization codes ---------------------------------------------------

func (s *Store) CreateAuthorizeCodeSession(ctx context.Context, sig string, r fosite.Requester) error {
	return s.put(ctx, s.k("code", sig), r, s.ttlFor(r, fosite.AuthorizeCode, s.ttl.Code))
}

// GetAuthorizeCodeSession returns the request; once the code was redeemed it
// returns the request with fosite.ErrInvalidatedAuthorizeCode, so fosite
// revokes what the code issued.
func (s *Store) GetAuthorizeCodeSession(ctx context.Context, sig string, session fosite.Session) (fosite.Requester, error) {
	pipe := s.rdb.Pipeline()
	code := pipe.Get(ctx, s.k("code", sig))
	used := pipe.Exists(ctx, s.k("code-used", sig))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, unavailable(err)
	}
	b, err := code.Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fosite.ErrNotFound
	}
	req, err := s.decode(ctx, b, session)
	if err != nil {
		return nil, err
	}
	if used.Val() > 0 {
		return req, fosite.ErrInvalidatedAuthorizeCode
	}
	return req, nil
}

// InvalidateAuthorizeCodeSession marks the code redeemed. It is the single
// point of decision: SET NX succeeds for exactly one caller.
func (s *Store) InvalidateAuthorizeCodeSession(ctx context.Context, sig string) error {
	ttl := s.ttl.Code + time.Minute
	if d, err := s.rdb.PTTL(ctx, s.k("code", sig)).Result(); err == nil && d > 0 {
		ttl = d + time.Minute
	}
	ok, err := s.rdb.SetNX(ctx, s.k("code-used", sig), 1, ttl).Result()
	if err != nil {
		return unavailable(err)
	}
	if !ok {
		return ErrCodeReplayed
	}
	return nil
}

// --- PKCE and OpenID Connect sessions ----------------------------------------

func (s *Store) CreatePKCERequestSession(ctx context.Context, sig string, r fosite.Requester) error {
	return s.put(ctx, s.k("pkce", sig), r, s.ttlFor(r, fosite.AuthorizeCode, s.ttl.Code))
}

func (s *Store) GetPKCERequestSession(ctx context.Context, sig string, session fosite.Session) (fosite.Requester, error) {
	return s.get(ctx, s.k("pkce", sig), session)
}

// DeletePKCERequestSession keeps the challenge: fosite deletes it before
// comparing the verifier, so deleting would let a wrong verifier burn the
// rightful client's code. It expires with the code, and the code itself is
// single use.
func (s *Store) DeletePKCERequestSession(context.Context, string) error { return nil }

// The OpenID Connect session is keyed by the code itself, so it is hashed.
func (s *Store) CreateOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) error {
	return s.put(ctx, s.k("oidc", redisx.Hash(code)), r, s.ttlFor(r, fosite.AuthorizeCode, s.ttl.Code))
}

func (s *Store) GetOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) (fosite.Requester, error) {
	return s.get(ctx, s.k("oidc", redisx.Hash(code)), r.GetSession())
}

func (s *Store) DeleteOpenIDConnectSession(ctx context.Context, code string) error {
	if err := s.rdb.Del(ctx, s.k("oidc", redisx.Hash(code))).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// --- access and refresh tokens -----------------------------------------------

func (s *Store) family(id string) string  { return s.k("fam", id) }
func (s *Store) revoked(id string) string { return s.k("revoked", id) }

// addToFamily records key as a member of the grant's family.
func (s *Store) addToFamily(ctx context.Context, pipe redis.Pipeliner, id, key string) {
	pipe.SAdd(ctx, s.family(id), key)
	pipe.Expire(ctx, s.family(id), s.ttl.Refresh+time.Hour)
}

func (s *Store) putMember(ctx context.Context, key string, r fosite.Requester, ttl time.Duration) error {
	b, err := encode(r)
	if err != nil {
		return err
	}
	pipe := s.rdb.TxPipeline()
	pipe.Set(ctx, key, b, ttl)
	s.addToFamily(ctx, pipe, r.GetID(), key)
	if _, err := pipe.Exec(ctx); err != nil {
		return unavailable(err)
	}
	return nil
}

// getMember reads a token; a token of a revoked family is not found.
func (s *Store) getMember(ctx context.Context, key string, session fosite.Session) (*fosite.Request, error) {
	req, err := s.get(ctx, key, session)
	if err != nil {
		return nil, err
	}
	n, err := s.rdb.Exists(ctx, s.revoked(req.GetID())).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	if n > 0 {
		return nil, fosite.ErrNotFound
	}
	return req, nil
}

func (s *Store) CreateAccessTokenSession(ctx context.Context, sig string, r fosite.Requester) error {
	return s.putMember(ctx, s.k("at", sig), r, s.ttlFor(r, fosite.AccessToken, s.ttl.Access))
}

func (s *Store) GetAccessTokenSession(ctx context.Context, sig string, session fosite.Session) (fosite.Requester, error) {
	return s.getMember(ctx, s.k("at", sig), session)
}

func (s *Store) DeleteAccessTokenSession(ctx context.Context, sig string) error {
	if err := s.rdb.Del(ctx, s.k("at", sig)).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

func (s *Store) CreateRefreshTokenSession(ctx context.Context, sig, _ string, r fosite.Requester) error {
	return s.putMember(ctx, s.k("rt", sig), r, s.ttlFor(r, fosite.RefreshToken, s.ttl.Refresh))
}

// GetRefreshTokenSession returns the grant of a refresh token. A rotated
// token still works within the grace period; after it, it returns the
// request with fosite.ErrInactiveToken and fosite revokes the family.
func (s *Store) GetRefreshTokenSession(ctx context.Context, sig string, session fosite.Session) (fosite.Requester, error) {
	req, err := s.getMember(ctx, s.k("rt", sig), session)
	if err != nil {
		return nil, err
	}
	at, err := s.rdb.Get(ctx, s.k("rt-rotated", sig)).Int64()
	if errors.Is(err, redis.Nil) {
		return req, nil
	} else if err != nil {
		return nil, unavailable(err)
	}
	if s.now().Sub(time.UnixMilli(at)) <= s.ttl.Grace {
		return req, nil
	}
	return req, fosite.ErrInactiveToken
}

// RotateRefreshToken marks the presented token rotated. The first rotation
// wins with SET NX; a concurrent one within the grace period is allowed.
func (s *Store) RotateRefreshToken(ctx context.Context, _ string, sig string) error {
	key := s.k("rt-rotated", sig)
	now := s.now()
	ok, err := s.rdb.SetNX(ctx, key, strconv.FormatInt(now.UnixMilli(), 10), s.ttl.Refresh+time.Hour).Result()
	if err != nil {
		return unavailable(err)
	}
	if ok {
		return nil
	}
	at, err := s.rdb.Get(ctx, key).Int64()
	if err != nil {
		return unavailable(err)
	}
	if now.Sub(time.UnixMilli(at)) <= s.ttl.Grace {
		return nil
	}
	return fosite.ErrInactiveToken
}

func (s *Store) DeleteRefreshTokenSession(ctx context.Context, sig string) error {
	if err := s.rdb.Del(ctx, s.k("rt", sig), s.k("rt-rotated", sig)).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// RevokeRefreshToken revokes the whole grant: every access and refresh
// token of the family, and any the family would still mint.
func (s *Store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	return s.revokeFamily(ctx, requestID)
}

// RevokeAccessToken revokes the whole grant too (RFC 7009 lets a server
// revoke the grant's other tokens; a leaked access token is a leaked grant).
func (s *Store) RevokeAccessToken(ctx context.Context, requestID string) error {
	return s.revokeFamily(ctx, requestID)
}

func (s *Store) revokeFamily(ctx context.Context, id string) error {
	if err := s.rdb.Set(ctx, s.revoked(id), 1, s.ttl.Refresh+time.Hour).Err(); err != nil {
		return unavailable(err)
	}
	if err := s.announceRevoked(ctx, id); err != nil {
		return err
	}
	members, err := s.rdb.SMembers(ctx, s.family(id)).Result()
	if err != nil {
		return unavailable(err)
	}
	if len(members) > 0 {
		if err := s.rdb.Del(ctx, members...).Err(); err != nil {
			return unavailable(err)
		}
	}
	return nil
}

// --- generic single-use and cached values ------------------------------------

// PutJSON stores v under the hashed key (kind, secret) for ttl.
func (s *Store) PutJSON(ctx context.Context, kind, secret string, v any, ttl time.Duration) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := s.rdb.Set(ctx, s.k(kind, redisx.Hash(secret)), b, ttl).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// TakeJSON reads and deletes (GETDEL, atomically) the value under (kind,
// secret) into v. It reports false when there is none.
func (s *Store) TakeJSON(ctx context.Context, kind, secret string, v any) (bool, error) {
	b, err := s.rdb.GetDel(ctx, s.k(kind, redisx.Hash(secret))).Bytes()
	if errors.Is(err, redis.Nil) {
		return false, nil
	} else if err != nil {
		return false, unavailable(err)
	}
	return true, json.Unmarshal(b, v)
}

// GetJSON reads the value under (kind, secret) into v without consuming it.
func (s *Store) GetJSON(ctx context.Context, kind, secret string, v any) (bool, error) {
	b, err := s.rdb.Get(ctx, s.k(kind, redisx.Hash(secret))).Bytes()
	if errors.Is(err, redis.Nil) {
		return false, nil
	} else if err != nil {
		return false, unavailable(err)
	}
	return true, json.Unmarshal(b, v)
}

// Delete removes the value under (kind, secret).
func (s *Store) Delete(ctx context.Context, kind, secret string) error {
	if err := s.rdb.Del(ctx, s.k(kind, redisx.Hash(secret))).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// Touch extends the TTL of the value under (kind, secret).
func (s *Store) Touch(ctx context.Context, kind, secret string, ttl time.Duration) error {
	if err := s.rdb.Expire(ctx, s.k(kind, redisx.Hash(secret)), ttl).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

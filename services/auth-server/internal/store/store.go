// Package store implements fosite's storage interfaces over Redis.
//
// Conventions (docs/reference/oauth.md, "State in Redis"):
//   - keys are fosite token signatures (HMAC of the token), grant ids or
//     SHA-256 hashes of other secrets, never the secrets themselves;
//   - every key has a TTL, derived from the token's expiry;
//   - an authorization code is one hash (the authorize request, its PKCE and
//     OpenID Connect sessions, and the redemption mark), read once per token
//     request (RequestScope) and redeemed by one Lua script that marks it used
//     and creates the grant atomically, so of many concurrent redemptions
//     exactly one wins;
//   - a grant is one record, as:grant2:{grant id}, whatever the number of
//     refreshes (record.go): a header the scripts read (refresh MACs,
//     rotation time, client, scopes) and compact JSON of the rest. Access
//     tokens are not stored: they are JWTs that name their grant
//     (grant_id), and a live grant record is what makes them valid at
//     userinfo and introspection. A refresh is one Lua script that reads,
//     applies the rotation rule and rotates (grant.go);
//   - fosite's writes of one grant are buffered by Transactional (BeginTX)
//     and applied in one round trip at Commit;
//   - RevokeGrant is the one place a grant ends (RFC 7009 revocation, code
//     replay, refresh-token reuse).
package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"
	"github.com/ory/fosite/storage"
	"github.com/prometheus/client_golang/prometheus"
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
	log     *slog.Logger
	// owned, when set, is what a grant's session must also pass to be its
	// subject's (WithGrantOwner).
	owned func(fosite.Session) bool
	// relists are the background re-listings (subjects.go, relistGrant),
	// counted by result in relisted; Close stops them.
	relists  relists
	relisted *prometheus.CounterVec
	// async is goAsync's workers (async.go); Close stops them.
	async asyncPool
	// redeemDelivered, set by tests only (export_test.go), runs before a
	// redemption's pipeline is sent with the script call it will send:
	// a test delivers it once more, as a go-redis cluster pipeline's
	// retry does.
	redeemDelivered func(ctx context.Context, keys []string, args []any)
}

var (
	_ fosite.ClientManager               = (*Store)(nil)
	_ oauth2.AuthorizeCodeStorage        = (*Store)(nil)
	_ oauth2.TokenRevocationStorage      = (*Store)(nil)
	_ pkce.PKCERequestStorage            = (*Store)(nil)
	_ openid.OpenIDConnectRequestStorage = (*Store)(nil)
	_ storage.Transactional              = (*Store)(nil)
)

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock (default time.Now); tests move it past the
// grace window.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithGrantOwner sets what a grant's session must pass, besides naming
// the subject, to count as the subject's own in Grants, SubjectGrantClient
// and RevokeSubjectGrant: a grant it refuses is not listed and is
// ErrGrantNotFound to its subject. The auth-server refuses a grant of an
// upstream issuer it no longer accepts, whose subject is another user's.
func WithGrantOwner(owned func(fosite.Session) bool) Option {
	return func(s *Store) { s.owned = owned }
}

// WithLogger sets the logger of what the store does in the background
// and no request sees: a grant it could not list under its subject
// (relistGrant). Nil, the default, discards, as revocation.Follow does:
// the server always passes its own (oauth.New).
func WithLogger(log *slog.Logger) Option { return func(s *Store) { s.log = log } }

// New returns a store. Close stops its background work.
func New(rdb *redisx.Client, clients ClientGetter, ttl TTLs, opts ...Option) *Store {
	s := &Store{rdb: rdb, clients: clients, ttl: ttl, now: time.Now, relisted: newRelistCounter()}
	for _, o := range opts {
		o(s)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// RegisterMetrics registers the store's metrics on reg (nil: none):
// tollgate_auth_grant_relists_total.
func (s *Store) RegisterMetrics(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	return reg.Register(s.relisted)
}

// Close stops the store's background work, and returns once none runs —
// so that none uses the Redis client after its caller closes it:
//
//   - the re-listings (relistGrant): one not yet due is abandoned, one
//     running is cancelled; each is logged and counted as a failed listing
//     (result "closed");
//   - goAsync's workers: idle ones stop at once, a busy one after its
//     current round trip (a request's: the request waits for it anyway);
//     after Close, goAsync runs its func on the caller's goroutine.
//
// Cancelling does not cut short a reply already being read (go-redis reads
// to its deadline), so Close may wait up to about twice the Redis command
// timeout — once, as it waits for both at the same time; it holds no lock
// meanwhile. Call it before closing the Redis client; the store's requests
// are not to be served after it.
func (s *Store) Close() {
	var wg sync.WaitGroup
	wg.Go(s.async.close)
	s.relists.close()
	wg.Wait()
}

func unavailable(err error) error { return fmt.Errorf("%w: %v", ErrUnavailable, err) }

// recordOf is a fosite.Requester at rest, its session as S: record (the
// session decoded with it) or rawRecord (its JSON kept, code.go) — one
// field list for both. The client is stored by id and resolved again on
// read, so a removed client's grants stop working.
//
// In a record, Session is the session itself, encoded and decoded in the same pass as
// the record (a json.RawMessage would scan and copy it twice: it is most of
// the record, and decoding it is a visible part of a refresh's CPU). The
// JSON is the same either way.
type recordOf[S any] struct {
	ID                string     `json:"id"`
	RequestedAt       time.Time  `json:"requested_at"`
	ClientID          string     `json:"client_id"`
	RequestedScope    []string   `json:"requested_scope,omitempty"`
	GrantedScope      []string   `json:"granted_scope,omitempty"`
	RequestedAudience []string   `json:"requested_audience,omitempty"`
	GrantedAudience   []string   `json:"granted_audience,omitempty"`
	Form              url.Values `json:"form,omitempty"`
	Session           S          `json:"session"`
}

// record is a record whose session is decoded with it (into the Session
// the caller sets).
type record = recordOf[any]

func encode(r fosite.Requester) ([]byte, error) { return encodeRecord(r, r.GetSession()) }

// encodeWithoutSession is encode with "session":null: a code's PKCE and
// OpenID Connect parts, whose session is the request part's (code.go).
func encodeWithoutSession(r fosite.Requester) ([]byte, error) { return encodeRecord(r, nil) }

func encodeRecord(r fosite.Requester, session fosite.Session) ([]byte, error) {
	rec := record{
		ID: r.GetID(), RequestedAt: r.GetRequestedAt().UTC().Truncate(time.Second), ClientID: r.GetClient().GetID(),
		RequestedScope: r.GetRequestedScopes(), GrantedScope: r.GetGrantedScopes(),
		RequestedAudience: r.GetRequestedAudience(), GrantedAudience: r.GetGrantedAudience(),
		Form: r.GetRequestForm(),
	}
	if session != nil {
		rec.Session = session
	}
	return json.Marshal(rec)
}

// decode reads a stored request; the session is decoded into session (a
// pointer) directly, or skipped when session is nil.
func (s *Store) decode(ctx context.Context, b []byte, session fosite.Session) (*fosite.Request, error) {
	var into any = &json.RawMessage{}
	if session != nil {
		into = session
	}
	req, err := s.decodeInto(ctx, b, into)
	if err != nil {
		return nil, err
	}
	req.Session = session
	return req, nil
}

// decodeInto is decode with the session decoded into into (a pointer);
// the request's Session is left nil.
func (s *Store) decodeInto(ctx context.Context, b []byte, into any) (*fosite.Request, error) {
	rec := record{Session: into}
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("stored request: %w", err)
	}
	return s.request(ctx, &rec)
}

// decodeSession decodes a stored session's JSON into session.
//
// It and readPart (code.go) use github.com/goccy/go-json, a decoder of
// the same JSON into the same Go values as encoding/json that compiles a
// decoder per type instead of walking it by reflection and scans the
// input once: a code grant decodes four such requests and one session —
// the code's request twice, its PKCE and OpenID Connect requests — and
// with encoding/json that was ~60 µs of CPU and 14 KB allocated per code
// grant, a fifth of its CPU outside the signatures
// (docs/benchmarks/auth-server-history.md, session "codecpu").
// TestFastDecodeMatchesEncodingJSON compares them with encoding/json (the
// decoder outside a request scope) on random requests and sessions.
func decodeSession(raw []byte, session fosite.Session) error {
	return gojson.Unmarshal(raw, session)
}

// request is the fosite request of a decoded record, its client resolved.
func (s *Store) request(ctx context.Context, rec *record) (*fosite.Request, error) {
	c, err := s.clients.GetClient(ctx, rec.ClientID)
	if err != nil {
		return nil, err
	}
	form := rec.Form
	if form == nil {
		form = url.Values{}
	}
	return &fosite.Request{
		ID: rec.ID, RequestedAt: rec.RequestedAt, Client: c,
		RequestedScope: rec.RequestedScope, GrantedScope: rec.GrantedScope,
		RequestedAudience: rec.RequestedAudience, GrantedAudience: rec.GrantedAudience,
		Form: form,
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

func (s *Store) k(parts ...string) string { return s.rdb.Key(append([]string{"as"}, parts...)...) }

// --- clients ---------------------------------------------------------------

// GetClient implements fosite.ClientManager.
func (s *Store) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	return s.clients.GetClient(ctx, id)
}

// ClientAssertionJTIValid reports fosite.ErrJTIKnown when client clientID
// used a private_key_jwt assertion id before. The ids are kept per client
// (jtiKey): RFC 7519 §4.1.7 makes a jti unique among one issuer's tokens
// only, and anyone can run a private_key_jwt client, so one namespace for
// every client let anyone use up another client's predictable jti values.
// clientID must be the client whose key verified the assertion, never an
// id read from the request (oauth's clientLookups passes it).
func (s *Store) ClientAssertionJTIValid(ctx context.Context, clientID, jti string) error {
	n, err := s.rdb.Exists(ctx, s.jtiKey(clientID, jti)).Result()
	if err != nil {
		return unavailable(err)
	}
	if n > 0 {
		return fosite.ErrJTIKnown
	}
	return nil
}

// AssertionMaxLifetime and AssertionClockSkew bound how far in the future
// a private_key_jwt client assertion's exp may be: at most
// AssertionMaxLifetime + AssertionClockSkew (6 minutes) from now. RFC 7523
// §3 (item 4): the "exp" claim "limits the time window during which the
// JWT can be used", and the server "may reject JWTs with an "exp" claim
// value that is unreasonably far in the future". An assertion is signed
// for one request; its jti is kept until it expires (item 7), so an exp
// years ahead kept a key that long (exp in year 3000 overflowed the TTL:
// 503 "state store unavailable").
const (
	AssertionMaxLifetime = 5 * time.Minute
	AssertionClockSkew   = time.Minute
)

// SetClientAssertionJTI records client clientID's assertion id until it
// expires; a second use, even a concurrent one, gets fosite.ErrJTIKnown.
// An assertion whose exp is more than AssertionMaxLifetime +
// AssertionClockSkew ahead is refused (fosite.ErrInvalidClient, saying so)
// and its jti not recorded.
// fosite calls this once the assertion's signature, iss, sub and jti are
// verified. The jti is kept until exp plus AssertionClockSkew (another
// replica's clock may run that much behind), so at most
// AssertionMaxLifetime + 2×AssertionClockSkew.
//
// exp is judged in whole seconds, as the integer the assertion carries,
// never as a time.Time difference: fosite hands it over as
// time.Unix(exp, 0), which overflows inside package time for an exp within
// 62135596800 s of 2^63 (9223372036854774784, or 9.2233720368547e18 as a
// JSON number) into a date far in the past, whose exp.Sub(now) passed the
// bound as "expired just now": accepted, its jti kept two minutes, then
// replayable forever (brk47). time.Time.Unix undoes the same wrapping
// addition, so exp.Unix() is exactly the assertion's integer for every
// int64.
func (s *Store) SetClientAssertionJTI(ctx context.Context, clientID, jti string, exp time.Time) error {
	now := s.now()
	if ahead := exp.Unix() - now.Unix(); ahead > int64((AssertionMaxLifetime+AssertionClockSkew)/time.Second) {
		return fosite.ErrInvalidClient.WithHintf("The client assertion's exp is %s ahead; at most %s is accepted (%s, with %s for clock skew): sign each assertion for one request, with an exp a few minutes ahead (RFC 7523 section 3).",
			aheadText(ahead), AssertionMaxLifetime+AssertionClockSkew, AssertionMaxLifetime, AssertionClockSkew)
	}
	ttl := exp.Sub(now)
	if ttl <= 0 {
		ttl = time.Minute
	}
	ok, err := s.rdb.SetNX(ctx, s.jtiKey(clientID, jti), 1, min(ttl+AssertionClockSkew, AssertionMaxLifetime+2*AssertionClockSkew)).Result()
	if err != nil {
		return unavailable(err)
	}
	if !ok {
		return fosite.ErrJTIKnown
	}
	return nil
}

// aheadText says how far ahead (in seconds) an exp is: as a duration up
// to a day, in days beyond (time.Duration saturates at ~292 years).
func aheadText(seconds int64) string {
	if seconds < 86400 {
		return (time.Duration(seconds) * time.Second).String()
	}
	return fmt.Sprintf("%d days", seconds/86400)
}

// errJTIWithoutClient answers fosite.ClientManager's assertion id methods,
// which name no client: fosite's client authentication reaches the store
// through oauth's clientLookups, which passes the client to
// ClientAssertionJTIValid and SetClientAssertionJTI; a caller that did
// not is refused rather than given one namespace for every client.
var errJTIWithoutClient = fosite.ErrServerError.WithDebug("store: a client assertion id checked without its client (use ClientAssertionJTIValid and SetClientAssertionJTI)")

// ClientAssertionJWTValid implements fosite.ClientManager (compose.Compose
// asks the store for it) and refuses: see errJTIWithoutClient.
func (s *Store) ClientAssertionJWTValid(context.Context, string) error { return errJTIWithoutClient }

// SetClientAssertionJWT implements fosite.ClientManager and refuses: see
// errJTIWithoutClient.
func (s *Store) SetClientAssertionJWT(context.Context, string, time.Time) error {
	return errJTIWithoutClient
}

// jtiKey is the key of client clientID's assertion id jti:
// jti:<sha256(client id)>:<sha256(jti)>, two hashes so that no pair of
// (client, jti) shares another's key.
func (s *Store) jtiKey(clientID, jti string) string {
	return s.k("jti", redisx.Hash(clientID), redisx.Hash(jti))
}

// --- generic single-use and cached values ------------------------------------

// PutJSON stores v under the hashed key (kind, secret) for ttl, as
// MarshalJSON writes it.
func (s *Store) PutJSON(ctx context.Context, kind, secret string, v any, ttl time.Duration) error {
	b, err := MarshalJSON(v)
	if err != nil {
		return err
	}
	return s.PutRaw(ctx, kind, secret, b, ttl)
}

// MarshalJSON is v's JSON as the store writes it: encoding/json's without
// its HTML escaping, which wrote each '&', '<' and '>' as a six-byte
// \u0026 (a redirect URI's query grew up to six times over in Redis;
// the values are read back by json.Unmarshal, never put in HTML), and
// without the encoder's trailing newline.
func MarshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// PutRaw stores b under the hashed key (kind, secret) for ttl.
func (s *Store) PutRaw(ctx context.Context, kind, secret string, b []byte, ttl time.Duration) error {
	if err := s.rdb.Set(ctx, s.k(kind, redisx.Hash(secret)), b, ttl).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// ExtendUntil makes the value under (kind, secret) expire at until, when
// that is later than it would (EXPIRE GT): never earlier, and never
// bringing back a value that is gone.
func (s *Store) ExtendUntil(ctx context.Context, kind, secret string, until time.Time) error {
	ttl := until.Sub(s.now())
	if ttl <= 0 {
		return nil
	}
	if err := s.rdb.ExpireGT(ctx, s.k(kind, redisx.Hash(secret)), ttl).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// GetRaw reads the value under (kind, secret) without consuming it. It
// reports false when there is none.
func (s *Store) GetRaw(ctx context.Context, kind, secret string) ([]byte, bool, error) {
	b, err := s.rdb.Get(ctx, s.k(kind, redisx.Hash(secret))).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	} else if err != nil {
		return nil, false, unavailable(err)
	}
	return b, true, nil
}

// ReplaceJSON stores v under (kind, secret) for ttl only when a value is
// there already (SET XX): it never brings back one that expired or was
// deleted. It reports whether it stored v: false when there was no value.
func (s *Store) ReplaceJSON(ctx context.Context, kind, secret string, v any, ttl time.Duration) (bool, error) {
	b, err := MarshalJSON(v)
	if err != nil {
		return false, err
	}
	ok, err := s.rdb.SetXX(ctx, s.k(kind, redisx.Hash(secret)), b, ttl).Result()
	if err != nil {
		return false, unavailable(err)
	}
	return ok, nil
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

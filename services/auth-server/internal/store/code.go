package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/ory/fosite"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/redisx"
)

// An authorization code is one Redis hash, as:code:{<grant id>}:<mac>, for
// the code's lifetime. Its handle (fosite's "signature" of the code, see
// CodeHandle) is "<grant id>.<mac>": the code names the grant it will
// create, and both keys share the hash tag {<grant id>}, so the redemption
// script that touches both runs in one Redis Cluster slot. Fields:
//
//	req   the authorize request (client, scopes, audience, session)
//	pkce  the PKCE request (code_challenge, code_challenge_method)
//	oidc  the OpenID Connect request (nonce), when openid was granted
//	used  once redeemed, the redeeming call's nonce (redeemScript); "1"
//	      in codes redeemed by earlier versions
//	revoked  once a replay of the redeemed code revoked its grant
//	      (RevokeReplayedCode): later replays revoke nothing again
//	ended  once the user disconnected the code's app before the code was
//	      redeemed (EndCodes; Unix ms): the code no longer redeems
const (
	fieldRequest = "req"
	fieldPKCE    = "pkce"
	fieldOIDC    = "oidc"
	fieldUsed    = "used"
	fieldRevoked = "revoked"
	fieldEnded   = "ended"
)

// codeKey is the code's key for its handle "<grant id>.<mac>", "" when the
// handle is not one.
func (s *Store) codeKey(handle string) string {
	id, mac, err := splitHandle(handle)
	if err != nil {
		return ""
	}
	return s.k("code", redisx.Tag(id), mac)
}

// CodePrefix starts every authorization code (fosite's HMAC token prefix).
const CodePrefix = "ory_ac_"

// CodeHandle is the store handle "<grant id>.<mac>" of an authorization
// code in the oauth package's format, ory_ac_<key>.<mac> with key =
// len(grant id) (1 byte) | grant id | nonce, or "" when code is not in that
// form. It does not check the MAC (the oauth strategy validates the code);
// a forged code names no stored hash. fosite hands the OpenID Connect
// storage the code itself, the other storages this handle.
func CodeHandle(code string) string {
	raw, ok := strings.CutPrefix(code, CodePrefix)
	if !ok {
		return ""
	}
	k, mac, ok := strings.Cut(raw, ".")
	if !ok || mac == "" {
		return ""
	}
	// The key is decoded on the stack (fosite asks for a code's handle
	// five times per grant); an unusually long one as any other.
	var src [256]byte
	var buf [192]byte
	var key []byte
	if len(k) <= len(src) {
		n, err := base64.RawURLEncoding.Decode(buf[:], src[:copy(src[:], k)])
		if err != nil {
			return ""
		}
		key = buf[:n]
	} else {
		var err error
		if key, err = base64.RawURLEncoding.DecodeString(k); err != nil {
			return ""
		}
	}
	if len(key) < 1 || len(key) < 1+int(key[0]) {
		return ""
	}
	id := key[1 : 1+int(key[0])]
	if !validGrantID(id) {
		return ""
	}
	return string(id) + "." + mac
}

// ValidGrantID bounds what may reach a key or a hash tag: fosite request
// ids (grant ids) are UUIDs; at most 128 characters of [A-Za-z0-9_-].
func ValidGrantID(id string) bool { return validGrantID(id) }

func validGrantID[S string | []byte](id S) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := range len(id) {
		r := id[i]
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// putCodeField stores one part of the code's hash; the hash expires with
// the code. The request part (req) holds the code's session; the PKCE and
// OpenID Connect parts hold "session":null (sessionInRequest): fosite
// hands each of its three authorize handlers a copy of one authorize
// request (Request.Sanitize: the form filtered, the same session object),
// and the code handler, which writes req, runs first (oauth.New composes
// it before the OpenID Connect and PKCE handlers). Each part holding its
// own copy of the session — ~0.8 KB of JSON, two thirds of a code's hash,
// read and scanned at every code grant — was what earlier versions wrote;
// their records are read as before (codePart).
func (s *Store) putCodeField(ctx context.Context, sig, field string, r fosite.Requester) error {
	if sig == "" {
		return fmt.Errorf("authorization code: %w", fosite.ErrInvalidTokenFormat)
	}
	var b []byte
	var err error
	if field == fieldRequest {
		b, err = encode(r)
	} else {
		b, err = encodeWithoutSession(r)
	}
	if err != nil {
		return err
	}
	key := s.codeKey(sig)
	if key == "" {
		return fmt.Errorf("authorization code: %w", fosite.ErrInvalidTokenFormat)
	}
	ttl := s.ttlFor(r, fosite.AuthorizeCode, s.ttl.Code)
	pipe := s.rdb.Pipeline()
	pipe.HSet(ctx, key, field, b)
	pipe.PExpire(ctx, key, ttl)
	if field == fieldRequest {
		s.indexCode(ctx, pipe, sig, r, ttl) // in the same round trip (codeends.go)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return unavailable(err)
	}
	return nil
}

// sessionInRequest is the session JSON of a code's PKCE or OpenID Connect
// part whose session is the request part's (putCodeField).
const sessionInRequest = "null"

// codeRead is a read of a code's hash started ahead (PrefetchCode): f and
// err are set when done is closed.
type codeRead struct {
	done chan struct{}
	f    map[string]string
	err  error
}

// PrefetchCode starts reading the hash of code (a code as the client
// presents it) into ctx's request scope (WithRequestScope), so that its
// round trip runs while the request waits for something else; fosite's
// reads of the code then take its answer instead of reading again. The
// token endpoint calls it once the client is authenticated, before the
// request waits for its turn in the signing queue. A read has no effect on
// the code (its redemption is the script's, at Commit), so reading early
// changes nothing but when. Without a request scope, or for a code that is
// not one of ours, it does nothing.
func (s *Store) PrefetchCode(ctx context.Context, code string) {
	sc := scopeOf(ctx)
	sig := CodeHandle(code)
	if sc == nil || sig == "" {
		return
	}
	key := s.codeKey(sig)
	if key == "" {
		return
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if _, ok := sc.codes[sig]; ok || sc.codeReads[sig] != nil {
		return
	}
	if sc.codeReads == nil {
		sc.codeReads = map[string]*codeRead{}
	}
	cr := &codeRead{done: make(chan struct{})}
	sc.codeReads[sig] = cr
	s.goAsync(func() {
		defer close(cr.done)
		cr.f, cr.err = s.rdb.HGetAll(ctx, key).Result()
	})
}

// codeFields reads the code's hash, once per request scope (or takes the
// answer of PrefetchCode's read).
func (s *Store) codeFields(ctx context.Context, sig string) (map[string]string, error) {
	sc := scopeOf(ctx)
	var cr *codeRead
	if sc != nil {
		sc.mu.Lock()
		f, ok := sc.codes[sig]
		cr = sc.codeReads[sig]
		sc.mu.Unlock()
		if ok {
			return f, nil
		}
	}
	var f map[string]string
	var err error
	if cr != nil {
		<-cr.done
		f, err = cr.f, cr.err
	} else {
		key := s.codeKey(sig)
		if key == "" {
			return map[string]string{}, nil
		}
		f, err = s.rdb.HGetAll(ctx, key).Result()
	}
	if err != nil {
		return nil, unavailable(err)
	}
	if sc != nil {
		sc.mu.Lock()
		if sc.codes == nil {
			sc.codes = map[string]map[string]string{}
		}
		sc.codes[sig] = f
		delete(sc.codeReads, sig)
		sc.mu.Unlock()
	}
	return f, nil
}

func (s *Store) codePart(ctx context.Context, sig, field string, session fosite.Session) (*fosite.Request, map[string]string, error) {
	if sig == "" {
		return nil, nil, fosite.ErrNotFound
	}
	f, err := s.codeFields(ctx, sig)
	if err != nil {
		return nil, nil, err
	}
	if _, ok := f[field]; !ok {
		return nil, nil, fosite.ErrNotFound
	}
	var req *fosite.Request
	if sc := scopeOf(ctx); sc != nil {
		req, err = s.decodeScoped(ctx, sc, sig, field, f, session)
	} else {
		req, err = s.decodeUnscoped(ctx, field, f, session)
	}
	return req, f, err
}

// partRead is a code part decoded within a request scope: its request
// (Session nil) and its session's JSON as stored — the request part's for
// a part that holds none (putCodeField).
type partRead struct {
	req     *fosite.Request
	session []byte // the stored session's JSON; not changed once read
}

type partKey struct{ sig, field string }

// decodeScoped decodes a part of the code's hash f for the reads of one
// request scope. Each part is decoded once per request: fosite reads the
// request part twice (its code handler's two steps), and the second read
// gets a copy of the first's request. A session object that already holds
// the same stored session JSON (decoded by an earlier read of this
// request) is not decoded again: fosite changes only expiries the stored
// JSON does not carry between those reads, so a second decode would write
// the same values.
//
// The part's session JSON (readPart) is compared as it is stored; it is
// decoded only when this session does not hold it yet.
func (s *Store) decodeScoped(ctx context.Context, sc *requestScope, sig, field string, f map[string]string, session fosite.Session) (*fosite.Request, error) {
	k := partKey{sig, field}
	sc.mu.Lock()
	p := sc.parts[k]
	sc.mu.Unlock()
	if p == nil {
		var err error
		var inRequest bool
		if p, inRequest, err = s.readPart(ctx, field, f); err != nil {
			return nil, err
		}
		if inRequest {
			// The request part's session, as its read found it (fosite
			// reads the request part first), else found now.
			sc.mu.Lock()
			rp := sc.parts[partKey{sig, fieldRequest}]
			sc.mu.Unlock()
			if rp != nil {
				p.session = rp.session
			} else {
				raw, err := requestSession(f)
				if err != nil {
					return nil, err
				}
				p.session = []byte(raw)
			}
		}
		sc.mu.Lock()
		if sc.parts == nil {
			sc.parts = map[partKey]*partRead{}
		}
		sc.parts[k] = p
		sc.mu.Unlock()
	}
	if session != nil {
		sc.mu.Lock()
		done := bytes.Equal(sc.sessions[session], p.session)
		sc.mu.Unlock()
		if !done {
			if err := decodeSession(p.session, session); err != nil {
				return nil, fmt.Errorf("stored session: %w", err)
			}
			sc.mu.Lock()
			if sc.sessions == nil {
				sc.sessions = map[fosite.Session][]byte{}
			}
			sc.sessions[session] = p.session
			sc.mu.Unlock()
		}
	}
	req := *p.req
	req.Session = session
	return &req, nil
}

// rawRecord is a record with its session's JSON as it is stored.
type rawRecord = recordOf[json.RawMessage]

// readPart decodes the request of part field of the code's hash f and
// keeps its session's JSON, without decoding it; inRequest says the part
// holds none (putCodeField): its session is the request part's.
//
// The part is read in one pass by github.com/goccy/go-json (as
// decodeSession), the session kept as raw JSON (rawRecord); until session
// 41 it was split off first (splitLast) and only the rest decoded, a scan
// of every part's bytes more (docs/benchmarks/auth-server-history.md,
// session 41 perf14).
func (s *Store) readPart(ctx context.Context, field string, f map[string]string) (p *partRead, inRequest bool, err error) {
	var rec rawRecord
	if err := gojson.Unmarshal([]byte(f[field]), &rec); err != nil {
		return nil, false, fmt.Errorf("stored request: %w", err)
	}
	req, err := s.request(ctx, &record{ID: rec.ID, RequestedAt: rec.RequestedAt, ClientID: rec.ClientID,
		RequestedScope: rec.RequestedScope, GrantedScope: rec.GrantedScope,
		RequestedAudience: rec.RequestedAudience, GrantedAudience: rec.GrantedAudience, Form: rec.Form})
	if err != nil {
		return nil, false, err
	}
	raw := []byte(rec.Session)
	if raw == nil {
		raw = []byte(sessionInRequest) // null
	}
	return &partRead{req: req, session: raw}, field != fieldRequest && string(raw) == sessionInRequest, nil
}

// requestSession is the session JSON of the code's request part, for a
// part that holds none.
func requestSession(f map[string]string) (string, error) {
	b, ok := f[fieldRequest]
	if !ok {
		return "", fosite.ErrNotFound
	}
	if _, raw, ok := splitLast(b, `"session":`); ok {
		return raw, nil
	}
	var rec struct {
		Session json.RawMessage `json:"session"`
	}
	if err := json.Unmarshal([]byte(b), &rec); err != nil {
		return "", fmt.Errorf("stored request: %w", err)
	}
	return string(rec.Session), nil
}

// decodeUnscoped is a part's decode outside a request scope, with
// encoding/json only.
func (s *Store) decodeUnscoped(ctx context.Context, field string, f map[string]string, session fosite.Session) (*fosite.Request, error) {
	b := f[field]
	if field == fieldRequest || session == nil {
		return s.decode(ctx, []byte(b), session)
	}
	var raw json.RawMessage
	req, err := s.decodeInto(ctx, []byte(b), &raw)
	if err != nil {
		return nil, err
	}
	if raw == nil || string(raw) == sessionInRequest { // nil: null (readPart)
		r, err := requestSession(f)
		if err != nil {
			return nil, err
		}
		raw = json.RawMessage(r)
	}
	if err := json.Unmarshal(raw, session); err != nil {
		return nil, fmt.Errorf("stored session: %w", err)
	}
	req.Session = session
	return req, nil
}

// CreateAuthorizeCodeSession stores the authorize request of a new code.
func (s *Store) CreateAuthorizeCodeSession(ctx context.Context, sig string, r fosite.Requester) error {
	return s.putCodeField(ctx, sig, fieldRequest, r)
}

// GetAuthorizeCodeSession returns the code's request; once the code was
// redeemed (its "used" mark), the request with
// fosite.ErrInvalidatedAuthorizeCode, which fosite's code handler answers
// 400 invalid_grant; once its user disconnected its app before it was
// redeemed (EndCodes), the request with ErrCodeEnded (oauth's
// codeGrantHandler: 400 invalid_grant). It revokes nothing: whether a
// second use of the code revokes the grant it created (OAuth 2.1 §4.1.3,
// RFC 6749 §4.1.2) depends on who presents it, which fosite checks after
// this read — the client, the redirect URI, the PKCE verifier — and a code
// leaked without its verifier must not revoke its user's grant. The oauth package's code
// handler makes those checks and then revokes (RevokeReplayedCode).
func (s *Store) GetAuthorizeCodeSession(ctx context.Context, sig string, session fosite.Session) (fosite.Requester, error) {
	req, f, err := s.codePart(ctx, sig, fieldRequest, session)
	if err != nil {
		return nil, err
	}
	if f[fieldUsed] != "" {
		return req, fosite.ErrInvalidatedAuthorizeCode
	}
	if f[fieldEnded] != "" {
		return req, ErrCodeEnded
	}
	return req, nil
}

// RevokeReplayedCode revokes the grant created by the redeemed code sig (a
// handle GetAuthorizeCodeSession answered fosite.ErrInvalidatedAuthorizeCode
// for): a code used more than once revokes what it issued (OAuth 2.1
// §4.1.3, RFC 6749 §4.1.2). The caller calls it only for a presentation
// that would have redeemed the code had it been unused (oauth's
// codeGrantHandler). It returns ErrUnavailable when the revocation fails
// (the request answers 503, so the grant is never left live behind an
// invalid_grant, and a retry revokes it); nil otherwise, and for a handle
// that names no grant.
//
// A revocation that succeeded is marked on the code ("revoked"): a later
// replay of the same code revokes nothing again — no second announcement
// to the fleet, no second revocation audit record — so whoever holds a used
// code and its verifier cannot turn each replay into a fleet-wide
// announcement. The mark is read with the code (codeFields: the request's
// one read). Concurrent replays that read the code before the mark may
// each revoke; should the mark not be written, the next replay revokes
// again (idempotent).
func (s *Store) RevokeReplayedCode(ctx context.Context, sig string) error {
	id, _, err := splitHandle(sig)
	if err != nil {
		return nil
	}
	f, err := s.codeFields(ctx, sig)
	if err != nil {
		return err
	}
	if f[fieldRevoked] != "" {
		return nil
	}
	if err := s.RevokeGrant(ctx, id); err != nil {
		return err
	}
	if err := markRevokedScript.Run(ctx, s.rdb, []string{s.codeKey(sig)}).Err(); err != nil {
		s.log.WarnContext(ctx, "code replay: grant revoked, but the code not marked so; a further replay revokes it again", "grant_id", id, "err", err)
	}
	return nil
}

// markRevokedScript sets the code's "revoked" field while the code exists
// (an HSET on a code that expired meanwhile would create a hash without
// its TTL). KEYS[1] the code.
var markRevokedScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'revoked', '1') end
return 0
`)

// InvalidateAuthorizeCodeSession marks the code redeemed. Within a
// transaction it happens at Commit, together with the creation of the
// grant, in one script: of concurrent redemptions exactly one commits, the
// others get ErrCodeReplayed and revoke the winner's grant (a code used
// twice, OAuth 2.1 §4.1.3).
func (s *Store) InvalidateAuthorizeCodeSession(ctx context.Context, sig string) error {
	return s.pending(ctx, func(t *tx) { t.redeem = sig })
}

// --- PKCE and OpenID Connect sessions ----------------------------------------

// CreatePKCERequestSession stores the code's PKCE challenge.
func (s *Store) CreatePKCERequestSession(ctx context.Context, sig string, r fosite.Requester) error {
	return s.putCodeField(ctx, sig, fieldPKCE, r)
}

// GetPKCERequestSession returns the code's PKCE request.
func (s *Store) GetPKCERequestSession(ctx context.Context, sig string, session fosite.Session) (fosite.Requester, error) {
	req, _, err := s.codePart(ctx, sig, fieldPKCE, session)
	return req, err
}

// DeletePKCERequestSession keeps the challenge: fosite deletes it before
// comparing the verifier, so deleting would let a wrong verifier burn the
// rightful client's code. It expires with the code, and the code itself is
// single use.
func (s *Store) DeletePKCERequestSession(context.Context, string) error { return nil }

// CreateOpenIDConnectSession stores the code's OpenID Connect request in the
// code's hash (fosite passes the code itself; the key is its signature).
func (s *Store) CreateOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) error {
	return s.putCodeField(ctx, CodeHandle(code), fieldOIDC, r)
}

// GetOpenIDConnectSession returns the code's OpenID Connect request, or
// fosite.ErrNotFound (openid.ErrNoSessionFound) when openid was not granted.
func (s *Store) GetOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) (fosite.Requester, error) {
	req, _, err := s.codePart(ctx, CodeHandle(code), fieldOIDC, r.GetSession())
	return req, err
}

// DeleteOpenIDConnectSession does nothing: the session expires with the
// code's hash, and the code is single use.
func (s *Store) DeleteOpenIDConnectSession(context.Context, string) error { return nil }

// redeemScript redeems a code and creates its grant, atomically.
//
//	KEYS[1] the code hash, KEYS[2] the grant's record (one hash tag, the
//	grant id)
//	ARGV[1] the grant's record ("" for none; record.go), ARGV[2] its TTL
//	(ms), ARGV[3] the time (Unix ms) after which the redemption is refused
//	(late.go), ARGV[4] the redeeming call's nonce (redeemNonce)
//
// Returns 1 redeemed — by this call, or already by an earlier delivery of
// this same call (the same nonce: a go-redis cluster pipeline sends a batch
// again after a read timeout, and the first delivery may have run) — 0
// already redeemed by another call, -1 the code is gone (expired), -2 the
// code was ended (its "ended" mark: the user disconnected its app, EndCodes,
// after the request read it), or
// {lateStatus, Redis's time (Unix ms)} for a redemption refused as late:
// the code is left as it was. The call's own nonce is looked for before
// the late bound: a resend that arrives past the bound, after an earlier
// delivery redeemed the code within it, changes nothing either way, and
// answering it "refused as late" would tell a caller still waiting (go-
// redis's attempts can outlast GiveUpAfter: a wait for a pooled
// connection is one) that the code was not redeemed when it was — a 503
// whose retry is a replay that revokes the grant
// (TestClusterRedemptionResentPastTheBoundIsOneRedemption).
var redeemScript = redis.NewScript(`
local f = redis.call('HMGET', KEYS[1], 'used', 'ended')
local used = f[1]
if used == ARGV[4] then return 1 end
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if f[2] then return -2 end
local t = redis.call('TIME')
local tnow = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tnow > tonumber(ARGV[3]) then return {6, tnow} end
if used then return 0 end
redis.call('HSET', KEYS[1], 'used', ARGV[4])
if ARGV[1] ~= '' then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
end
return 1
`)

// ErrCodeExpired is returned at Commit when the code expired between its
// read and its redemption.
var ErrCodeExpired = errors.New("authorization code expired")

// redeem runs the redemption script, in one round trip with the listing of
// the grant under its subject (subjects.go): a pipeline whose index
// commands come first, so on a single node they are applied before the
// grant exists. The script's answer alone decides the redemption: once it
// has marked the code used, failing the request (503) would make the
// client's retry a replay that revokes the grant. So an index command that
// fails while the script succeeds — a key of the wrong type, or in a
// cluster the index's node failing while the code's answers — leaves the
// tokens issued, and the grant is listed again once in the background
// (relistGrant, relistAfter later); should that fail too, a rotation
// renews its listing (about a day later: subjects.go), and a grant
// without a refresh token stays unlisted. A connection that fails fails
// the script too. A replayed code leaves a member without a record, which
// reading or a sweep drops.
func (s *Store) redeem(ctx context.Context, t *tx) error {
	run, err := s.prepareRedeem(ctx, t)
	if err != nil {
		return err
	}
	return run()
}

// prepareRedeem does redeem's work up to its round trip — it checks t and
// encodes the grant's record, so t and the request it holds may change once
// it returns — and returns the round trip and the handling of its answer.
func (s *Store) prepareRedeem(ctx context.Context, t *tx) (func() error, error) {
	keys := []string{s.codeKey(t.redeem), ""}
	if keys[0] == "" {
		return nil, fmt.Errorf("%w: %w", ErrCodeReplayed, ErrCodeExpired)
	}
	args := []any{"", int64(0), "", redeemNonce()}
	pipe := s.rdb.Pipeline()
	var l listing
	if t.grant != nil {
		if id, _, _ := splitHandle(t.redeem); id != t.grant.GetID() {
			return nil, errors.New("authorization code redeemed for another grant")
		}
		refresh := t.refresh != ""
		h := grantHeader{}
		if refresh {
			_, mac, err := splitHandle(t.refresh)
			if err != nil {
				return nil, err
			}
			h.rt = mac
		}
		ttl := s.grantTTL(t.grant, refresh)
		var until time.Time
		l, until = s.listGrant(ctx, pipe, t.grant, ttl)
		h.indexUntil = strconv.FormatInt(until.UnixMilli(), 10)
		rec, err := encodeGrant(t.grant, h)
		if err != nil {
			return nil, err
		}
		keys[1] = s.grantKey(t.grant.GetID())
		args[0], args[1] = rec, ttl.Milliseconds()
	} else {
		keys[1] = keys[0] // unused; one slot in a cluster
	}
	// The code's handle is taken now: Commit resets t once this returns,
	// and a lost redemption revokes the winner's grant by it. The script
	// joins the pipeline when it is sent: its late bound counts from then.
	sig := t.redeem
	return func() error { return s.execRedeem(ctx, sig, pipe, keys, args, l) }, nil
}

// execRedeem is redeem's round trip (prepareRedeem) and what its answer
// means. The script refuses a redemption that runs after its caller gave
// up (boundedWrite): the code stays unredeemed, so a client answered 503
// redeems it when it retries instead of replaying it.
func (s *Store) execRedeem(ctx context.Context, sig string, pipe redis.Pipeliner, keys []string, args []any, l listing) error {
	first := true
	var cmds []redis.Cmder
	n, err := s.boundedWrite(errLateRedemption, func(bound any) (int64, int64, error) {
		args[2] = bound
		var v any
		var err error
		if first {
			first = false
			if s.redeemDelivered != nil {
				s.redeemDelivered(ctx, keys, args)
			}
			eval := redeemScript.EvalSha(ctx, pipe, keys, args...)
			cmds, _ = pipe.Exec(ctx) // the script's answer decides (redeem)
			v, err = eval.Result()
			if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
				v, err = redeemScript.Eval(ctx, s.rdb, keys, args...).Result() // and cached for the next EVALSHA
			}
		} else {
			v, err = redeemScript.Run(ctx, s.rdb, keys, args...).Result()
		}
		if err != nil {
			return 0, 0, unavailable(err)
		}
		status, redisNow, err := boundedAnswer("redeem script", v)
		if err != nil {
			return 0, 0, unavailable(err)
		}
		return status, redisNow, nil
	})
	switch {
	case err != nil:
		return err
	case n == 0:
		// Another redemption of the code won, before this one or at the
		// same time: a code used more than once revokes what it issued
		// (OAuth 2.1 §4.1.3), whichever use read it first. A replay that
		// read the "used" mark revokes in RevokeReplayedCode once its
		// checks passed; this is the one that read the code before the
		// winner's commit, and passed them (fosite commits only then).
		if id, _, err := splitHandle(sig); err == nil {
			if err := s.RevokeGrant(ctx, id); err != nil {
				return err
			}
		}
		return ErrCodeReplayed
	case n == -2:
		return ErrCodeEnded
	case n < 0:
		return fmt.Errorf("%w: %w", ErrCodeReplayed, ErrCodeExpired)
	}
	if l.sub != "" && listingFailed(cmds) {
		s.relistGrant(ctx, l)
	}
	if l.sweepDue() {
		s.sweepIndex(ctx, s.subjectKey(l.sub))
	}
	return nil
}

// listingFailed reports whether a command of a redemption's pipeline other
// than the script (its listing, listGrant) failed.
func listingFailed(cmds []redis.Cmder) bool {
	for _, c := range cmds {
		if c.Name() == "evalsha" {
			continue
		}
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return true
		}
	}
	return false
}

// redeemNonce names one redemption call (redeemScript's ARGV[4]): 16
// random bytes, base64url. A call delivered twice by the client library's
// own retry finds its nonce in "used" and is the redemption; another call
// — the client's retry after a 503, a replay — is not.
func redeemNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// grantTTL is how long a grant's record lives: until its refresh token
// expires, or its access token when it has no refresh token.
func (s *Store) grantTTL(r fosite.Requester, refresh bool) time.Duration {
	if refresh {
		return s.ttlFor(r, fosite.RefreshToken, s.ttl.Refresh)
	}
	return s.ttlFor(r, fosite.AccessToken, s.ttl.Access)
}

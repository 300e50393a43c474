package tokens

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/sync/singleflight"
)

// ErrInvalidToken means the token must be refused (401 invalid_token).
// Verify and Recheck return it as a *Refusal, whose message says why (for
// error_description) and whose Reason is the same as a code (for logs).
var ErrInvalidToken = errors.New("invalid token")

// ErrKeysUnavailable means the key set could not be fetched: the caller
// should answer 503, not 401.
var ErrKeysUnavailable = errors.New("signing keys unavailable")

// MaxKeyIDLength bounds the kid of a token a verifier looks up: the
// auth-server's kids are file names without ".pem" (SIGNING_KEYS_DIR), so
// never longer than 251 bytes. A longer kid is refused before the key
// lookup, and the refusal does not quote it: a kid is the token's own
// text, and the reason is answered in error_description (RFC 6750 §3) and
// the JSON body.
const MaxKeyIDLength = 255

// KeySet is what a verifier needs from the auth-server.
type KeySet struct {
	Issuer string
	Keys   jose.JSONWebKeySet
}

// Revocations answers whether a grant was revoked, and whether a token
// of a client issued at a time predates the client's removal from the
// auth-server's clients file, from memory (see
// services/platform/revocation); it is asked on every Verify, cached or
// not, and on every Recheck.
type Revocations interface {
	Revoked(grantID string) bool
	ClientRemoved(clientID string, issuedAt time.Time) bool
}

// KeySource fetches the current key set.
type KeySource interface {
	FetchKeySet(ctx context.Context) (KeySet, error)
}

// VerifierOptions configure a Verifier.
type VerifierOptions struct {
	Source KeySource
	// Audiences accepted; a token must name at least one of them.
	Audiences []string
	// Leeway tolerated on exp, nbf and iat (default 30s).
	Leeway time.Duration
	// CacheSize bounds the verified-token cache (default 10000 tokens).
	CacheSize int
	// MinRefreshInterval bounds how often requests may make the verifier
	// fetch the key set (default 10s), so garbage tokens cannot hammer the
	// auth-server: an unknown kid refetches at most once per interval, and
	// within the interval after a failed fetch no request (a stale set's
	// refresh, an unknown kid, a request before the first set) and no
	// Ready check fetches again: an unknown kid or a request before the
	// first set gets ErrKeysUnavailable. Before the first set the window
	// is FirstSetRetry (1s) instead. KeepFresh retries on its own
	// schedule (every second before the first set, then 1s to 30s apart).
	MinRefreshInterval time.Duration
	// KeysMaxAge is how long a fetched key set is used before a routine
	// refresh (default 5m).
	KeysMaxAge time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OnCache is told whether each Verify was answered from the cache (metrics).
	OnCache func(hit bool)
	// Revocations, when set, refuses tokens whose grant was revoked
	// ("token revoked") and tokens of a client removed from the
	// auth-server's clients file issued at or before its removal ("client
	// removed"), with the same ErrInvalidToken as an expired token.
	Revocations Revocations
	// NewKeyGrace (default 10m) is how long after the verifier first saw a
	// key its absence from a fetched set is not told to OnKeysRemoved
	// hooks: while auth-server pods roll out, a fetch may be answered by a
	// pod that does not have a just-added key yet, and that is not the
	// key's removal. Verify still refuses the key's tokens while a set
	// lacks it. Keys of the verifier's first fetch count as long seen.
	NewKeyGrace time.Duration
}

// Verifier checks RS256 and ES256 access tokens. Verified tokens are cached until
// they expire, so a session's steady-state cost is one map lookup. When a
// fetched key set no longer holds a key the previous one had (retired, or
// removed because it leaked), the cache is emptied: tokens of that key are
// verified again, and refused (unknown kid), instead of being served from
// the cache until they expire.
type Verifier struct {
	o VerifierOptions
	// cache is keyed by the token itself: the map's seeded hash of ~900
	// bytes and one comparison on a hit cost less than SHA-256 of a copy of
	// them, and the key is the verified claims' own Raw, so the token is
	// held once.
	cache *expirable.LRU[string, *Claims]
	sf    singleflight.Group

	mu          sync.RWMutex
	keys        KeySet
	fetchedAt   time.Time
	lastForced  time.Time
	lastTried   time.Time // when the last fetch ended, failed or not
	everFetched bool
	lastErr     error // of the last fetch (source.go)
	// purges counts the cache purges made because a key left the set (or
	// the issuer changed): see fetch in source.go.
	purges uint64

	// firstSeen is when a fetched set first held each key (keyIdentity),
	// the zero time for the first fetch's keys (NewKeyGrace).
	firstSeen map[string]time.Time

	// hooks are told the kids that leave the key set (OnKeysRemoved).
	hooksMu sync.Mutex
	hooks   map[*func([]string)]struct{}
}

// NewVerifier returns a verifier; keys are fetched on first use.
func NewVerifier(o VerifierOptions) *Verifier {
	if o.Leeway == 0 {
		o.Leeway = 30 * time.Second
	}
	if o.CacheSize == 0 {
		o.CacheSize = 10000
	}
	if o.MinRefreshInterval == 0 {
		o.MinRefreshInterval = 10 * time.Second
	}
	if o.KeysMaxAge == 0 {
		o.KeysMaxAge = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NewKeyGrace == 0 {
		o.NewKeyGrace = 10 * time.Minute
	}
	return &Verifier{o: o, firstSeen: map[string]time.Time{}, cache: expirable.NewLRU[string, *Claims](o.CacheSize, nil, time.Hour)}
}

// Verify checks raw and returns its claims, or nil claims and an error:
// a *Refusal (wrapping ErrInvalidToken: the token is refused, 401
// invalid_token; Refusal.Verified names who it was issued to when its
// signature verified) or one wrapping ErrKeysUnavailable (no key set to
// check it with: 503).
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	now := v.o.Now()
	if c, ok := v.cache.Get(raw); ok {
		if !now.Before(c.Expiry.Add(v.o.Leeway)) {
			v.cache.Remove(raw)
			return nil, refuse(ReasonExpired, c, "token expired")
		}
		v.report(true)
		if err := v.revoked(c); err != nil {
			return nil, err
		}
		return c, nil
	}
	v.report(false)
	v.mu.RLock()
	gen := v.purges
	v.mu.RUnlock()
	c, err := v.verify(ctx, raw, now)
	if err != nil {
		return nil, err
	}
	// Cache it only if no key left the set while it was verified: a token
	// checked against the set a fetch just replaced is answered, not kept.
	v.mu.RLock()
	if v.purges == gen {
		v.cache.Add(c.Raw, c)
	}
	v.mu.RUnlock()
	if err := v.revoked(c); err != nil {
		return nil, err
	}
	return c, nil
}

// Recheck tells, from memory, whether c — a token Verify accepted, held
// by something that lasts (an open stream) — is still accepted: its exp
// plus the leeway has not passed, its grant is not revoked, its client
// was not removed after it was issued, and the key set in use still
// holds the key that signed it (Publishes). It is the
// answer Verify would give, without the cache or a key fetch, and it is
// not reported to OnCache: re-checking what was verified once is not a
// verification of a request.
func (v *Verifier) Recheck(c *Claims) error {
	if !v.o.Now().Before(c.Expiry.Add(v.o.Leeway)) {
		return refuse(ReasonExpired, c, "token expired")
	}
	if err := v.revoked(c); err != nil {
		return err
	}
	if !v.Publishes(c) {
		return refuse(ReasonUnknownKey, c, "kid %q is no longer in the key set", c.KeyID)
	}
	return nil
}

// revoked asks the revocation set, which answers from memory, and
// returns the refusal of a revoked grant's token or of a removed client's
// token issued before the removal. A refused token stays cached (its
// signature is still good), so asking again costs no RSA verification.
func (v *Verifier) revoked(c *Claims) error {
	switch {
	case v.o.Revocations == nil:
		return nil
	case c.GrantID != "" && v.o.Revocations.Revoked(c.GrantID):
		return refuse(ReasonRevoked, c, "token revoked")
	case v.o.Revocations.ClientRemoved(c.ClientID, c.IssuedAt):
		return refuse(ReasonClientRemoved, c, "client removed")
	}
	return nil
}

func (v *Verifier) report(hit bool) {
	if v.o.OnCache != nil {
		v.o.OnCache(hit)
	}
}

func (v *Verifier) verify(ctx context.Context, raw string, now time.Time) (*Claims, error) {
	if strings.Count(raw, ".") != 2 {
		return nil, refuse(ReasonMalformed, nil, "not a JWS compact token")
	}
	tok, err := jwt.ParseSigned(raw, AccessTokenAlgorithms)
	if err != nil {
		return nil, refuse(ReasonMalformed, nil, "malformed token or algorithm not RS256 or ES256")
	}
	h := tok.Headers[0]
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, AccessTokenType) && !strings.EqualFold(typ, "application/"+AccessTokenType) {
		return nil, refuse(ReasonMalformed, nil, "typ is not %s", AccessTokenType)
	}
	if h.KeyID == "" {
		return nil, refuse(ReasonMalformed, nil, "no kid")
	}
	if len(h.KeyID) > MaxKeyIDLength {
		// Not looked up (no refetch for it) and not quoted: the reason
		// reaches error_description and the JSON body of every service.
		return nil, refuse(ReasonMalformed, nil, "kid longer than %d bytes", MaxKeyIDLength)
	}
	ks, jwk, err := v.key(ctx, h.KeyID)
	if err != nil {
		return nil, err
	}
	var std jwt.Claims
	var priv AccessClaims
	if err := checkSignature(tok, jwk, h.Algorithm, &std, &priv); err != nil {
		if !errors.Is(err, errBadSignature) {
			return nil, err
		}
		// The kid may now name another key (a leaked key replaced under
		// the same name): try the key the set holds under it now, once.
		fresh, replaced, ok, err := v.replacedKey(ctx, h.KeyID, jwk)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, refuse(ReasonBadSignature, nil, "bad signature")
		}
		if err := checkSignature(tok, replaced, h.Algorithm, &std, &priv); err != nil {
			if errors.Is(err, errBadSignature) {
				return nil, refuse(ReasonBadSignature, nil, "bad signature")
			}
			return nil, err
		}
		ks, jwk = fresh, replaced
	}
	// The signature verified: the claims are the auth-server's, and a
	// refusal from here on carries them (Refusal.Verified).
	c := newClaims(raw, std, priv)
	c.KeyID, c.signer = jwk.KeyID, jwk
	if std.Expiry == nil || std.IssuedAt == nil || std.Subject == "" {
		return nil, refuse(ReasonInvalidClaims, c, "exp, iat and sub are required")
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: ks.Issuer, Time: now}, v.o.Leeway); err != nil {
		switch {
		case errors.Is(err, jwt.ErrExpired):
			return nil, refuse(ReasonExpired, c, "token expired")
		case errors.Is(err, jwt.ErrNotValidYet), errors.Is(err, jwt.ErrIssuedInTheFuture):
			return nil, refuse(ReasonNotYetValid, c, "token not valid yet")
		case errors.Is(err, jwt.ErrInvalidIssuer):
			return nil, refuse(ReasonWrongIssuer, c, "wrong issuer")
		}
		return nil, refuse(ReasonInvalidClaims, c, "%v", err)
	}
	matched := false
	for _, a := range v.o.Audiences {
		if std.Audience.Contains(a) {
			matched = true
			break
		}
	}
	if !matched {
		return nil, refuse(ReasonWrongAudience, c, "wrong audience")
	}
	if priv.ClientID == "" {
		return nil, refuse(ReasonInvalidClaims, c, "client_id is required")
	}
	return c, nil
}

// errBadSignature is checkSignature's answer for a key that fits the
// token's algorithm but did not sign it.
var errBadSignature = errors.New("bad signature")

// checkSignature verifies tok's signature with jwk and decodes its claims
// into std and priv: errBadSignature when jwk did not sign it (only that
// makes the caller look for a replaced key, a refetch), the refusal of
// verificationKey when jwk does not fit alg, ReasonMalformed when the
// token cannot be verified at all (a crit header, RFC 7515 §4.1.11), and
// ReasonInvalidClaims when jwk signed it but its claims do not decode
// into their types (RFC 7519 §4.1: an exp that is no NumericDate, an aud
// that is neither a string nor strings, a client_id that is no string):
// the key set holds the right key, so no refetch would change the answer.
// That refusal carries no claims (Refusal.Verified): none could be read.
func checkSignature(tok *jwt.JSONWebToken, jwk jose.JSONWebKey, alg string, std *jwt.Claims, priv *AccessClaims) error {
	pub, err := verificationKey(jwk, alg)
	if err != nil {
		return err
	}
	// The signature first, alone: go-jose's Claims decodes only after it
	// verified, and answers ErrCryptoFailure when it does not.
	if err := tok.Claims(pub); err != nil {
		if errors.Is(err, jose.ErrCryptoFailure) {
			return errBadSignature
		}
		return refuse(ReasonMalformed, nil, "token cannot be verified")
	}
	// The payload verified just now: decoding it is no longer unsafe.
	if err := tok.UnsafeClaimsWithoutVerification(std, priv); err != nil {
		return refuse(ReasonInvalidClaims, nil, "a claim is not of its type")
	}
	return nil
}

// replacedKey is the key the set holds under kid now when it is not used,
// the key a token's signature failed with: the key set in use if another
// request's fetch already brought it, else a refetch — the same forced
// refetch as an unknown kid's, at most once per MinRefreshInterval and
// never just after a failed fetch, so tokens with a known kid and a bad
// signature cannot hammer the auth-server either. ok is false when the
// kid names the same key as before (the signature is bad) or no fetch is
// allowed now. Without it a kid reused for new key material would verify
// with the old material until the routine refresh (KeysMaxAge): the new
// key's tokens refused and the replaced key's accepted for minutes.
//
// err is ErrKeysUnavailable (503, Retry-After) when the refetch is not
// answered within UnknownKeyWait: whether the kid names new key material
// is not known yet, so the token is neither verified nor called bad — a
// client told "bad signature" (401) of a valid token would authorize
// again for nothing. A refetch that fails is ok false, as before: the
// signature is bad with every key there is to try.
func (v *Verifier) replacedKey(ctx context.Context, kid string, used jose.JSONWebKey) (KeySet, jose.JSONWebKey, bool, error) {
	other := func(ks KeySet) (jose.JSONWebKey, bool) {
		for _, k := range ks.Keys.Key(kid) {
			if keyIdentity(k) != keyIdentity(used) {
				return k, true
			}
		}
		return jose.JSONWebKey{}, false
	}
	now := v.o.Now()
	v.mu.RLock()
	ks, lastForced := v.keys, v.lastForced
	v.mu.RUnlock()
	if k, ok := other(ks); ok {
		return ks, k, true, nil
	}
	if v.recentFailure(now) != nil || (!lastForced.IsZero() && now.Sub(lastForced) < v.o.MinRefreshInterval) {
		return KeySet{}, jose.JSONWebKey{}, false, nil
	}
	fresh, err := v.refresh(ctx, true)
	if errors.Is(err, errFetchRunning) {
		return KeySet{}, jose.JSONWebKey{}, false, fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
	}
	if err != nil {
		return KeySet{}, jose.JSONWebKey{}, false, nil
	}
	if k, ok := other(fresh); ok {
		return fresh, k, true, nil
	}
	return KeySet{}, jose.JSONWebKey{}, false, nil
}

// verificationKey is the public key of jwk if it fits alg: RS256 takes an
// RSA key, ES256 a P-256 key, and a key published for one algorithm ("alg"
// in the JWK) is never used with another (RFC 7517 §4.4).
func verificationKey(jwk jose.JSONWebKey, alg string) (any, error) {
	if jwk.Algorithm != "" && jwk.Algorithm != alg {
		return nil, refuse(ReasonUnknownKey, nil, "kid %q is published for %s, not %s", jwk.KeyID, jwk.Algorithm, alg)
	}
	switch k := jwk.Key.(type) {
	case *rsa.PublicKey:
		if alg == string(jose.RS256) {
			return k, nil
		}
	case *ecdsa.PublicKey:
		if alg == string(jose.ES256) && k.Curve == elliptic.P256() {
			return k, nil
		}
	}
	return nil, refuse(ReasonUnknownKey, nil, "kid %q is not a key for %s", jwk.KeyID, alg)
}

// key returns the key set and the key for kid. A known kid is answered
// from the cached set however old it is (a stale set is refreshed in the
// background, see source.go), so an auth-server outage never stops
// verification; an unknown kid triggers a refresh at most once per
// MinRefreshInterval, so tokens with made-up kids cannot hammer the
// auth-server. Whenever the last fetch failed less than MinRefreshInterval
// ago, a request that would fetch (before the first set, or with an
// unknown kid) is answered with that error (ErrKeysUnavailable) instead
// of fetching again; a known kid still verifies with the stale set.
// Fetches never run with the caller's context, and an unknown kid waits
// for its fetch at most UnknownKeyWait (then ErrKeysUnavailable).
func (v *Verifier) key(ctx context.Context, kid string) (KeySet, jose.JSONWebKey, error) {
	now := v.o.Now()
	v.mu.RLock()
	ks, fetched, ever, lastForced := v.keys, v.fetchedAt, v.everFetched, v.lastForced
	v.mu.RUnlock()

	forced := false
	if ever {
		if k := ks.Keys.Key(kid); len(k) > 0 {
			if now.Sub(fetched) > v.o.KeysMaxAge {
				v.refreshInBackground()
			}
			return ks, k[0], nil
		}
		if lastErr := v.recentFailure(now); lastErr != nil {
			// The last fetch (a background refresh or another refetch)
			// failed just now: the kid may be a new key the verifier
			// could not learn, so answer as for an unreachable
			// auth-server instead of asking it again.
			return ks, jose.JSONWebKey{}, fmt.Errorf("%w: %v", ErrKeysUnavailable, lastErr)
		}
		if !lastForced.IsZero() && now.Sub(lastForced) < v.o.MinRefreshInterval {
			return ks, jose.JSONWebKey{}, refuse(ReasonUnknownKey, nil, "unknown kid %q", kid)
		}
		forced = true
	} else if lastErr := v.recentFailure(now); lastErr != nil {
		// No set yet and the last fetch failed just now: answer with its
		// error instead of asking the auth-server again for each request.
		return ks, jose.JSONWebKey{}, fmt.Errorf("%w: %v", ErrKeysUnavailable, lastErr)
	}
	fresh, err := v.refresh(ctx, forced)
	if err != nil {
		if ever {
			// Keep serving with the keys we have; an outage of the
			// auth-server must not log everyone out.
			if k := ks.Keys.Key(kid); len(k) > 0 {
				return ks, k[0], nil
			}
		}
		return ks, jose.JSONWebKey{}, fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
	}
	if k := fresh.Keys.Key(kid); len(k) > 0 {
		return fresh, k[0], nil
	}
	return fresh, jose.JSONWebKey{}, refuse(ReasonUnknownKey, nil, "unknown kid %q", kid)
}

// refresh fetches the key set (once for all concurrent callers, on a
// context of its own: see fetch in source.go) and waits for it at most
// until ctx ends — and, for a forced fetch (a request's, with a key set
// cached), at most UnknownKeyWait: the fetch goes on without the caller.
func (v *Verifier) refresh(ctx context.Context, forced bool) (KeySet, error) {
	var bound <-chan time.Time
	if forced {
		t := time.NewTimer(UnknownKeyWait)
		defer t.Stop()
		bound = t.C
	}
	select {
	case res := <-v.sf.DoChan("keys", func() (any, error) { return v.fetch(forced) }):
		if res.Err != nil {
			return KeySet{}, res.Err
		}
		return res.Val.(KeySet), nil
	case <-ctx.Done():
		return KeySet{}, ctx.Err()
	case <-bound:
		return KeySet{}, errFetchRunning
	}
}

// errFetchRunning is a forced fetch not done within UnknownKeyWait.
var errFetchRunning = fmt.Errorf("key-set fetch not answered within %s", UnknownKeyWait)

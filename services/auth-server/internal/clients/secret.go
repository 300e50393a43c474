package clients

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/ory/fosite"
	"golang.org/x/sync/singleflight"

	"github.com/tollgate/tollgate/services/platform/tokens"
)

// HMACPrefix starts a client secret hash of the keyed fast kind:
//
//	$hmac-sha256$<base64url(HMAC-SHA256(key, secret)), no padding>
//
// It is for secrets the server generates (dev-init, dynamic registration):
// 256 random bits cannot be guessed, so a slow hash adds nothing, and the
// server key means a leaked registry or Redis dump cannot be checked
// offline at all. Operator-supplied secrets, which may be weak, keep bcrypt.
const HMACPrefix = "$hmac-sha256$"

// MinSecretKeyBytes is the shortest accepted CLIENT_SECRET_HMAC_KEY.
const MinSecretKeyBytes = 32

// Errors of Compare. fosite wraps each in invalid_client; the OAuth layer
// tells them apart with errors.Is to answer 429/503 instead of 401 where a
// check was refused rather than failed.
var (
	// ErrSecretMismatch: the secret does not match the stored hash.
	ErrSecretMismatch = errors.New("client secret does not match")
	// ErrSlowCheckBusy: every bcrypt slot is taken; the secret was not
	// checked (answer 503 with Retry-After, never "valid").
	ErrSlowCheckBusy = errors.New("too many slow client secret checks in flight")
	// ErrSlowCheckRefused: the attempt is in failure back-off (see
	// Attempt.BackedOff) and the secret is not a recently verified one; it
	// was not checked.
	ErrSlowCheckRefused = errors.New("client authentication is in failure back-off")
	// ErrFailureBudgetUnavailable: the attempt's failure budget could not
	// be read or spent (Attempt.BackedOff, Attempt.Reserve: Redis did not
	// answer, or the request ended); the secret was not checked (answer
	// 503 with Retry-After, never "valid").
	ErrFailureBudgetUnavailable = errors.New("client authentication failure budget unavailable")
	// ErrUnknownHashFormat: the stored hash is neither bcrypt nor hmac-sha256.
	ErrUnknownHashFormat = errors.New("unknown client secret hash format")
)

// SecretHasherOptions configure a SecretHasher.
type SecretHasherOptions struct {
	// Key is the HMAC key of new hashes (at least MinSecretKeyBytes);
	// Rotated keys still verify hashes made with them. Without a key, only
	// bcrypt hashes verify and Hash fails.
	Key     []byte
	Rotated [][]byte
	// SlowChecks bounds bcrypt comparisons in flight (default
	// DefaultSlowChecks: half of GOMAXPROCS, at least one); further ones
	// fail at once with ErrSlowCheckBusy.
	SlowChecks int
	// CacheSize (default 1024 entries) and CacheTTL (default 10 minutes,
	// at least MinCacheTTL) bound the verified-secret cache of bcrypt
	// checks. CacheSize < 0 disables it.
	CacheSize int
	CacheTTL  time.Duration
}

// MaxBcryptSecretBytes is the longest secret a bcrypt hash verifies:
// bcrypt reads no more, so a longer one is refused as a wrong secret (keep
// a long secret as an HMACPrefix hash instead).
const MaxBcryptSecretBytes = 72

// MinCacheTTL is the shortest verified-secret cache TTL
// (SecretHasherOptions.CacheTTL, CLIENT_SECRET_CACHE_TTL).
const MinCacheTTL = time.Second

// SecretHasher is the auth-server's fosite.Hasher for client secrets:
// HMAC-SHA256 hashes verify in microseconds; bcrypt hashes (operator
// secrets, and every hash written before HMAC hashes existed) go through a
// verified-secret cache and a bounded number of concurrent bcrypt checks.
// Safe for concurrent use.
type SecretHasher struct {
	keys [][]byte // keys[0] hashes; all verify
	// macs[i] pools HMAC-SHA256 states keyed with keys[i], Reset to the
	// keyed state before use: hmac.New allocates and hashes the key's two
	// pads (two SHA-256 blocks) each time, a third of a check's hashing
	// (docs/benchmarks/auth-server-history.md, session 40 "perf12").
	macs  []sync.Pool
	slots chan struct{}
	stats slowCheckCounters
	cache *expirable.LRU[[sha256.Size]byte, struct{}]
	// cacheKey keys the cache's digests with a per-process random key, so
	// the entries in memory are not unkeyed digests of secrets.
	cacheKey []byte
	// flights lets identical bcrypt checks in flight — one (client id,
	// stored hash, secret, client address), keyed by its at-address cache
	// digest — share one check and one failure token (sharedCheck).
	flights singleflight.Group
}

var _ fosite.Hasher = (*SecretHasher)(nil)

// NewSecretHasher returns a hasher. It fails on a key shorter than
// MinSecretKeyBytes.
func NewSecretHasher(o SecretHasherOptions) (*SecretHasher, error) {
	h := &SecretHasher{cacheKey: make([]byte, 32)}
	for _, k := range append([][]byte{o.Key}, o.Rotated...) {
		if len(k) == 0 {
			continue
		}
		if len(k) < MinSecretKeyBytes {
			return nil, errors.New("client secret HMAC keys must be at least 32 bytes")
		}
		h.keys = append(h.keys, k)
	}
	if len(o.Key) == 0 && len(o.Rotated) > 0 {
		return nil, errors.New("rotated client secret HMAC keys need a current key")
	}
	h.macs = make([]sync.Pool, len(h.keys))
	for i, k := range h.keys {
		k := bytes.Clone(k)
		h.macs[i].New = func() any { return &pooledMAC{h: hmac.New(sha256.New, k)} }
	}
	if o.SlowChecks <= 0 {
		o.SlowChecks = DefaultSlowChecks()
	}
	h.slots = make(chan struct{}, o.SlowChecks)
	if o.CacheSize == 0 {
		o.CacheSize = 1024
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = 10 * time.Minute
	}
	if o.CacheSize >= 0 && o.CacheTTL < MinCacheTTL {
		// The cache's cleanup ticks every TTL/100 (hashicorp expirable).
		return nil, fmt.Errorf("client secret cache TTL %s is under %s", o.CacheTTL, MinCacheTTL)
	}
	if o.CacheSize > 0 {
		h.cache = expirable.NewLRU[[sha256.Size]byte, struct{}](o.CacheSize, nil, o.CacheTTL)
	}
	if _, err := rand.Read(h.cacheKey); err != nil {
		return nil, err
	}
	return h, nil
}

// Hash returns the keyed fast hash of a server-generated secret
// (HMACPrefix form). Never use it for a secret a person chose.
func (h *SecretHasher) Hash(_ context.Context, secret []byte) ([]byte, error) {
	if len(h.keys) == 0 {
		return nil, errors.New("no client secret HMAC key is configured")
	}
	return h.hmacHash(nil, 0, secret), nil
}

// hmacLen is the length of a hash in HMACPrefix form.
const hmacLen = len(HMACPrefix) + (sha256.Size*8+5)/6

// hmacHash appends to dst the HMACPrefix form of secret's HMAC-SHA256
// under keys[i].
func (h *SecretHasher) hmacHash(dst []byte, i int, secret []byte) []byte {
	m := h.macs[i].Get().(*pooledMAC)
	m.h.Reset()
	m.h.Write(secret)
	sum := m.h.Sum(m.sum[:0])
	dst = append(dst, HMACPrefix...)
	dst = base64.RawURLEncoding.AppendEncode(dst, sum)
	h.macs[i].Put(m)
	return dst
}

// pooledMAC is a pooled HMAC state and the buffer its sums go to (a
// buffer passed through the hash.Hash interface would be allocated per
// call).
type pooledMAC struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

// Compare checks secret against a stored hash. It returns nil on a match
// and otherwise one of ErrSecretMismatch, ErrSlowCheckBusy,
// ErrSlowCheckRefused, ErrFailureBudgetUnavailable or
// ErrUnknownHashFormat. The Attempt in ctx (if any) records the outcome. A
// failed or refused check is never cached.
//
// When the secret matches an HMAC hash made with a rotated key, the
// Attempt in ctx also records the secret's hash under the current key (see
// Attempt.Rehash): computed by the comparison itself, which tries the
// current key first, so a hash made with the current key costs one HMAC
// and nothing more.
func (h *SecretHasher) Compare(ctx context.Context, stored, secret []byte) error {
	a := attemptFrom(ctx)
	rehash, paid, err := h.compare(a, stored, secret)
	a.record(err, stored, rehash)
	switch {
	case a == nil:
	case errors.Is(err, ErrSecretMismatch) && a.Failed != nil && !paid:
		a.Failed()
	case errors.Is(err, ErrSlowCheckBusy) && a.Busy != nil:
		a.Busy()
	}
	return err
}

// compare is Compare's check. rehash is set when the secret matched an
// HMAC hash under a rotated key: its hash under the current key (keys[0]),
// the first one tried. paid: the check's failure token was taken before it
// ran (Attempt.Reserve), by this attempt or by the identical check it
// shared, so a wrong secret spends nothing more (Failed is not called).
func (h *SecretHasher) compare(a *Attempt, stored, secret []byte) (rehash []byte, paid bool, err error) {
	switch {
	case bytes.HasPrefix(stored, []byte(HMACPrefix)):
		// On the stack: a check allocates nothing unless it verifies
		// under a rotated key (rehash).
		var current, other [hmacLen]byte
		for i := range h.keys {
			mac := other[:0]
			if i == 0 {
				mac = current[:0]
			}
			mac = h.hmacHash(mac, i, secret)
			if hmac.Equal(stored, mac) {
				if i == 0 {
					return nil, false, nil
				}
				return bytes.Clone(current[:]), false, nil
			}
		}
		return nil, false, ErrSecretMismatch
	case isBcrypt(stored):
		if len(secret) > MaxBcryptSecretBytes {
			// bcrypt reads only the first 72 bytes, and x/crypto's
			// CompareHashAndPassword does not refuse more (its
			// GenerateFromPassword does): a hash of a long secret's first 72
			// bytes, as truncating tools make it, would verify every secret
			// sharing them (brk42). A wrong secret, spent as one.
			return nil, false, ErrSecretMismatch
		}
		// Two cache entries per verified secret: one for the client
		// address that proved it, one for any address. A secret proved
		// from this address is accepted whatever the back-off; one proved
		// only elsewhere is accepted here only while this (client,
		// address) is not backed off — otherwise a brute force from a
		// backed-off address would learn a right guess (accepted) from the
		// wrong ones (refused) at the address rate limit's pace, not the
		// back-off's.
		// Each key is an HMAC: the second computed only when the cache is
		// on and the first is not in it.
		var c bcryptCheck
		c.here = h.verifiedKey(a, stored, secret, true)
		if h.cache != nil {
			if h.cache.Contains(c.here) {
				return nil, false, nil
			}
			c.anywhere = h.verifiedKey(a, stored, secret, false)
			if h.cache.Contains(c.anywhere) {
				if err := a.backedOff(); err != nil {
					return nil, false, err
				}
				return nil, false, nil
			}
		}
		paid, err := h.sharedCheck(a, stored, secret, &c)
		return nil, paid, err
	}
	return nil, false, ErrUnknownHashFormat
}

// bcryptCheck is one bcrypt check's cache keys (verifiedKey): here, of
// the secret proved from the attempt's address (also the key of the
// check's flight), and anywhere (zero without a cache).
type bcryptCheck struct {
	here, anywhere [sha256.Size]byte
}

// checkResult is what a bcrypt check (slowCheck) came to.
type checkResult struct {
	err error
	// checked: the secret was compared (err is nil or ErrSecretMismatch);
	// otherwise it was refused before (back-off, budget unavailable, every
	// slot taken).
	checked bool
	// paid: the check took its failure token before it ran (Reserve).
	paid bool
	// panicked: the value the check panicked with, which sharedCheck
	// raises again as it is (nil: it did not panic; recover never
	// returns nil for a panic, panic(nil) included, since Go 1.21).
	panicked any
}

// sharedCheck runs the bcrypt check of secret for a, or shares the one in
// flight for the same (client id, stored hash, secret, client address):
// requests that send one secret at once — a client's concurrent token
// requests while its secret is not cached — then run one check and take
// one failure token, not one each: with a token each, more of them than
// the failure budget from one address were refused 429 until a check was
// cached (session 42's review). Sharing gives no guesser more: the
// requests sharing a check carry the same secret, and any other secret
// (or the same one from another address, whose back-off is another) is
// another flight, which takes its own token before its check.
//
// A request that shares a check answers with its outcome: verified, or
// wrong (paid: its token is the one the check took). When the check it
// shared was refused before it ran (back-off, budget unavailable, every
// slot taken), it was not checked, and its own attempt decides: it runs
// its own check (slowCheck), which asks its own hooks for its own token
// and records its own refusal.
//
// The flight is joined with DoChan, not Do: a request has joined it when
// DoChan returns, which slowCheckCounters.joined counts. DoChan runs the
// check in a goroutine of its own and makes a panic there unrecoverable, so
// the check's panic value is carried back and raised, as it is, in each
// request's goroutine, as Do would (net/http then recovers it for that
// request; http.ErrAbortHandler keeps its meaning). The stack net/http logs
// is then the request's, from this re-raise down: the check's own frames
// are not in it.
func (h *SecretHasher) sharedCheck(a *Attempt, stored, secret []byte, c *bcryptCheck) (paid bool, err error) {
	led := false
	flight := h.flights.DoChan(string(c.here[:]), func() (v any, _ error) {
		led = true
		defer func() {
			if p := recover(); p != nil {
				v = checkResult{panicked: p}
			}
		}()
		return h.slowCheck(a, stored, secret, c), nil
	})
	h.stats.joined.Add(1)
	res := <-flight
	h.stats.joined.Add(-1)
	r := res.Val.(checkResult)
	if r.panicked != nil {
		panic(r.panicked)
	}
	if !led {
		if !r.checked {
			r = h.slowCheck(a, stored, secret, c)
		} else {
			h.stats.shared.Add(1)
		}
	}
	return r.paid, r.err
}

// slowCheck takes the check's failure token (Attempt.Reserve) and a slot,
// and runs the bcrypt comparison; a verified secret gives the token back
// (Attempt.Refund) and is cached.
func (h *SecretHasher) slowCheck(a *Attempt, stored, secret []byte, c *bcryptCheck) checkResult {
	// The check's failure token is taken before it runs (reserve):
	// checks that only asked whether a token was left would all run
	// while one is, each concurrent guess checked for it (brk42).
	paid, err := a.reserve()
	if err != nil {
		return checkResult{err: err}
	}
	select {
	case h.slots <- struct{}{}:
	default:
		h.stats.busy.Add(1)
		return checkResult{err: ErrSlowCheckBusy, paid: paid}
	}
	err = h.slowCompare(stored, secret)
	<-h.slots
	if err != nil {
		return checkResult{err: ErrSecretMismatch, checked: true, paid: paid}
	}
	if paid && a.Refund != nil {
		a.Refund()
	}
	if h.cache != nil {
		h.cache.Add(c.anywhere, struct{}{})
		h.cache.Add(c.here, struct{}{})
	}
	return checkResult{checked: true}
}

// verifiedKey is the cache key of a successful bcrypt check: a keyed
// digest of (client id, stored hash, secret) and, when atAddress, the
// client address, each length-prefixed (the address part is empty
// otherwise, so the two kinds never collide: an address is never empty
// when it is used). A new secret, a changed stored hash or another client
// never finds an old entry.
func (h *SecretHasher) verifiedKey(a *Attempt, stored, secret []byte, atAddress bool) [sha256.Size]byte {
	m := hmac.New(sha256.New, h.cacheKey)
	id, addr := "", ""
	if a != nil {
		id = a.ClientID
		if atAddress {
			addr = "@" + a.ClientAddress
		}
	}
	for _, part := range [][]byte{[]byte(id), stored, secret, []byte(addr)} {
		m.Write(binary.BigEndian.AppendUint64(nil, uint64(len(part))))
		m.Write(part)
	}
	var out [sha256.Size]byte
	copy(out[:], m.Sum(nil))
	return out
}

// IsHMACHash reports whether h is a keyed fast hash (HMACPrefix form).
func IsHMACHash(h []byte) bool {
	return bytes.HasPrefix(h, []byte(HMACPrefix)) &&
		base64.RawURLEncoding.DecodedLen(len(h)-len(HMACPrefix)) == sha256.Size
}

// DevSecretKeys are the development HMAC keys of client secrets, derived
// from the RSA keys of the loaded signing key ring (DevKeys), so `make dev`
// and dev-init need no extra secret: the active key's derivation hashes,
// every other key's still verifies (a rotated signing key keeps dev-init's
// hashes working until the key it used is deleted). Production sets
// CLIENT_SECRET_HMAC_KEY instead.
func DevSecretKeys(ring *tokens.KeyRing) (primary []byte, others [][]byte, err error) {
	return DevKeys(ring.RSAKeys(), ring.ActiveKeyID(), "tollgate auth-server client secret hmac (development)")
}

// DevKeys derives development HMAC keys from RSA signing keys by kid
// (tokens.KeyRing.RSAKeys): for each key, 32 bytes of HKDF-SHA256 (RFC
// 5869) of its PKCS #8 DER encoding, no salt, with info naming what the
// keys are for — one info string per use, so that no two uses share a
// key. primary is the key of active; others are those of every other
// kid, in byte order of the kids. An error when active is not among keys
// or a key cannot be encoded. The derived keys are as secret as the
// signing keys, and change with them: production configures its HMAC keys
// instead (TOKEN_HMAC_SECRET, CLIENT_SECRET_HMAC_KEY).
func DevKeys(keys map[string]*rsa.PrivateKey, active, info string) (primary []byte, others [][]byte, err error) {
	if _, ok := keys[active]; !ok {
		return nil, nil, fmt.Errorf("signing key %q is not among the RSA signing keys", active)
	}
	for _, kid := range slices.Sorted(maps.Keys(keys)) {
		der, err := x509.MarshalPKCS8PrivateKey(keys[kid])
		if err != nil {
			return nil, nil, fmt.Errorf("signing key %q: %w", kid, err)
		}
		key, err := hkdf.Key(sha256.New, der, nil, info, 32)
		if err != nil {
			return nil, nil, err
		}
		if kid == active {
			primary = key
		} else {
			others = append(others, key)
		}
	}
	return primary, others, nil
}

// Outcome is what the hasher did with an authentication attempt.
type Outcome int

const (
	OutcomeNone        Outcome = iota // no secret was compared (public client, unknown client, …)
	OutcomeVerified                   // the secret matched
	OutcomeMismatch                   // the secret was checked and is wrong
	OutcomeBusy                       // not checked: every slow-check slot was taken
	OutcomeBackoff                    // not checked: failure back-off and not a verified secret
	OutcomeBadFormat                  // the stored hash has an unknown format
	OutcomeUnavailable                // not checked: the failure budget could not be read
)

// Attempt is the state of one request's client authentication, shared
// between the HTTP layer (which sets it up before fosite runs) and the
// hasher (which records the outcome and calls the hooks). The hooks run on
// the request's goroutine, at most once each per Compare — except that a
// request that takes the outcome of an identical request's bcrypt check
// (same client id, stored hash, secret and client address;
// SecretHasher.sharedCheck) calls none of its own hooks for that check:
// its Reserve and Refund were those of the request that ran it.
type Attempt struct {
	// ClientID is the URL-decoded client id the request presents (the one
	// fosite looks up); part of the verified-secret cache key.
	ClientID string
	// ClientAddress is the request's trusted client address (the one its
	// failure back-off is keyed on); part of the verified-secret cache key
	// of secrets proved from it.
	ClientAddress string
	// BackedOff is asked before accepting a cached bcrypt secret that was
	// proved from another client address only, and, without Reserve,
	// before a bcrypt check of a secret that is not in the verified-secret
	// cache. It returns nil to go on, ErrSlowCheckRefused when the
	// (client, address) is in failure back-off, or
	// ErrFailureBudgetUnavailable when the budget could not be read; either
	// refuses the secret unchecked (Compare returns it; any other error is
	// taken as ErrFailureBudgetUnavailable). Fast (HMAC) hashes are always
	// checked and a bcrypt secret proved from this address within the
	// cache's TTL is always accepted, so a correct secret of those kinds is
	// never refused by back-off.
	BackedOff func() error
	// Reserve is asked before a bcrypt check of a secret that is not in
	// the verified-secret cache, in place of BackedOff: it takes the
	// check's failure token up front and returns nil, or refuses the check
	// as BackedOff does: ErrSlowCheckRefused (no token left) or
	// ErrFailureBudgetUnavailable (the budget could not be spent — Redis
	// down, or the request ended: the check is not run without its
	// token). A check that verifies the secret gives the token back
	// (Refund); a wrong secret, or a check refused because every slot was
	// taken (Busy), keeps it spent, and Failed is not called for it.
	// Without Reserve, BackedOff is asked and Failed spends after a wrong
	// secret, which lets every guess in flight while one token is left be
	// checked.
	Reserve func() error
	// Refund gives back the token Reserve took, when the check verified
	// the secret.
	Refund func()
	// Failed is called after a secret was checked and found wrong, unless
	// its check took its token up front (Reserve).
	Failed func()
	// Busy is called when a bcrypt check found every slot taken (after
	// Reserve, whose token stays spent).
	Busy func()

	mu      sync.Mutex
	outcome Outcome
	// stored and rehash: the hash the last Compare verified under a
	// rotated HMAC key, and the secret's hash under the current key.
	stored, rehash []byte
}

func (o Outcome) String() string {
	switch o {
	case OutcomeVerified:
		return "verified"
	case OutcomeMismatch:
		return "wrong_secret"
	case OutcomeBusy:
		return "busy"
	case OutcomeBackoff:
		return "backoff"
	case OutcomeBadFormat:
		return "bad_hash_format"
	case OutcomeUnavailable:
		return "unavailable"
	}
	return "none"
}

// Outcome is the last recorded outcome.
func (a *Attempt) Outcome() Outcome {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.outcome
}

// Rehash is the replacement of stored, a client's stored secret hash, when
// the last Compare verified the request's secret against it under a
// rotated HMAC key (SecretHasherOptions.Rotated): the secret's hash under
// the current key, in HMACPrefix form, which that Compare computed. It is
// nil when the last Compare did not verify the secret, verified it under
// the current key or against a bcrypt hash (bcrypt hashes are never
// rewritten), or compared another stored hash than stored.
func (a *Attempt) Rehash(stored []byte) []byte {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rehash == nil || !bytes.Equal(a.stored, stored) {
		return nil
	}
	return a.rehash
}

// backedOff is what a.BackedOff says (refusal); nil without a hook.
func (a *Attempt) backedOff() error {
	if a == nil || a.BackedOff == nil {
		return nil
	}
	return refusal(a.BackedOff())
}

// reserve takes a check's failure token (Reserve: paid), or without that
// hook asks BackedOff; an error refuses the check.
func (a *Attempt) reserve() (paid bool, err error) {
	if a == nil {
		return false, nil
	}
	if a.Reserve == nil {
		return false, a.backedOff()
	}
	if err := refusal(a.Reserve()); err != nil {
		return false, err
	}
	return true, nil
}

// refusal is err as a refusal of Compare: nil, ErrSlowCheckRefused, or
// ErrFailureBudgetUnavailable for any other error.
func refusal(err error) error {
	if err == nil || errors.Is(err, ErrSlowCheckRefused) || errors.Is(err, ErrFailureBudgetUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrFailureBudgetUnavailable, err)
}

func (a *Attempt) record(err error, stored, rehash []byte) {
	if a == nil {
		return
	}
	if err != nil || rehash == nil {
		stored, rehash = nil, nil
	}
	o := OutcomeVerified
	switch {
	case errors.Is(err, ErrSecretMismatch):
		o = OutcomeMismatch
	case errors.Is(err, ErrSlowCheckBusy):
		o = OutcomeBusy
	case errors.Is(err, ErrSlowCheckRefused):
		o = OutcomeBackoff
	case errors.Is(err, ErrFailureBudgetUnavailable):
		o = OutcomeUnavailable
	case err != nil:
		o = OutcomeBadFormat
	}
	a.mu.Lock()
	a.outcome, a.stored, a.rehash = o, stored, rehash
	a.mu.Unlock()
}

type attemptKey struct{}

// WithAttempt returns ctx carrying a.
func WithAttempt(ctx context.Context, a *Attempt) context.Context {
	return context.WithValue(ctx, attemptKey{}, a)
}

func attemptFrom(ctx context.Context) *Attempt {
	a, _ := ctx.Value(attemptKey{}).(*Attempt)
	return a
}

// CanHash reports whether a key is configured (Hash works, HMAC hashes verify).
func (h *SecretHasher) CanHash() bool { return len(h.keys) > 0 }

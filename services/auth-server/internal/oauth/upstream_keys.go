package oauth

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// upstreamKeyLifetime is how long a fetched JWKS of the provider is
// trusted: after it, the next ID token fetches the key set again, so a key
// the provider removed stops verifying within it.
const upstreamKeyLifetime = time.Hour

// upstreamKeyRefetch is how often at most a signature failure under a kid
// the cached key set knows fetches the key set again (the provider may
// have put a new key under an old kid).
const upstreamKeyRefetch = 30 * time.Second

// upstreamKeys verifies the provider's ID token signatures (OpenID Connect
// Core §10.1.1) with zitadel/oidc's remote key set, which fetches the JWKS
// again only for a kid it does not know: a new key under a kid it knows
// failed every sign-in until a restart, and a key the provider removed
// stayed trusted for good. Here the key set is fetched anew once it is
// upstreamKeyLifetime old, and a signature failure under a known kid
// fetches it again and retries, at most once per upstreamKeyRefetch (an
// ID token signed by a key that is not the provider's fetches nothing
// more). A fetch that fails (the JWKS endpoint down, or answering what
// is not a key set) keeps the key set it was to replace for another
// upstreamKeyRefetch: an outage of the provider's key endpoint at the
// hour does not fail sign-ins its previous keys verify.
type upstreamKeys struct {
	client            *http.Client
	url               string
	lifetime, refetch time.Duration

	mu      sync.Mutex
	set     oidc.KeySet // nil: none yet
	prev    oidc.KeySet // the set set replaced, until set has fetched
	born    time.Time   // when set was made
	retried time.Time   // the last refetch after a signature failure
}

// signatureMismatch reports whether err, of zitadel/oidc's remote key
// set, is a key of the token's kid (or the only one without) that did not
// verify the signature: go-jose's ErrCryptoFailure, which the key set
// wraps (%w) whether the key was cached or just fetched. A key set that
// has no key for the token (oidc.ErrKeyNone, oidc.ErrKeyMultiple) or
// could not fetch one is not.
func signatureMismatch(err error) bool {
	return errors.Is(err, jose.ErrCryptoFailure)
}

// keysUnfetched reports whether err, of zitadel/oidc's remote key set's
// VerifySignature, is its failure to fetch the JWKS. zitadel/oidc v3
// exports no error for it (its text only, "unable to fetch key for
// signature validation: …", wrapping what the HTTP helper returned — a
// status or a body it could not decode, as text too — or the request's
// end); the key set's other failures are typed: no key, or more than one,
// for the token (oidc.ErrKeyNone, oidc.ErrKeyMultiple, which zitadel/oidc
// exports) and a signature go-jose refused (its errors, which the key set
// wraps: ErrCryptoFailure, or a key or algorithm it does not take). Any
// error that is none of those is the fetch's.
func keysUnfetched(err error) bool {
	for _, typed := range []error{oidc.ErrKeyNone, oidc.ErrKeyMultiple, jose.ErrCryptoFailure,
		jose.ErrUnsupportedKeyType, jose.ErrUnsupportedAlgorithm, jose.ErrUnsupportedCriticalHeader} {
		if errors.Is(err, typed) {
			return false
		}
	}
	return err != nil
}

func (u *Upstream) newKeys(client *http.Client, url string) *upstreamKeys {
	return &upstreamKeys{client: client, url: url, lifetime: u.keyLifetime, refetch: u.keyRefetch}
}

// fresh returns a key set that fetches the JWKS on its first use and
// records it as the current one; k.mu is held.
func (k *upstreamKeys) fresh(now time.Time) oidc.KeySet {
	if k.set != nil {
		k.prev = k.set
	}
	k.set, k.born = rp.NewRemoteKeySet(k.client, k.url), now
	return k.set
}

// verify verifies with set. When set cannot fetch the JWKS and was to
// replace a key set, it verifies with the replaced one instead, which
// stays the current set for another k.refetch; when another request has
// already fallen back (or replaced set) meanwhile, with the current set.
// A set that has verified once has fetched: the replaced one is dropped.
func (k *upstreamKeys) verify(ctx context.Context, set oidc.KeySet, jws *jose.JSONWebSignature) ([]byte, error) {
	payload, err := set.VerifySignature(ctx, jws)
	if err == nil || !keysUnfetched(err) {
		if err == nil {
			k.mu.Lock()
			if k.set == set {
				k.prev = nil
			}
			k.mu.Unlock()
		}
		return payload, err
	}
	var fallback oidc.KeySet
	k.mu.Lock()
	switch {
	case k.set != set:
		fallback = k.set
	case k.prev != nil:
		fallback = k.prev
		k.set, k.prev = k.prev, nil
		k.born = time.Now().Add(k.refetch - k.lifetime) // fetch again in k.refetch
	}
	k.mu.Unlock()
	if fallback == nil {
		return nil, err
	}
	return fallback.VerifySignature(ctx, jws)
}

func (k *upstreamKeys) current() oidc.KeySet {
	k.mu.Lock()
	defer k.mu.Unlock()
	if now := time.Now(); k.set == nil || now.Sub(k.born) >= k.lifetime {
		return k.fresh(now)
	}
	return k.set
}

// keysFetchError is upstreamKeys' error when the provider's JWKS could not
// be fetched (keysUnfetched): the JWKS endpoint's failure, not the token
// endpoint's, which the code exchange's error classification must tell
// apart (idTokenKeysError, libraryStatus). zitadel/oidc marks it with
// text only ("oidc: failed to get keys: …"); upstreamKeys is the key set
// it calls, so the mark is ours, a type. Its text is the library's.
type keysFetchError struct{ err error }

func (e *keysFetchError) Error() string { return e.err.Error() }
func (e *keysFetchError) Unwrap() error { return e.err }

// VerifySignature implements oidc.KeySet. A failure to fetch the JWKS is a
// *keysFetchError.
func (k *upstreamKeys) VerifySignature(ctx context.Context, jws *jose.JSONWebSignature) ([]byte, error) {
	payload, err := k.verifySignature(ctx, jws)
	if err != nil && keysUnfetched(err) {
		return nil, &keysFetchError{err}
	}
	return payload, err
}

func (k *upstreamKeys) verifySignature(ctx context.Context, jws *jose.JSONWebSignature) ([]byte, error) {
	set := k.current()
	payload, err := k.verify(ctx, set, jws)
	if err == nil || !signatureMismatch(err) {
		return payload, err
	}
	// A key of the token's kid (or the only one without) did not verify.
	k.mu.Lock()
	now := time.Now()
	switch {
	case k.set != set:
		set = k.set // replaced meanwhile: try the newer set
	case !k.retried.IsZero() && now.Sub(k.retried) < k.refetch:
		k.mu.Unlock()
		return nil, err
	default:
		k.retried = now
		set = k.fresh(now)
	}
	k.mu.Unlock()
	return k.verify(ctx, set, jws)
}

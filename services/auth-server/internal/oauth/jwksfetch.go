package oauth

// Why a copy and not fosite's own fetcher (NewDefaultJWKSFetcherStrategy
// with JWKSFetcherWithHTTPClient, fosite v0.49.0): it would lose
//   - the cache: ristretto's Set is asynchronous and may be dropped, so the
//     Resolve right after a fetch fetches again (200 times in 200 over
//     loopback), and a full cache may refuse a new set instead of making
//     room; only WaitForCache, outside fosite.JWKSFetcherStrategy, settles it;
//   - a redirect as its status: it takes 300–399 as success and decodes the
//     redirect's body;
//   - what failed, in the log: every failure is a server_error whose
//     Error() is "server_error" (the cause only through Unwrap);
//   - the whole-body bound: json.Decoder stops at the first value, so data
//     after the set is accepted, and 64 KiB needs a body-wrapping transport.
// Keeping today's behaviour on it takes a CheckRetry wrapper, this
// ErrorHandler, that transport and WaitForCache: more than the copy.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/hashicorp/go-retryablehttp"
	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/ory/fosite"
	"golang.org/x/sync/singleflight"

	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
)

// jwksFetcher is fosite's JWKS fetcher (fosite.JWKSFetcherStrategy) for a
// private_key_jwt client's jwks_uri: fosite's DefaultJWKSFetcherStrategy's
// fetch and cache — a GET with the given client (the auth-server's guarded
// one: clients.MetadataFetcher.RetryableClient), a 2xx answer of at most
// jwksMaxBytes decoded as a JWK set and kept for jwksCacheTTL — whose
// failures are typed, for jwksFetchFailure to tell apart with errors.As,
// where fosite's are server_error with the cause in their hint's words:
//   - *jwksStatusError: an answer outside 200–299, the status kept;
//   - *jwksDecodeError: an answer that is not a JWK set, larger than
//     jwksMaxBytes, or with more keys than jwksMaxKeys or a kid longer
//     than jwksMaxKIDBytes;
//   - anything else: the request's own failure (the transport's error,
//     clients.FetchFailure's to classify).
//
// Anyone may name a jwks_uri (a Client ID Metadata Document of their own,
// on by default) and have one token request fetch it, so what the fetcher
// keeps and fetches is bounded by its own numbers, not by the clients:
//   - the cache holds at most jwksCacheBytes of answers (their body
//     lengths; the decoded set takes about as much heap) and at most
//     jwksCacheSize sets, the least recently used dropped first (before:
//     10,000 sets of up to 64 KiB each, ~650 MiB, against the chart's
//     256 MiB limit);
//   - ignoreCache, which fosite asks when the assertion's kid is not in
//     the set it got (RFC 7523 §3 leaves key lookup to the server; OpenID
//     Connect Core §10.1.1 has a verifier fetch the set again for an
//     unknown kid), fetches anew only when the set is older than
//     jwksRefetchInterval: an assertion naming a kid the client never
//     published costs one fetch, not two, and a jwks_uri (the client's,
//     or a third party's it names) is fetched again at most once per
//     interval however many such assertions arrive;
//   - concurrent Resolves that must fetch one jwks_uri share one GET
//     (singleflight, keyed by the URI): the first fetch of a new client's
//     set, and the refetch for an unknown kid, cost one GET however many
//     assertions arrive at once. The GET is detached from the request
//     that started it (its values kept, its end not: jwksFetchTimeout
//     bounds it), so a request that gives up stops waiting at once while
//     the others still get the set. Its values include the starter's
//     client address: a GET the per-address bound refused is answered so
//     to the callers of that address only, each other caller fetching
//     once under its own (resolve);
//   - the GET goes through the guarded client, whose own bounds hold it:
//     response headers of at most clients.MaxResponseHeaderBytes, and at
//     most clients.DefaultMaxFetches fetches in flight in the process,
//     metadata documents included (the operator's clients' jwks_uris have
//     a fetcher, client and bound of their own: signingUseFetcher,
//     clients.DefaultMaxOperatorFetches); a GET that finds none free within
//     clients.DefaultFetchQueueWait is refused (clients.ErrFetchBusy),
//     and that refusal is not remembered: it is no fault of the client's;
//   - a fetch that fails (an error status, an answer that is no JWK set,
//     a connection that fails or times out) is remembered for
//     jwksFailureTTL and answered again, without a GET, to every Resolve
//     of that jwks_uri until then, in the same cache and budget as the
//     sets (jwksFailureWeight each): a broken jwks_uri costs one GET per
//     jwksFailureTTL, and a client that fixes it is served after at most
//     that long. A set fetched before stays cached beside its failure.
type jwksFetcher struct {
	client *retryablehttp.Client
	now    func() time.Time
	flight singleflight.Group
	// ownFlight shares, per (client address, jwks_uri), the fetch of a
	// Resolve whose shared one was refused for another address (resolve).
	ownFlight singleflight.Group

	mu    sync.Mutex
	cache *simplelru.LRU[string, cachedJWKS]
	bytes int // the weights of the entries in cache
}

// cachedJWKS is what is known of one jwks_uri: the last set fetched (nil
// if none) and when, the keys of it an assertion may be verified with
// (clients.AssertionKeys, filtered once when the set is cached), and the
// last fetch's failure (nil if it succeeded) and when.
type cachedJWKS struct {
	set     *josev3.JSONWebKeySet
	keys    *josev3.JSONWebKeySet
	fetched time.Time
	err     error
	failed  time.Time
	weight  int
}

// jwksCacheTTL is fosite's DefaultJWKSFetcherStrategy's (an hour).
// jwksCacheSize bounds the number of sets, jwksCacheBytes their weight:
// a set's answer length plus the jwks_uri's. A set of a few keys is 1–3
// KiB: 4 MiB keeps over a thousand of them, or 64 of the largest.
// jwksRefetchInterval is how old a set must be before an unknown kid
// fetches it again. jwksFailureTTL is how long a failed fetch is answered
// from the cache; jwksFailureWeight what a remembered failure counts
// against jwksCacheBytes beside its jwks_uri's length (the error value
// and the entry). jwksFetchTimeout bounds a shared fetch, which no
// request's context ends (the guarded client's own timeouts, 5 s an
// attempt and two attempts, end it first).
const (
	jwksCacheTTL        = time.Hour
	jwksCacheSize       = 10000
	jwksCacheBytes      = 4 << 20
	jwksRefetchInterval = time.Minute
	jwksFailureTTL      = 15 * time.Second
	jwksFailureWeight   = 512
	jwksFetchTimeout    = 30 * time.Second
)

// jwksMaxBytes bounds a jwks_uri answer: anyone may run a client whose
// jwks_uri the auth-server fetches (a Client ID Metadata Document), and
// a set of a few RSA keys is a few KiB. Larger is refused, not read on
// (and not cached). A set of more than jwksMaxKeys keys, or with a kid
// longer than jwksMaxKIDBytes, is refused too: a client signs with one
// key and publishes the next beside it.
const (
	jwksMaxBytes    = clients.MaxJWKSBytes
	jwksMaxKeys     = 32
	jwksMaxKIDBytes = 256
)

// newJWKSFetcher fetches with rc (which it changes: its ErrorHandler, so
// that a status the retry policy gave up on is answered as the status,
// not as retryablehttp's "giving up after" text).
func newJWKSFetcher(rc *retryablehttp.Client) *jwksFetcher {
	rc.ErrorHandler = func(resp *http.Response, err error, _ int) (*http.Response, error) {
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if err == nil {
				return nil, &jwksStatusError{Code: resp.StatusCode, Retried: true}
			}
		}
		return nil, err
	}
	f := &jwksFetcher{client: rc, now: time.Now}
	// The eviction callback runs inside the LRU's calls, under f.mu.
	f.cache, _ = simplelru.NewLRU(jwksCacheSize, func(_ string, c cachedJWKS) { f.bytes -= c.weight })
	return f
}

// jwksStatusError is a jwks_uri answered with a status outside 200–299.
// Retried is set when the client's retry policy retried it until it gave
// up (a 5xx but 501, or 429).
type jwksStatusError struct {
	Code    int
	Retried bool
}

func (e *jwksStatusError) Error() string {
	return fmt.Sprintf("jwks_uri answered HTTP %d", e.Code)
}

// jwksDecodeError is a jwks_uri answer that does not decode as a JWK set.
type jwksDecodeError struct{ Err error }

func (e *jwksDecodeError) Error() string { return "jwks_uri answer is not a JWK set: " + e.Err.Error() }
func (e *jwksDecodeError) Unwrap() error { return e.Err }

// jwksFailedError is a jwks_uri's remembered failure (Err, the fetch's
// error) answered from the cache until Until, without a GET. reported is
// set by the first caller that logs it (firstReport): one fetch's failure
// is logged once, however many assertions it refuses until Until.
type jwksFailedError struct {
	Err      error
	Until    time.Time
	reported atomic.Bool
}

// firstReport reports whether err, a failure of the fetcher, is to be
// logged: true the first time for one fetch's failure (jwksFailedError,
// which every Resolve of its jwks_uri answers until it expires), false
// for it afterwards; true for any other error (a request that stopped
// waiting). The jwks_uri is the client's, anyone may name one (a Client
// ID Metadata Document), and each assertion of a client whose set cannot
// be fetched is refused: a line per assertion let that client fill the
// log at the token endpoint's rate.
func firstReport(err error) bool {
	var failed *jwksFailedError
	if !errors.As(err, &failed) {
		return true
	}
	return failed.reported.CompareAndSwap(false, true)
}

func (e *jwksFailedError) Error() string {
	return e.Err.Error() + " (remembered until " + e.Until.UTC().Format(time.RFC3339) + ")"
}
func (e *jwksFailedError) Unwrap() error { return e.Err }

// Resolve implements fosite.JWKSFetcherStrategy: the set location
// answered, as fetched.
func (f *jwksFetcher) Resolve(ctx context.Context, location string, ignoreCache bool) (*josev3.JSONWebKeySet, error) {
	c, err := f.resolve(ctx, location, ignoreCache)
	return c.set, err
}

// ResolveAssertionKeys is Resolve's set with clients.AssertionKeys
// applied: the keys a private_key_jwt client's assertion may be verified
// with. The filter runs once per fetched set, when it is cached, and the
// same filtered set is answered until it is fetched again (callers only
// read it). A set of only unusable keys gives an empty set, not an
// error: the assertion's verification refuses it.
func (f *jwksFetcher) ResolveAssertionKeys(ctx context.Context, location string, ignoreCache bool) (*josev3.JSONWebKeySet, error) {
	c, err := f.resolve(ctx, location, ignoreCache)
	return c.keys, err
}

// resolve answers location's cached entry, fetching it (once for all
// concurrent callers) when the cache has no answer.
//
// The shared GET runs with the client address of the request that
// started it (clients.WithFetchAddress), so the guarded client's
// per-address bound may refuse it for that address alone
// (clients.AddressBusy): a caller of another address that joined it does
// not take that refusal as its answer but fetches once under its own
// address (shared with the concurrent callers of that address only,
// ownFlight). Before (brk48), an address holding its own fetch slots
// could start the fetch of a victim client's jwks_uri and have every
// request of the victim that joined it refused "too many fetches in
// flight for this client address".
func (f *jwksFetcher) resolve(ctx context.Context, location string, ignoreCache bool) (cachedJWKS, error) {
	if c, ok, err := f.lookup(location, ignoreCache); ok {
		return c, err
	}
	c, err := f.await(ctx, f.flight.DoChan(location, f.fetchShared(ctx, location, ignoreCache)))
	var busy *addressBusyError
	if own, _ := clients.FetchAddress(ctx); errors.As(err, &busy) && busy.address != own {
		// The key holds no NUL of the server's own making besides the
		// separator: an address (platform/clientip) has none, so no two
		// (address, location) pairs share a key.
		c, err = f.await(ctx, f.ownFlight.DoChan(own+"\x00"+location, f.fetchShared(ctx, location, ignoreCache)))
	}
	if errors.As(err, &busy) {
		return c, busy.Err
	}
	return c, err
}

// addressBusyError is a shared fetch's refusal by the per-address bound
// of its starter's client address (clients.AddressBusy): Err, for the
// callers of that address; another's fetches for itself (resolve).
type addressBusyError struct {
	address string
	Err     error
}

func (e *addressBusyError) Error() string { return e.Err.Error() }
func (e *addressBusyError) Unwrap() error { return e.Err }

// fetchShared is the fetch of location that concurrent Resolves share
// (resolve's flights), with ctx's values (its client address among them)
// and not its end: jwksFetchTimeout bounds it.
func (f *jwksFetcher) fetchShared(ctx context.Context, location string, ignoreCache bool) func() (any, error) {
	return func() (any, error) {
		// A Resolve that looked before the last shared fetch ended finds
		// its answer here, not in another GET.
		if c, ok, err := f.lookup(location, ignoreCache); ok {
			return c, err
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksFetchTimeout)
		defer cancel()
		started := f.now()
		set, n, err := f.fetch(fctx, location)
		if errors.Is(err, clients.ErrFetchBusy) {
			// The guarded client's bound refused the GET (nothing was
			// sent): the auth-server's load, not the client's failure,
			// so not remembered — the next Resolve tries again.
			if clients.AddressBusy(err) {
				addr, _ := clients.FetchAddress(ctx)
				return nil, &addressBusyError{address: addr, Err: err}
			}
			return nil, err
		}
		if err != nil {
			return nil, f.fail(location, err, started)
		}
		return f.put(location, set, n, started), nil
	}
}

// await answers a flight's result, or ctx's end first.
func (f *jwksFetcher) await(ctx context.Context, ch <-chan singleflight.Result) (cachedJWKS, error) {
	select {
	case res := <-ch:
		if res.Err != nil {
			return cachedJWKS{}, res.Err
		}
		return res.Val.(cachedJWKS), nil
	case <-ctx.Done():
		return cachedJWKS{}, fmt.Errorf("waiting for the jwks_uri fetch: %w", ctx.Err())
	}
}

// lookup answers from the cache (ok): a set fetched less than
// jwksCacheTTL ago (with ignoreCache, less than jwksRefetchInterval ago),
// else a failure of less than jwksFailureTTL ago.
func (f *jwksFetcher) lookup(location string, ignoreCache bool) (cachedJWKS, bool, error) {
	now := f.now()
	f.mu.Lock()
	c, ok := f.cache.Get(location)
	f.mu.Unlock()
	switch {
	case !ok:
		return cachedJWKS{}, false, nil
	case c.set != nil && now.Sub(c.fetched) < jwksCacheTTL && (!ignoreCache || now.Sub(c.fetched) < jwksRefetchInterval):
		return c, true, nil
	case c.err != nil && now.Sub(c.failed) < jwksFailureTTL:
		return cachedJWKS{}, true, c.err
	}
	return cachedJWKS{}, false, nil
}

// fetch GETs location and answers its JWK set and the answer's length.
func (f *jwksFetcher) fetch(ctx context.Context, location string) (*josev3.JSONWebKeySet, int, error) {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, location, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		// A 3xx too: redirects are not followed (clients.MetadataFetcher),
		// and its body is no key set.
		return nil, 0, &jwksStatusError{Code: resp.StatusCode}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBytes+1))
	if err != nil {
		return nil, 0, err
	}
	if len(body) > jwksMaxBytes {
		return nil, 0, &jwksDecodeError{Err: fmt.Errorf("larger than %d bytes", jwksMaxBytes)}
	}
	var set josev3.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, 0, &jwksDecodeError{Err: err}
	}
	if len(set.Keys) > jwksMaxKeys {
		return nil, 0, &jwksDecodeError{Err: fmt.Errorf("more than %d keys", jwksMaxKeys)}
	}
	for _, k := range set.Keys {
		if len(k.KeyID) > jwksMaxKIDBytes {
			return nil, 0, &jwksDecodeError{Err: fmt.Errorf("a kid longer than %d bytes", jwksMaxKIDBytes)}
		}
	}
	return &set, len(body), nil
}

// put caches set, of an answer of n bytes, and its assertion keys
// (filtered here, once per fetch) for location, forgetting a failure
// remembered for it, and answers the entry.
func (f *jwksFetcher) put(location string, set *josev3.JSONWebKeySet, n int, now time.Time) cachedJWKS {
	c := cachedJWKS{set: set, keys: clients.AssertionKeys(set), fetched: now, weight: n + len(location)}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.store(location, c)
	return c
}

// fail remembers err, location's fetch's failure at now, beside the set
// fetched before if any, and answers it as it will be answered from the
// cache.
func (f *jwksFetcher) fail(location string, err error, now time.Time) error {
	err = &jwksFailedError{Err: err, Until: now.Add(jwksFailureTTL)}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, _ := f.cache.Peek(location)
	if c.set == nil || now.Sub(c.fetched) >= jwksCacheTTL {
		c = cachedJWKS{weight: len(location)}
	}
	c.weight += jwksFailureWeight - c.failureWeight()
	c.err, c.failed = err, now
	f.store(location, c)
	return err
}

// failureWeight is what c's failure added to its weight (fail adds
// jwksFailureWeight once: a second failure replaces the first).
func (c cachedJWKS) failureWeight() int {
	if c.err != nil {
		return jwksFailureWeight
	}
	return 0
}

// store caches c for location under f.mu, dropping the least recently
// used entries until the cache's weight is within jwksCacheBytes.
func (f *jwksFetcher) store(location string, c cachedJWKS) {
	f.cache.Remove(location)
	for f.bytes+c.weight > jwksCacheBytes && f.cache.Len() > 0 {
		f.cache.RemoveOldest()
	}
	f.cache.Add(location, c)
	f.bytes += c.weight
}

// cached reports the number of sets cached and their weight.
func (f *jwksFetcher) cached() (sets, bytes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cache.Len(), f.bytes
}

// jwksFetchFailure says in fixed words why the fetcher (err, from
// jwksFetcher) got no key set: an error status (a 5xx is retried once by
// the guarded client, which then gives up), a body that is not a JWK set,
// or the connection's failure (clients.FetchFailure: refused, timed out,
// TLS, not a public address).
func jwksFetchFailure(err error) string {
	var status *jwksStatusError
	var decode *jwksDecodeError
	switch {
	case errors.As(err, &status) && status.Retried:
		return "it answered a server error status"
	case errors.As(err, &status):
		return fmt.Sprintf("it answered HTTP %d", status.Code)
	case errors.As(err, &decode):
		return "its answer is not a JWK set"
	}
	return strings.TrimPrefix(clients.FetchFailure(err), "the ")
}

var _ fosite.JWKSFetcherStrategy = (*jwksFetcher)(nil)

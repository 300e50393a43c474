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
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/hashicorp/go-retryablehttp"
	"github.com/ory/fosite"

	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
)

// jwksFetcher is fosite's JWKS fetcher (fosite.JWKSFetcherStrategy) for a
// private_key_jwt client's jwks_uri: fosite's DefaultJWKSFetcherStrategy's
// fetch and cache — a GET with the given client (the auth-server's guarded
// one: clients.MetadataFetcher.RetryableClient), a 2xx answer of at most
// jwksMaxBytes decoded as a JWK set and kept for jwksCacheTTL, ignoreCache fetching
// anew — whose failures are typed, for jwksFetchFailure to tell apart
// with errors.As, where fosite's are server_error with the cause in
// their hint's words:
//   - *jwksStatusError: an answer outside 200–299, the status kept;
//   - *jwksDecodeError: an answer that is not a JWK set, or larger than
//     jwksMaxBytes;
//   - anything else: the request's own failure (the transport's error,
//     clients.FetchFailure's to classify).
type jwksFetcher struct {
	client *retryablehttp.Client

	mu    sync.Mutex
	cache map[string]cachedJWKS
}

type cachedJWKS struct {
	set     *josev3.JSONWebKeySet
	expires time.Time
}

// jwksCacheTTL and jwksCacheSize are fosite's DefaultJWKSFetcherStrategy's
// (an hour; at most 10,000 sets).
const (
	jwksCacheTTL  = time.Hour
	jwksCacheSize = 10000
)

// jwksMaxBytes bounds a jwks_uri answer: anyone may run a client whose
// jwks_uri the auth-server fetches (a Client ID Metadata Document), and
// a set of a few RSA keys is a few KiB. Larger is refused, not read on
// (and not cached).
const jwksMaxBytes = 64 << 10

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
	return &jwksFetcher{client: rc, cache: map[string]cachedJWKS{}}
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

// Resolve implements fosite.JWKSFetcherStrategy.
func (f *jwksFetcher) Resolve(ctx context.Context, location string, ignoreCache bool) (*josev3.JSONWebKeySet, error) {
	if !ignoreCache {
		f.mu.Lock()
		c, ok := f.cache[location]
		f.mu.Unlock()
		if ok && time.Now().Before(c.expires) {
			return c.set, nil
		}
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, location, nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		// A 3xx too: redirects are not followed (clients.MetadataFetcher),
		// and its body is no key set.
		return nil, &jwksStatusError{Code: resp.StatusCode}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > jwksMaxBytes {
		return nil, &jwksDecodeError{Err: fmt.Errorf("larger than %d bytes", jwksMaxBytes)}
	}
	var set josev3.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, &jwksDecodeError{Err: err}
	}
	f.put(location, &set)
	return &set, nil
}

// put caches set for location; with the cache full, expired sets are
// dropped first, then any one.
func (f *jwksFetcher) put(location string, set *josev3.JSONWebKeySet) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if _, ok := f.cache[location]; !ok && len(f.cache) >= jwksCacheSize {
		for k, c := range f.cache {
			if !now.Before(c.expires) {
				delete(f.cache, k)
			}
		}
		for k := range f.cache {
			if len(f.cache) < jwksCacheSize {
				break
			}
			delete(f.cache, k)
		}
	}
	f.cache[location] = cachedJWKS{set: set, expires: now.Add(jwksCacheTTL)}
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

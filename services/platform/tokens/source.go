package tokens

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc"

	authv1 "github.com/tollgate/tollgate/proto/gen/tollgate/auth/v1"
)

// This file holds the key-refresh path of the Verifier: fetches run in the
// background on their own context, never on a request's.

// GRPCKeySource fetches the key set from the auth-server's KeySetService.
type GRPCKeySource struct{ client authv1.KeySetServiceClient }

// NewGRPCKeySource uses conn, a connection to the auth-server's gRPC port.
func NewGRPCKeySource(conn grpc.ClientConnInterface) *GRPCKeySource {
	return &GRPCKeySource{client: authv1.NewKeySetServiceClient(conn)}
}

// FetchKeySet implements KeySource.
func (s *GRPCKeySource) FetchKeySet(ctx context.Context) (KeySet, error) {
	resp, err := s.client.GetKeySet(ctx, &authv1.GetKeySetRequest{})
	if err != nil {
		return KeySet{}, err
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(resp.GetJwksJson(), &set); err != nil {
		return KeySet{}, fmt.Errorf("key set: %w", err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return KeySet{}, fmt.Errorf("key set: key %q is not public", k.KeyID)
		}
	}
	return KeySet{Issuer: resp.GetIssuer(), Keys: set}, nil
}

// FetchTimeout bounds one key-set fetch. Fetches run on a context of
// their own, never the caller's: a request that gives up does not cancel
// a fetch other requests wait for, and no request makes a fetch hang.
const FetchTimeout = 5 * time.Second

// UnknownKeyWait bounds how long a request waits for the fetch its token
// forces once a key set is cached: a kid the cached set lacks, or a
// cached kid whose signature fails (a kid reused for new key material).
// A fetch still running then is left to finish on its own context and
// the request is answered ErrKeysUnavailable (503, Retry-After): with the
// auth-server hung, such a request does not wait FetchTimeout.
const UnknownKeyWait = time.Second

// fetch fetches the key set and records the outcome; callers go through
// the singleflight group (refresh). A set that lacks a key of the one it
// replaces empties the cache and, once it is in use, is told to the
// OnKeysRemoved hooks.
func (v *Verifier) fetch(forced bool) (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), FetchTimeout)
	defer cancel()
	ks, err := v.o.Source.FetchKeySet(ctx)
	now := v.o.Now()
	v.mu.Lock()
	if forced {
		v.lastForced = now
	}
	v.lastTried, v.lastErr = now, err
	if err != nil {
		v.mu.Unlock()
		return KeySet{}, err
	}
	var removed []string
	if v.everFetched {
		if removed = removedKeys(v.keys, ks); len(removed) > 0 {
			v.cache.Purge()
			v.purges++
			removed = v.settled(v.keys, removed, now)
		}
	}
	for _, k := range ks.Keys.Keys {
		if id := keyIdentity(k); !v.everFetched {
			v.firstSeen[id] = time.Time{} // published before this verifier started
		} else if _, seen := v.firstSeen[id]; !seen {
			v.firstSeen[id] = now
		}
	}
	v.keys, v.fetchedAt, v.everFetched = ks, now, true
	v.mu.Unlock()
	// After the new set is in use, on a goroutine of their own: a hook may
	// call the Verifier (Publishes answers from the new set; a Verify that
	// refetches would wait for this very fetch if run here), and no
	// request waits for the hooks.
	if len(removed) > 0 {
		go v.keysRemoved(removed)
	}
	return ks, nil
}

// removedKeys are the kids of old's keys that cur does not hold (the kid
// is gone, or now names another key), or every kid of old when cur names
// another issuer (tokens of old's issuer are refused whatever their key).
func removedKeys(old, cur KeySet) []string {
	var kids []string
	for _, k := range old.Keys.Keys {
		if slices.Contains(kids, k.KeyID) {
			continue
		}
		if old.Issuer != cur.Issuer || !holds(cur.Keys, k) {
			kids = append(kids, k.KeyID)
		}
	}
	return kids
}

// settled keeps the kids of removed that old held under a key the
// verifier first saw at least NewKeyGrace before now: a younger key's
// absence may be a fetch answered by an auth-server pod that does not
// have it yet (a rollout), so it is not told to the hooks (v.mu held).
func (v *Verifier) settled(old KeySet, removed []string, now time.Time) []string {
	var kids []string
	for _, kid := range removed {
		for _, k := range old.Keys.Key(kid) {
			if seen, ok := v.firstSeen[keyIdentity(k)]; !ok || now.Sub(seen) >= v.o.NewKeyGrace {
				kids = append(kids, kid)
				break
			}
		}
	}
	return kids
}

// keyIdentity names a key by its kid and its RFC 7638 thumbprint: a kid
// that comes to name other key material is another key.
func keyIdentity(k jose.JSONWebKey) string {
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return k.KeyID // a key go-jose cannot thumbprint is named by its kid
	}
	return k.KeyID + "\x00" + string(tp)
}

// holds reports whether set publishes k: a key of the same kid, public
// key and algorithm.
func holds(set jose.JSONWebKeySet, k jose.JSONWebKey) bool {
	pub, ok := k.Key.(interface{ Equal(crypto.PublicKey) bool })
	if !ok {
		return false
	}
	for _, n := range set.Key(k.KeyID) {
		if pub.Equal(n.Key) && n.Algorithm == k.Algorithm {
			return true
		}
	}
	return false
}

// OnKeysRemoved registers f, told the kids of the keys a fetched key set
// no longer holds (retired, or removed because they leaked; every kid of
// the previous set when the issuer changed), once the new set is in use:
// Verify refuses their tokens and Publishes answers false for them by
// the time f runs. f runs on a goroutine of its own, started by the fetch
// (no lock of the Verifier held, no request waiting for it), so it may
// call the Verifier; the calls of two fetches may overlap. Nothing is
// polled: f is called only after the fetches the Verifier makes anyway
// (KeepFresh's routine refresh, an unknown kid's refetch). A key the
// Verifier first saw less than NewKeyGrace before the fetch is not told
// (a rollout's old pod may answer without it). remove unregisters f.
func (v *Verifier) OnKeysRemoved(f func(kids []string)) (remove func()) {
	key := &f
	v.hooksMu.Lock()
	if v.hooks == nil {
		v.hooks = map[*func([]string)]struct{}{}
	}
	v.hooks[key] = struct{}{}
	v.hooksMu.Unlock()
	return func() {
		v.hooksMu.Lock()
		delete(v.hooks, key)
		v.hooksMu.Unlock()
	}
}

// keysRemoved tells the hooks of kids that have just left the key set
// (fetch starts it on a goroutine of its own).
func (v *Verifier) keysRemoved(kids []string) {
	if len(kids) == 0 {
		return
	}
	v.hooksMu.Lock()
	hooks := make([]func([]string), 0, len(v.hooks))
	for f := range v.hooks {
		hooks = append(hooks, *f)
	}
	v.hooksMu.Unlock()
	for _, f := range hooks {
		f(slices.Clone(kids))
	}
}

// Publishes reports whether the key set in use still holds the key that
// signed c, a token Verify accepted, under c's issuer: false once a
// fetched set lacks that key (or names another issuer), when Verify
// refuses the token.
func (v *Verifier) Publishes(c *Claims) bool {
	v.mu.RLock()
	ks := v.keys
	v.mu.RUnlock()
	return c.KeyID != "" && c.Issuer == ks.Issuer && holds(ks.Keys, c.signer)
}

// FirstSetRetry is how often a Verifier that has never had a key set
// tries again after a failed fetch — KeepFresh, and requests and Ready
// checks (instead of MinRefreshInterval): it answers no token until a
// fetch succeeds, so it must learn within a second that the auth-server
// is back (a pod started before the auth-server answered, or while its
// Service had no ready endpoint, refused every token for up to 30 s after
// the auth-server came up). One failing fetch a second per pod is what
// readiness probes cost anyway.
const FirstSetRetry = time.Second

// recentFailure is the error of the last fetch if it failed less than
// MinRefreshInterval (FirstSetRetry before the first set) before now, else
// nil. Within that window requests and Ready start no fetch (only
// KeepFresh, on its own schedule, tries again).
func (v *Verifier) recentFailure(now time.Time) error {
	v.mu.RLock()
	defer v.mu.RUnlock()
	window := v.o.MinRefreshInterval
	if !v.everFetched {
		window = min(window, FirstSetRetry)
	}
	if v.lastErr != nil && now.Sub(v.lastTried) < window {
		return v.lastErr
	}
	return nil
}

// refreshInBackground starts a fetch unless one is running or the last
// one failed less than MinRefreshInterval ago; requests keep using the
// cached set meanwhile. Without that bound, every request with a known
// kid (a valid token, or any token naming a published kid) would start a
// fetch as soon as the previous one failed, back to back, against an
// auth-server that is failing or overloaded.
func (v *Verifier) refreshInBackground() {
	if v.recentFailure(v.o.Now()) != nil {
		return
	}
	v.sf.DoChan("keys", func() (any, error) { return v.fetch(false) })
}

// KeepFresh fetches the key set now and again every KeysMaxAge until ctx
// ends; after a failed fetch it retries every FirstSetRetry (1s) until the
// first set is fetched, and with back-off from 1s to 30s once it has a set
// (which keeps verifying while the auth-server is away). Run
// it in its own goroutine: with it, requests find keys already cached and
// never wait for the auth-server. Without it, keys are fetched on first use.
func (v *Verifier) KeepFresh(ctx context.Context) {
	retry := time.Second
	for {
		_, err := v.refresh(ctx, false)
		wait := v.o.KeysMaxAge
		switch {
		case err != nil && !v.hasSet():
			wait = FirstSetRetry
		case err != nil:
			wait, retry = retry, min(2*retry, 30*time.Second)
		default:
			retry = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// hasSet reports whether a key set was ever fetched.
func (v *Verifier) hasSet() bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.everFetched
}

// Ready reports the key set's state (a readiness or metrics check of a
// shared dependency): nil while a key set fetched within KeysMaxAge is
// cached, else why not. Before the first key set it waits for the fetch
// under way (which runs on its own context) at most until ctx ends; after
// that it never waits. Verification goes on with an older set, so an error
// here never means tokens are refused. Like requests, it starts no fetch
// within MinRefreshInterval of a failed one (FirstSetRetry before the
// first set; probes of every pod must not hammer a failing auth-server):
// before the first set it answers with that failure at once. KeepFresh
// keeps retrying (every second before the first set), and
// Ready answers nil at the first check after one of its fetches succeeds.
func (v *Verifier) Ready(ctx context.Context) error {
	v.mu.RLock()
	ever, fetched, lastErr := v.everFetched, v.fetchedAt, v.lastErr
	v.mu.RUnlock()
	switch recent := v.recentFailure(v.o.Now()); {
	case !ever && recent != nil:
		return fmt.Errorf("no key set yet: %w", recent)
	case !ever:
		if _, err := v.refresh(ctx, false); err != nil {
			if lastErr != nil && errors.Is(err, ctx.Err()) {
				err = lastErr
			}
			return fmt.Errorf("no key set yet: %w", err)
		}
		return nil
	case v.o.Now().Sub(fetched) > v.o.KeysMaxAge:
		v.refreshInBackground()
		if lastErr != nil {
			return fmt.Errorf("key set %s old, refresh failing (cached keys still verify): %w", v.o.Now().Sub(fetched).Round(time.Second), lastErr)
		}
		return fmt.Errorf("key set %s old, refreshing", v.o.Now().Sub(fetched).Round(time.Second))
	}
	return nil
}

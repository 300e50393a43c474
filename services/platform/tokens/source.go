package tokens

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
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

// fetch fetches the key set and records the outcome; callers go through
// the singleflight group (refresh).
func (v *Verifier) fetch(forced bool) (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), FetchTimeout)
	defer cancel()
	ks, err := v.o.Source.FetchKeySet(ctx)
	now := v.o.Now()
	v.mu.Lock()
	defer v.mu.Unlock()
	if forced {
		v.lastForced = now
	}
	v.lastErr = err
	if err != nil {
		return KeySet{}, err
	}
	if v.everFetched && (ks.Issuer != v.keys.Issuer || keyRemoved(v.keys.Keys, ks.Keys)) {
		v.cache.Purge()
		v.purges++
	}
	v.keys, v.fetchedAt, v.everFetched = ks, now, true
	return ks, nil
}

// keyRemoved reports whether a key of old is not in cur: its kid is gone,
// or now names another key.
func keyRemoved(old, cur jose.JSONWebKeySet) bool {
	for _, k := range old.Keys {
		pub, ok := k.Key.(interface{ Equal(crypto.PublicKey) bool })
		found := false
		for _, n := range cur.Key(k.KeyID) {
			if ok && pub.Equal(n.Key) && n.Algorithm == k.Algorithm {
				found = true
				break
			}
		}
		if !found {
			return true
		}
	}
	return false
}

// refreshInBackground starts a fetch unless one is running; requests keep
// using the cached set meanwhile.
func (v *Verifier) refreshInBackground() {
	v.sf.DoChan("keys", func() (any, error) { return v.fetch(false) })
}

// KeepFresh fetches the key set now and again every KeysMaxAge until ctx
// ends; after a failed fetch it retries with back-off from 1s to 30s. Run
// it in its own goroutine: with it, requests find keys already cached and
// never wait for the auth-server. Without it, keys are fetched on first use.
func (v *Verifier) KeepFresh(ctx context.Context) {
	retry := time.Second
	for {
		_, err := v.refresh(ctx, false)
		wait := v.o.KeysMaxAge
		if err != nil {
			wait, retry = retry, min(2*retry, 30*time.Second)
		} else {
			retry = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// Ready reports the key set's state (a readiness or metrics check of a
// shared dependency): nil while a key set fetched within KeysMaxAge is
// cached, else why not. Before the first key set it waits for the fetch
// under way (which runs on its own context) at most until ctx ends; after
// that it never waits. Verification goes on with an older set, so an error
// here never means tokens are refused.
func (v *Verifier) Ready(ctx context.Context) error {
	v.mu.RLock()
	ever, fetched, lastErr := v.everFetched, v.fetchedAt, v.lastErr
	v.mu.RUnlock()
	switch {
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

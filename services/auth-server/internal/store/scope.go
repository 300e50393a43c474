package store

import (
	"context"
	"sync"

	"github.com/ory/fosite"
)

// RequestScope is what the store remembers for the length of one token
// request: fosite reads the authorization code's request, PKCE and OpenID
// Connect sessions in four places, and this keeps that to one Redis read;
// a refresh's read, rotation and fosite's writes are one script call
// (ExpectRefresh);
// a grant revoked twice in one request is deleted once (RevokeGrant).
type requestScope struct {
	mu    sync.Mutex
	codes map[string]map[string]string // code signature -> the code hash's fields
	// codeReads: reads of a code's hash started ahead (PrefetchCode), by
	// code signature, until codeFields takes their answer.
	codeReads map[string]*codeRead
	revoked   map[string]bool // grant ids revoked (written) in this request
	// parts: the code's parts decoded (decodeScoped), by code signature
	// and field.
	parts map[partKey]*partRead
	// sessions: the stored session JSON last decoded into each session
	// object (fosite hands the same session to the code's four reads, and
	// its three parts hold the same session).
	sessions map[fosite.Session][]byte
	// refresh: each refresh token's intent and script answer (grant.go),
	// by store handle.
	refresh map[string]*refreshState
	// deferRedemption: Commit starts a code's redemption and returns at
	// once (DeferRedemption); redemption is its outcome, taken by
	// AwaitRedemption.
	deferRedemption bool
	redemption      chan error
}

type scopeKey struct{}

// WithRequestScope returns ctx carrying a per-request cache of what the
// store read. The token endpoint wraps each request in one; without it
// every read goes to Redis.
func WithRequestScope(ctx context.Context) context.Context {
	return context.WithValue(ctx, scopeKey{}, &requestScope{})
}

// DeferRedemption makes the Commit of an authorization code's redemption
// in ctx's request scope (WithRequestScope) start its round trip and return
// nil at once, instead of waiting for Redis's answer: fosite signs the ID
// token after that Commit (the OpenID Connect handler runs after the code
// handler), and the signature then overlaps the round trip instead of
// waiting behind it. The caller must call AwaitRedemption with the same ctx
// before it answers the request — whatever NewAccessResponse returned — and
// must not write tokens unless it returns nil: until then the code may have
// been redeemed by a concurrent request (ErrCodeReplayed) or have expired.
// Without a request scope it does nothing.
func DeferRedemption(ctx context.Context) {
	if sc := scopeOf(ctx); sc != nil {
		sc.mu.Lock()
		sc.deferRedemption = true
		sc.mu.Unlock()
	}
}

// AwaitRedemption waits for a redemption that Commit started under
// DeferRedemption and returns its outcome: nil when the code was redeemed
// and its grant stored (or no redemption was started), else the error
// Commit would have returned (ErrCodeReplayed, ErrCodeExpired,
// ErrUnavailable, ...).
func AwaitRedemption(ctx context.Context) error {
	sc := scopeOf(ctx)
	if sc == nil {
		return nil
	}
	sc.mu.Lock()
	c := sc.redemption
	sc.redemption = nil
	sc.mu.Unlock()
	if c == nil {
		return nil
	}
	return <-c
}

func scopeOf(ctx context.Context) *requestScope {
	sc, _ := ctx.Value(scopeKey{}).(*requestScope)
	return sc
}

// txKey carries the pending writes of a fosite transaction.
type txKey struct{}

// tx is what fosite asked to write between BeginTX and Commit, applied in
// one round trip (a Lua script, so the checks and writes are atomic).
type tx struct {
	mu sync.Mutex
	// redeem is the signature of the authorization code being redeemed.
	redeem string
	// rotateFrom is the refresh handle ("<grant id>.<mac>") presented.
	rotateFrom string
	// grant is the request to store as the grant's record, refresh the
	// handle of the refresh token issued with it (empty: none).
	grant   fosite.Requester
	refresh string
	revoke  []string
}

func (t *tx) reset() {
	t.redeem, t.rotateFrom, t.grant, t.refresh, t.revoke = "", "", nil, "", nil
}

// BeginTX implements storage.Transactional: writes until Commit are
// buffered in the returned context.
func (s *Store) BeginTX(ctx context.Context) (context.Context, error) {
	return context.WithValue(ctx, txKey{}, &tx{}), nil
}

// Commit implements storage.Transactional: it applies the buffered writes
// in one round trip.
func (s *Store) Commit(ctx context.Context) error {
	t, _ := ctx.Value(txKey{}).(*tx)
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if sc := scopeOf(ctx); sc != nil && t.redeem != "" && t.rotateFrom == "" && len(t.revoke) == 0 {
		sc.mu.Lock()
		deferred := sc.deferRedemption && sc.redemption == nil
		if deferred {
			sc.redemption = make(chan error, 1)
		}
		c := sc.redemption
		sc.mu.Unlock()
		if deferred {
			// Everything but the round trip happens here, before fosite
			// goes on to change the session (the ID token's claims); the
			// request waits for the round trip (AwaitRedemption), so ctx
			// outlives it.
			run, err := s.prepareRedeem(ctx, t)
			t.reset()
			if err != nil {
				sc.mu.Lock()
				sc.redemption = nil
				sc.mu.Unlock()
				return err
			}
			s.goAsync(func() { c <- run() })
			return nil
		}
	}
	err := s.apply(ctx, t)
	t.reset()
	return err
}

// Rollback implements storage.Transactional: buffered writes are dropped;
// nothing reached Redis.
func (s *Store) Rollback(ctx context.Context) error {
	if t, _ := ctx.Value(txKey{}).(*tx); t != nil {
		t.mu.Lock()
		t.reset()
		t.mu.Unlock()
	}
	return nil
}

// pending runs f on the context's transaction, or on a transaction of its
// own that is applied at once when ctx has none.
func (s *Store) pending(ctx context.Context, f func(*tx)) error {
	if t, _ := ctx.Value(txKey{}).(*tx); t != nil {
		t.mu.Lock()
		f(t)
		t.mu.Unlock()
		return nil
	}
	t := &tx{}
	f(t)
	return s.apply(ctx, t)
}

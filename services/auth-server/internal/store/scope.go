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
// a grant revoked twice in one request (fosite revokes "the access tokens"
// and "the refresh tokens" of a grant in turn) is deleted once.
type requestScope struct {
	mu      sync.Mutex
	codes   map[string]map[string]string // code signature -> the code hash's fields
	revoked map[string]bool              // grant ids revoked (written) in this request
	// sessions: the stored session JSON last decoded into each session
	// object (fosite hands the same session to the code's four reads, and
	// its three parts hold the same session).
	sessions map[fosite.Session]string
	// refresh: each refresh token's intent and script answer (grant.go),
	// by store handle.
	refresh map[string]*refreshState
}

type scopeKey struct{}

// WithRequestScope returns ctx carrying a per-request cache of what the
// store read. The token endpoint wraps each request in one; without it
// every read goes to Redis.
func WithRequestScope(ctx context.Context) context.Context {
	return context.WithValue(ctx, scopeKey{}, &requestScope{})
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

package store

import (
	"context"
	"time"
)

// GrantRevoker spreads a revoked grant to every token verifier of the fleet
// (services/platform/revocation.Revoker): access tokens are self-contained
// JWTs, so deleting the grant's state here is not enough to stop them.
type GrantRevoker interface {
	// Revoke records and announces grantID as revoked until tokensEnd,
	// when the last access token issued with the grant expires (the grant
	// record's, RevokeGrant), plus the verifiers' margin; the zero
	// tokensEnd when that is unknown: then for the longest lifetime an
	// access token may have.
	Revoke(ctx context.Context, grantID string, tokensEnd time.Time) error
}

// SetGrantRevoker makes every grant revocation (RFC 7009 revocation of
// either token, a replayed authorization code, refresh-token reuse) also
// record and announce the grant with r. Call it before serving.
func (s *Store) SetGrantRevoker(r GrantRevoker) { s.revoker = r }

// announceRevoked tells the fleet; a failure is ErrUnavailable, so the
// revocation request answers 503 and the client may retry.
func (s *Store) announceRevoked(ctx context.Context, id string, tokensEnd time.Time) error {
	if s.revoker == nil {
		return nil
	}
	if err := s.revoker.Revoke(ctx, id, tokensEnd); err != nil {
		return unavailable(err)
	}
	return nil
}

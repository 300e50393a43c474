package store

import "context"

// GrantRevoker spreads a revoked grant to every token verifier of the fleet
// (services/platform/revocation.Revoker): access tokens are self-contained
// JWTs, so deleting the grant's state here is not enough to stop them.
type GrantRevoker interface {
	Revoke(ctx context.Context, grantID string) error
}

// SetGrantRevoker makes every grant revocation (RFC 7009 revocation of
// either token, a replayed authorization code, refresh-token reuse) also
// record and announce the grant with r. Call it before serving.
func (s *Store) SetGrantRevoker(r GrantRevoker) { s.revoker = r }

// announceRevoked tells the fleet; a failure is ErrUnavailable, so the
// revocation request answers 503 and the client may retry.
func (s *Store) announceRevoked(ctx context.Context, id string) error {
	if s.revoker == nil {
		return nil
	}
	if err := s.revoker.Revoke(ctx, id); err != nil {
		return unavailable(err)
	}
	return nil
}

package server_test

import (
	"net/http"
	"testing"
)

// TestSecretsCodeReuseRevokesOnce: a code presented again after its
// redemption answers 400 invalid_grant and revokes its grant once — one
// announcement to the fleet (the revocation record's ZADD and its
// PUBLISH), one revocation mark and one deletion of the grant's record,
// as the real redis-server runs them (MONITOR), and one audit record —
// and every token of the first redemption then fails: introspection
// inactive, userinfo 401, refresh refused.
//
// The code handler revokes the grant once the replay passed the checks an
// unused code gets (codeGrantHandler, store.RevokeReplayedCode); fosite's
// own handler would revoke the grant's access and refresh tokens in turn,
// and no longer reaches the store (codeGrantFactory). That the store was not
// called is not visible from Redis: the request's scope already kept a
// revoked grant from being written twice (store.RevokeGrant). Broken on
// purpose — fosite's revocations passed to the store and that guard off —
// the test sees three of each (the audit record stays one:
// auditingRevoker writes a request's grant once).
func TestSecretsCodeReuseRevokesOnce(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	a := newAuthRequest(c)
	code := f.authorize(a)
	tr := f.exchange(c, a, code)
	if tr.Status != http.StatusOK || tr.RefreshToken == "" || tr.AccessToken == "" {
		t.Fatalf("first redemption: %d %s: %s", tr.Status, tr.Error, tr.Description)
	}
	id := grantIDOf(t, tr.AccessToken)
	m := monitorRedis(t, f.Redis)

	r := f.exchange(c, a, code)
	if r.Status != http.StatusBadRequest || r.Error != "invalid_grant" || r.AccessToken != "" || r.RefreshToken != "" {
		t.Fatalf("the code again: %d %s: %s (want 400 invalid_grant)", r.Status, r.Error, r.Description)
	}
	assertRevokedOnce(t, f, m, id, "token", "authorization code replayed (RFC 6749 §4.1.2)")
	assertRevoked(t, f, c, id, []string{tr.RefreshToken}, []string{tr.AccessToken})
}

package server_test

import (
	"net/http"
	"strings"
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
// The store revokes the grant before it answers fosite that the code was
// used (store.GetAuthorizeCodeSession); fosite's code handler would
// revoke the grant's access and refresh tokens in turn after it, and no
// longer reaches the store (codeGrantFactory). That the store was not
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
	var announced, recorded, marked, deleted int
	for _, cmd := range m.commands() {
		switch {
		case cmd[0] == "publish" && len(cmd) == 3 && strings.HasPrefix(cmd[2], id+" "):
			announced++
		case cmd[0] == "zadd" && len(cmd) > 1 && strings.HasSuffix(cmd[1], "revocation:grants") && cmd[len(cmd)-1] == id:
			recorded++
		case cmd[0] == "set" && len(cmd) > 1 && cmd[1] == "tollgate:as:revoked:{"+id+"}":
			marked++
		case cmd[0] == "del" && len(cmd) > 1 && cmd[1] == grantKey(id):
			deleted++
		}
	}
	if announced != 1 || recorded != 1 || marked != 1 || deleted != 1 {
		t.Errorf("the reused code's revocation in Redis: %d announcements, %d records, %d marks, %d deletions of the grant; want 1 each",
			announced, recorded, marked, deleted)
	}
	n := 0
	for _, e := range auditEvents(t, f) {
		if e["event"] == "revocation" && e["grant_id"] == id {
			n++
			if e["endpoint"] != "token" || e["reason"] != "authorization code replayed (RFC 6749 §4.1.2)" {
				t.Errorf("the revocation's audit record: %s", e["_line"])
			}
		}
	}
	if n != 1 {
		t.Errorf("%d revocation audit records of the grant, want 1", n)
	}
	assertRevoked(t, f, c, id, []string{tr.RefreshToken}, []string{tr.AccessToken})
}

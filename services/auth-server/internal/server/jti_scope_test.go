package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestAssertionJTIIsPerClient (brk47): the store keeps used client
// assertion ids under jti:<hash(jti)>, one namespace for every client
// (store.SetClientAssertionJWT), and fosite records the jti before it
// checks the assertion's aud. Anyone may run a private_key_jwt client (a
// Client ID Metadata Document with its own jwks_uri), so anyone may send
// an assertion, correctly signed by its own key, whose jti is a value
// another client will use: that client's assertion is then refused as a
// replay (invalid_client "jti ... MUST only be used once") for the
// lifetime of the record. RFC 7523 §3 item 7 has the server keep the
// jti values it has seen to refuse replays of a JWT; a jti chosen by
// another issuer is no replay (RFC 7519 §4.1.7: the jti is unique per
// issuer's JWT; an issuer anyone can be cannot be trusted to avoid
// another's values). Clients whose jti is predictable (a counter, a
// timestamp, a hash of the time — common in hand-written signers) are
// locked out by a third party. Expected: a jti is remembered per client.
func TestAssertionJTIIsPerClient(t *testing.T) {
	regA, assertA := keyJWTClient(t, "pkj-jti-a", "http://127.0.0.1:8979/a")
	regB, assertB := keyJWTClient(t, "pkj-jti-b", "http://127.0.0.1:8979/b")
	f := startFleetWith(t, nil, regA+regB)
	const jti = "2026-12-06T21:40:00Z" // a predictable jti
	try := func(id string, assertion func(aud, jti string, extra ...string) string) tokenResponse {
		c := devClient{ClientID: id, AuthMethod: "private_key_jwt"}
		return f.token(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"ory_rt_unknown.unknown"}, "client_id": {id},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion(f.Base+"/oauth/token", jti)}})
	}
	// The other party's assertion: authenticated (its refresh token is unknown).
	if r := try("pkj-jti-a", assertA); r.Status == http.StatusUnauthorized {
		t.Fatalf("pkj-jti-a: %d %s %q, want its assertion accepted", r.Status, r.Error, r.Description)
	}
	r := try("pkj-jti-b", assertB)
	if r.Status == http.StatusUnauthorized || strings.Contains(r.Description, "jti") {
		t.Errorf("pkj-jti-b, first use of its own assertion with a jti pkj-jti-a used: %d %s %q;\nwant it authenticated (400 invalid_grant for the unknown refresh token): another client's jti is no replay", r.Status, r.Error, r.Description)
	}
	// Its own replay stays refused.
	if r := try("pkj-jti-b", assertB); r.Status != http.StatusUnauthorized || !strings.Contains(r.Description, "already used") {
		t.Errorf("pkj-jti-b replaying its own jti: %d %s %q, want 401 invalid_client, already used", r.Status, r.Error, r.Description)
	}
}

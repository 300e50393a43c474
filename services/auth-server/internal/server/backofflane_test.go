package server_test

import (
	"net/http"
	"testing"
)

// TestBcryptSecretAfterOthersSpentTheBackoff: every GPT calls from
// OpenAI's few addresses, so wrong secrets sent for a client from one of
// them (anyone's GPT naming it) spend the (client, address) failure budget
// of the address the real client calls from too. Its correct bcrypt
// secret, not in the verified cache (CLIENT_SECRET_CACHE_TTL=0: none is),
// must still be accepted from there; wrong secrets stay 429.
func TestBcryptSecretAfterOthersSpentTheBackoff(t *testing.T) {
	op, _ := opClientYAML(t, opSecret1)
	f := startFleetWith(t, map[string]string{
		"TRUSTED_PROXIES": "127.0.0.1/32, ::1", "CLIENT_AUTH_FAILURE_LIMIT": "10", "CLIENT_SECRET_CACHE_TTL": "0",
	}, op)
	ops := devClient{ClientID: opClientID, ClientSecret: opSecret1}
	const egress = "192.0.2.200"
	for i := range 10 {
		if r := f.clientCall(clientReq{Form: postCreds(ops, "wrong", badRefresh()), ForwardFor: egress}); r.Status != http.StatusUnauthorized || r.Error != "invalid_client" {
			t.Fatalf("wrong secret %d: %d %s, want 401 invalid_client", i, r.Status, r.Error)
		}
	}
	assertLimited(t, "wrong secret with the budget spent", f.clientCall(clientReq{Form: postCreds(ops, "wrong", badRefresh()), ForwardFor: egress}))
	// Authenticated: the refresh token is refused (400 invalid_grant), not the client.
	if r := f.clientCall(clientReq{Form: postCreds(ops, opSecret1, badRefresh()), ForwardFor: egress}); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
		t.Errorf("correct bcrypt secret from the address in back-off: %d %s %s, want 400 invalid_grant", r.Status, r.Error, r.Description)
	}
	assertLimited(t, "wrong secret after the correct one", f.clientCall(clientReq{Form: postCreds(ops, "wrong-again", badRefresh()), ForwardFor: egress}))
}

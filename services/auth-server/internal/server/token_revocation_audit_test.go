package server_test

import (
	"net/http"
	"net/url"
	"testing"
)

// TestTokenEndpointRevocationOneRecordPerOutcome: a replayed authorization
// code or a reused refresh token whose grant revocation fails (the fleet's
// revocation records read-only) is answered 503, and each such request
// writes one revocation audit record of that outcome, naming the grant —
// not one per failed revocation attempt within the request — next to its
// grant (or refresh_reuse_detected) record. Once Redis takes writes again
// the next replay revokes the grant: one revocation record, ok.
func TestTokenEndpointRevocationOneRecordPerOutcome(t *testing.T) {
	f := startFleet(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32", "REFRESH_GRACE_PERIOD": "0s"})
	c := f.Clients["local-test"]
	var writable func()
	readOnly := func() {
		t.Helper()
		writable = f.Redis.RestrictKeys(t, "tollgate:revocation:", "%R")
	}
	token := func(addr string, form url.Values) tokenResponse {
		t.Helper()
		return f.clientCall(clientReq{BasicUser: url.QueryEscape(c.ClientID), BasicPass: url.QueryEscape(c.ClientSecret), Form: form, ForwardFor: addr})
	}
	// records are the audit records of the requests from addr, by event.
	records := func(addr string) map[string][]map[string]any {
		out := map[string][]map[string]any{}
		for _, e := range auditEvents(t, f) {
			if e["client_address"] == addr {
				ev, _ := e["event"].(string)
				out[ev] = append(out[ev], e)
			}
		}
		return out
	}
	oneRevocation := func(t *testing.T, addr, id, result, reason string) {
		t.Helper()
		recs := records(addr)
		if len(recs["revocation"]) != 1 {
			t.Fatalf("%d revocation records for the request, want 1: %v", len(recs["revocation"]), eventsFrom(t, f, addr))
		}
		e := recs["revocation"][0]
		for k, v := range map[string]any{"result": result, "grant_id": id, "endpoint": "token", "reason": reason, "client_id": c.ClientID} {
			if e[k] != v {
				t.Errorf("revocation record %s = %v, want %v: %s", k, e[k], v, e["_line"])
			}
		}
	}

	t.Run("replayed code", func(t *testing.T) {
		const reason = "authorization code replayed (RFC 6749 §4.1.2)"
		a := newAuthRequest(c)
		code := f.authorize(a)
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.RedirectURI}, "code_verifier": {a.Verifier}}
		tr := token("198.51.100.91", form)
		if tr.Status != http.StatusOK {
			t.Fatalf("redemption: %d %s %s", tr.Status, tr.Error, tr.Description)
		}
		id := grantIDOf(t, tr.AccessToken)
		readOnly()
		for _, addr := range []string{"198.51.100.92", "198.51.100.93"} {
			if r := token(addr, form); r.Status != http.StatusServiceUnavailable || r.Error != "temporarily_unavailable" {
				t.Fatalf("replay whose revocation fails: %d %s %s", r.Status, r.Error, r.Description)
			}
			oneRevocation(t, addr, id, "temporarily_unavailable", reason)
		}
		writable()
		r := untilServed(t, func() tokenResponse { return token("198.51.100.94", form) })
		if r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Fatalf("replay after recovery: %d %s %s", r.Status, r.Error, r.Description)
		}
		oneRevocation(t, "198.51.100.94", id, "ok", reason)
		// The grant is revoked: a further replay revokes nothing again.
		for _, addr := range []string{"198.51.100.98", "198.51.100.99"} {
			if r := token(addr, form); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
				t.Fatalf("replay of a revoked grant's code: %d %s %s", r.Status, r.Error, r.Description)
			}
			if recs := records(addr); len(recs["revocation"]) != 0 {
				t.Errorf("replay of a revoked grant's code: %d revocation records: %v", len(recs["revocation"]), eventsFrom(t, f, addr))
			}
		}
	})

	t.Run("reused refresh token", func(t *testing.T) {
		const reason = "rotated refresh token reused (RFC 9700 §4.14.2)"
		tr := f.fullFlow(c, newAuthRequest(c))
		id := grantIDOf(t, tr.AccessToken)
		if r := f.refresh(c, tr.RefreshToken); r.Status != http.StatusOK {
			t.Fatalf("refresh: %d %s %s", r.Status, r.Error, r.Description)
		}
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}
		readOnly()
		for _, addr := range []string{"198.51.100.95", "198.51.100.96"} {
			if r := token(addr, form); r.Status != http.StatusServiceUnavailable || r.Error != "temporarily_unavailable" {
				t.Fatalf("reuse whose revocation fails: %d %s %s", r.Status, r.Error, r.Description)
			}
			oneRevocation(t, addr, id, "temporarily_unavailable", reason)
		}
		writable()
		r := untilServed(t, func() tokenResponse { return token("198.51.100.97", form) })
		if r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Fatalf("reuse after recovery: %d %s %s", r.Status, r.Error, r.Description)
		}
		oneRevocation(t, "198.51.100.97", id, "ok", reason)
	})
}

package server_test

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"testing"
)

// TestFailedKeyJWTAuditNamesLookedUpClient: a private_key_jwt request
// that sends no client_id (RFC 7523 §3) and fails authentication — its
// assertion signed with a key the client did not register — is recorded
// at the token, revocation and introspection endpoints as a
// client_authentication_failure naming the client fosite looked up (the
// assertion's "sub"), marked client_authenticated:false; before, the
// record named none. The id is the one fosite passed to the client store,
// not the assertion decoded again: with "sub" and a "Sub" naming another
// client (a case-insensitive decoding, such as encoding/json's into a
// struct, would read the last), the record names "sub"'s client. An
// assertion that does not parse has no client fosite looked up: the
// record names none.
func TestFailedKeyJWTAuditNamesLookedUpClient(t *testing.T) {
	const id = "pkj-audited"
	redirect := "http://127.0.0.1:8978/pkj-audit-callback"
	registry, _ := keyJWTClient(t, id, redirect)
	// The same claims, signed with a key the registry does not hold.
	_, wrongKey := keyJWTClient(t, id, redirect)
	f := startFleetWith(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32"}, registry)
	tokenURL := f.Base + "/oauth/token"
	assertion := func(jwt string) url.Values {
		return url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {jwt}}
	}
	with := func(form url.Values, more url.Values) url.Values {
		for k, v := range more {
			form[k] = v
		}
		return form
	}
	endpoints := []struct {
		name, path string
		form       func() url.Values
	}{
		{"token", "/oauth/token", badRefresh},
		{"revoke", "/oauth/revoke", func() url.Values { return url.Values{"token": {"unknown-" + rand.Text()}} }},
		{"introspect", "/oauth/introspect", func() url.Values { return url.Values{"token": {"unknown-" + rand.Text()}} }},
	}
	for i, ep := range endpoints {
		for j, tc := range []struct {
			name, assertion, want string
		}{
			{"signed with another key", wrongKey(tokenURL, rand.Text()), id},
			{"signed with another key, Sub naming another client", wrongKey(tokenURL, rand.Text(), `"Sub":"local-test"`), id},
			{"not a JWT", "not-a-jwt", ""},
		} {
			t.Run(ep.name+": "+tc.name, func(t *testing.T) {
				addr := fmt.Sprintf("198.51.100.%d", 100+10*i+j)
				r := f.clientCall(clientReq{Path: ep.path, Form: with(ep.form(), assertion(tc.assertion)), ForwardFor: addr})
				if r.Status != http.StatusUnauthorized || r.Error != "invalid_client" {
					t.Fatalf("%d %s %s, want 401 invalid_client", r.Status, r.Error, r.Description)
				}
				e := findEvent(auditEvents(t, f), map[string]any{"event": "client_authentication_failure", "client_address": addr, "endpoint": ep.name})
				if e == nil {
					t.Fatalf("no client_authentication_failure record; records: %v", eventsFrom(t, f, addr))
				}
				if tc.want == "" {
					if _, named := e["client_id"]; named {
						t.Errorf("the record names client_id %v, want none: %s", e["client_id"], e["_line"])
					}
					return
				}
				if e["client_id"] != tc.want || e["client_authenticated"] != false {
					t.Errorf("the record names client_id %v (client_authenticated %v), want %s unverified: %s",
						e["client_id"], e["client_authenticated"], tc.want, e["_line"])
				}
			})
		}
	}
}

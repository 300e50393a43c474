package server_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
)

// A used authorization code revokes the grant it created only when it is
// presented as its redemption would have had to be (codes50 #1): by the
// client it was issued to (the authenticated confidential client, or a
// public client's client_id), with its redirect_uri and the PKCE verifier
// of its challenge (OAuth 2.1 §4.1.3, RFC 6749 §4.1.2, RFC 9700 §4.5).
// Any other presentation gets exactly what the same presentation of the
// unused code got, and the grant lives on: a code leaked without its
// verifier (browser history, a Referer, a log) ends nothing.

// codePresentation is one way of presenting a code at the token endpoint.
type codePresentation struct {
	name   string
	client devClient
	a      *authRequest
}

// badPresentations are the presentations of a's code (issued to c) that an
// unused code refuses: a wrong verifier, none, another redirect_uri, none,
// and another client with valid credentials (confidential), and, for a
// confidential client's code, a public client's client_id.
func badPresentations(f *fleet, c devClient, a *authRequest) []codePresentation {
	with := func(mod func(*authRequest)) *authRequest {
		b := *a
		mod(&b)
		return &b
	}
	other := f.Clients["gpt-actions"]
	ps := []codePresentation{
		{"a wrong code_verifier", c, with(func(b *authRequest) { b.Verifier = strings.Repeat("x", 43) })},
		{"no code_verifier", c, with(func(b *authRequest) { b.Verifier = "" })},
		{"another redirect_uri", c, with(func(b *authRequest) { b.RedirectURI = a.RedirectURI + "/other" })},
		{"no redirect_uri", c, with(func(b *authRequest) { b.RedirectURI = "" })},
		{"another confidential client, its credentials valid", other, with(func(b *authRequest) { b.RedirectURI = other.RedirectURIs[0] })},
	}
	if c.AuthMethod != "none" {
		pub := f.Clients["test-public"]
		ps = append(ps, codePresentation{"a public client's client_id", pub, with(func(b *authRequest) { b.RedirectURI = pub.RedirectURIs[0] })})
	}
	return ps
}

// revocationRecords counts the revocation audit records of grant id.
func revocationRecords(t *testing.T, f *fleet, id string) int {
	t.Helper()
	n := 0
	for _, e := range auditEvents(t, f) {
		if e["event"] == "revocation" && e["grant_id"] == id {
			n++
		}
	}
	return n
}

// assertGrantLive checks that grant id was not revoked: its record exists,
// it is not in the fleet's revocation records, its access token opens
// userinfo and introspects active (to the resource server rs).
func assertGrantLive(t *testing.T, f *fleet, rs devClient, id, access string) {
	t.Helper()
	if g := readGrant(t, f, id); !g.exists {
		t.Errorf("grant %s: no record (revoked)", id)
	}
	if revokedInFleet(t, f, id) {
		t.Errorf("grant %s is in the fleet's revocation records", id)
	}
	if st, _ := f.userinfo(access); st != http.StatusOK {
		t.Errorf("userinfo with the grant's access token: %d, want 200", st)
	}
	if !active(t, f, rs, access) {
		t.Errorf("the grant's access token introspects inactive")
	}
	if n := revocationRecords(t, f, id); n != 0 {
		t.Errorf("%d revocation audit records of grant %s, want none", n, id)
	}
}

// TestUsedCodeRevokesOnlyForARedeemingPresentation: for a public client's
// code and a confidential client's, each bad presentation of the used code
// answers what it answered while the code was unused — never "already
// used" — and leaves the grant live (record, fleet, userinfo,
// introspection, refresh, no revocation record); then the client's own
// replay (client, redirect_uri, verifier all right) is 400 invalid_grant
// "already been used" and revokes the grant, with one revocation record,
// the refreshed tokens included.
//
// Without the fix (the store revoking as soon as it reads the used mark)
// the first bad presentation revokes the grant and answers "already used".
func TestUsedCodeRevokesOnlyForARedeemingPresentation(t *testing.T) {
	extra, cs := standardsClients(t)
	f := startFleetWith(t, nil, extra)
	rs := cs["test-rs"]
	for _, owner := range []string{"test-public", "local-test"} {
		t.Run(owner, func(t *testing.T) {
			c := f.Clients[owner]
			a := newAuthRequest(c)
			code := f.authorize(a)
			bad := badPresentations(f, c, a)
			unused := make([]tokenResponse, len(bad))
			for i, p := range bad {
				unused[i] = f.exchange(p.client, p.a, code)
				if unused[i].Status == http.StatusOK || unused[i].Status >= 500 {
					t.Fatalf("%s, the code unused: %d %s: %s (want a refusal)", p.name, unused[i].Status, unused[i].Error, unused[i].Description)
				}
			}
			tr := f.exchange(c, a, code)
			if tr.Status != http.StatusOK || tr.AccessToken == "" || tr.RefreshToken == "" {
				t.Fatalf("the redemption after the refusals: %d %s: %s", tr.Status, tr.Error, tr.Description)
			}
			id := grantIDOf(t, tr.AccessToken)

			for i, p := range bad {
				got := f.exchange(p.client, p.a, code)
				if got.Status != unused[i].Status || got.Error != unused[i].Error || got.Description != unused[i].Description {
					t.Errorf("%s, the code used: %d %s %q\nwant as unused: %d %s %q", p.name,
						got.Status, got.Error, got.Description, unused[i].Status, unused[i].Error, unused[i].Description)
				}
				if strings.Contains(got.Description, "already been used") {
					t.Errorf("%s: told the code was used: %q", p.name, got.Description)
				}
			}
			assertGrantLive(t, f, rs, id, tr.AccessToken)
			rt := f.refresh(c, tr.RefreshToken)
			if rt.Status != http.StatusOK || rt.AccessToken == "" {
				t.Fatalf("refresh after the bad presentations: %d %s: %s", rt.Status, rt.Error, rt.Description)
			}

			// The client's own replay: denied, and the grant revoked.
			r := f.exchange(c, a, code)
			if r.Status != http.StatusBadRequest || r.Error != "invalid_grant" || r.Description != baselineInvalid+" The authorization code has already been used." || r.AccessToken != "" {
				t.Fatalf("the client's replay: %d %s: %s", r.Status, r.Error, r.Description)
			}
			if g := readGrant(t, f, id); g.exists || !revokedInFleet(t, f, id) {
				t.Errorf("after the client's replay: record %v, in the fleet's revocation records %v; want revoked", g.exists, revokedInFleet(t, f, id))
			}
			for _, at := range []string{tr.AccessToken, rt.AccessToken} {
				if st, _ := f.userinfo(at); st != http.StatusUnauthorized {
					t.Errorf("userinfo with an access token of the revoked grant: %d, want 401", st)
				}
				if active(t, f, rs, at) {
					t.Errorf("an access token of the revoked grant introspects active")
				}
			}
			if r := f.refresh(c, rt.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
				t.Errorf("refresh of the revoked grant: %d %s", r.Status, r.Error)
			}
			if n := revocationRecords(t, f, id); n != 1 {
				t.Errorf("%d revocation audit records of grant %s, want 1", n, id)
			}
			// Refused as before once revoked, revoking nothing more.
			for i, p := range bad {
				if got := f.exchange(p.client, p.a, code); got.Status != unused[i].Status || got.Error != unused[i].Error {
					t.Errorf("%s after the revocation: %d %s", p.name, got.Status, got.Error)
				}
			}
			if r := f.exchange(c, a, code); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
				t.Errorf("a second replay: %d %s", r.Status, r.Error)
			}
			if n := revocationRecords(t, f, id); n != 1 {
				t.Errorf("%d revocation audit records of grant %s after more replays, want 1", n, id)
			}
		})
	}
}

// TestUsedCodeConcurrentPresentations: 50 concurrent presentations of one
// fresh public client's code, half with its verifier and half with a wrong
// one: exactly one 200; the wrong ones the PKCE refusal; the right losers
// "already used" — they used the code too, so the winner's grant is
// revoked (OAuth 2.1 §4.1.3). Then, of another code redeemed once, 50
// concurrent replays with a wrong verifier revoke nothing: the grant is
// live and refreshes.
func TestUsedCodeConcurrentPresentations(t *testing.T) {
	extra, cs := standardsClients(t)
	// 50 code grants at once on a loaded machine: their signing turns
	// wait longer than the 2 s default, which would answer 503 instead.
	f := startFleetWith(t, map[string]string{"SIGNING_QUEUE_WAIT": "1m"}, extra)
	rs := cs["test-rs"]
	c := f.Clients["test-public"]
	wrong := func(a *authRequest) *authRequest {
		b := *a
		b.Verifier = strings.Repeat("w", 43)
		return &b
	}
	const n = 50
	concurrently := func(do func(i int) tokenResponse) []tokenResponse {
		out := make([]tokenResponse, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range out {
			wg.Add(1)
			go func() { defer wg.Done(); <-start; out[i] = do(i) }()
		}
		close(start)
		wg.Wait()
		return out
	}
	const pkceRefused = baselineInvalid + " The PKCE code challenge did not match the code verifier."

	a := newAuthRequest(c)
	code := f.authorize(a)
	out := concurrently(func(i int) tokenResponse {
		if i%2 == 0 {
			return f.exchange(c, a, code)
		}
		return f.exchange(c, wrong(a), code)
	})
	var winner *tokenResponse
	for i, tr := range out {
		switch {
		case tr.Status == http.StatusOK && i%2 == 0:
			if winner != nil {
				t.Fatal("two 200s for one code")
			}
			winner = &out[i]
		case i%2 == 1 && (tr.Status != http.StatusBadRequest || tr.Description != pkceRefused):
			t.Errorf("a wrong verifier: %d %s: %s", tr.Status, tr.Error, tr.Description)
		case i%2 == 0 && (tr.Status != http.StatusBadRequest || tr.Error != "invalid_grant"):
			t.Errorf("a losing redemption: %d %s: %s", tr.Status, tr.Error, tr.Description)
		}
	}
	if winner == nil {
		t.Fatalf("no 200 among %d concurrent redemptions", n)
	}
	id := grantIDOf(t, winner.AccessToken)
	if g := readGrant(t, f, id); g.exists || !revokedInFleet(t, f, id) {
		t.Errorf("the winner's grant after %d other redemptions with the verifier: record %v, revoked %v; want revoked", n/2-1, g.exists, revokedInFleet(t, f, id))
	}

	a = newAuthRequest(c)
	code = f.authorize(a)
	tr := f.exchange(c, a, code)
	if tr.Status != http.StatusOK {
		t.Fatalf("redemption: %d %s: %s", tr.Status, tr.Error, tr.Description)
	}
	id = grantIDOf(t, tr.AccessToken)
	for _, r := range concurrently(func(int) tokenResponse { return f.exchange(c, wrong(a), code) }) {
		if r.Status != http.StatusBadRequest || r.Description != pkceRefused {
			t.Errorf("a replay with a wrong verifier: %d %s: %s", r.Status, r.Error, r.Description)
		}
	}
	assertGrantLive(t, f, rs, id, tr.AccessToken)
	if r := f.refresh(c, tr.RefreshToken); r.Status != http.StatusOK {
		t.Errorf("refresh after %d replays with a wrong verifier: %d %s: %s", n, r.Status, r.Error, r.Description)
	}
}

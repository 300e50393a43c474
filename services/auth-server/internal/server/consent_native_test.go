package server_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRememberedConsentNotForPublicLoopbackRedirects: RFC 8252 §8.6 — a
// server that cannot verify a client's identity SHOULD NOT process its
// request automatically, also after the user approved the client before.
// A public client's loopback redirect proves nothing: any local process
// can listen on a port of it and send the public client_id (brkattack:
// approved once on :1111, a fresh browser on :2222 got a code with no
// page). Such a request always gets the consent page — on another port,
// on the approved one, for a DCR client and for one known by its Client
// ID Metadata Document. A confidential client (it authenticates at the
// token endpoint) and a public client's https redirect keep the
// remembered approval.
func TestRememberedConsentNotForPublicLoopbackRedirects(t *testing.T) {
	var cimdID string
	cimd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"client_id":"` + cimdID + `","client_name":"Native CIMD","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}`))
	}))
	defer cimd.Close()
	cimdID = cimd.URL + "/client.json"
	f := startFleet(t, nil)

	dcr := func(body string) devClient {
		t.Helper()
		st, reg := register(t, f, body)
		if st != http.StatusCreated {
			t.Fatalf("register %s: %d %v", body, st, reg)
		}
		secret, _ := reg["client_secret"].(string)
		var uris []string
		for _, u := range reg["redirect_uris"].([]any) {
			uris = append(uris, u.(string))
		}
		return devClient{ClientID: reg["client_id"].(string), ClientSecret: secret, RedirectURIs: uris, AuthMethod: reg["token_endpoint_auth_method"].(string)}
	}
	request := func(c devClient, redirect string) *authRequest {
		a := newAuthRequest(c)
		a.RedirectURI, a.Resource = redirect, f.Base+"/mcp"
		return a
	}
	approveOnce := func(c devClient, redirect string) {
		t.Helper()
		a := request(c, redirect)
		b, p := consentPage(t, f, a)
		if tr := f.exchange(c, a, approve(t, b, p)); tr.Status != http.StatusOK {
			t.Fatalf("%s: token after approval: %d %s %s", redirect, tr.Status, tr.Error, tr.Description)
		}
	}
	asks := func(c devClient, redirect string) {
		t.Helper()
		p := f.login(newBrowser(t, redirect), request(c, redirect))
		if p.Location != nil || p.Status != http.StatusOK || !strings.Contains(p.Body, `value="approve"`) {
			t.Errorf("%s: want the consent page (RFC 8252 §8.6), got %d %v", redirect, p.Status, p.Location)
		}
	}
	skips := func(c devClient, redirect string) {
		t.Helper()
		if code := f.authorize(request(c, redirect)); code == "" {
			t.Errorf("%s: no code", redirect)
		}
	}

	native := dcr(`{"redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none","client_name":"Native DCR"}`)
	approveOnce(native, "http://127.0.0.1:1111/cb")
	asks(native, "http://127.0.0.1:2222/cb")
	asks(native, "http://127.0.0.1:1111/cb")

	localhost := dcr(`{"redirect_uris":["http://localhost:8977/cb"],"token_endpoint_auth_method":"none","client_name":"Native localhost"}`)
	approveOnce(localhost, "http://localhost:8977/cb")
	asks(localhost, "http://localhost:8977/cb")

	byDocument := devClient{ClientID: cimdID, RedirectURIs: []string{"http://127.0.0.1/cb"}, AuthMethod: "none"}
	approveOnce(byDocument, "http://127.0.0.1:1111/cb")
	asks(byDocument, "http://127.0.0.1:2222/cb")

	web := dcr(`{"redirect_uris":["https://web-app.example/cb"],"token_endpoint_auth_method":"none","client_name":"Public web app"}`)
	approveOnce(web, "https://web-app.example/cb")
	skips(web, "https://web-app.example/cb")

	// An https redirect to a loopback host proves no more than http: no
	// one owns the origin, and a local process with a locally trusted
	// certificate (mkcert) serves it (review4).
	for i, redirect := range []string{"https://localhost:8443/cb", "https://127.0.0.1:8443/cb", "https://[::1]:8443/cb",
		"https://app.localhost:8443/cb", "https://localhost.:8443/cb", "https://0.0.0.0/cb", "https://[::]/cb"} {
		c := dcr(fmt.Sprintf(`{"redirect_uris":[%q],"token_endpoint_auth_method":"none","client_name":"Public https loopback %d"}`, redirect, i))
		approveOnce(c, redirect)
		asks(c, redirect)
	}

	confidential := dcr(`{"redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"client_secret_basic","client_name":"Confidential loopback"}`)
	approveOnce(confidential, "http://127.0.0.1:1111/cb")
	skips(confidential, "http://127.0.0.1:2222/cb")
}

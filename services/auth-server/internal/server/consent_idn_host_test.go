package server_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestConsentPageShowsAnInternationalHostAsBrowsersResolveIt: a redirect
// URI with an internationalized host (registration takes it, RFC 5891 /
// UTS #46) gets a consent page that names the host in its ASCII form, the
// one DNS and the browser resolve, and a form-action that admits it. Shown
// as registered, a Cyrillic "а" made https://аpple.com/cb read as
// apple.com ("It will return to аpple.com"), and the CSP left the
// non-ASCII origin out, so a browser would block the approval's redirect
// (form-action covers redirects after a form submission, CSP3 §6.3.3).
// (An empty port, "app.example:", or one with a leading zero is no longer
// registered: TestLoopbackRedirectSpellings.)
func TestConsentPageShowsAnInternationalHostAsBrowsersResolveIt(t *testing.T) {
	f := startFleet(t, nil)
	for _, tc := range []struct{ redirect, ascii string }{
		{"https://аpple.com/cb", "xn--pple-43d.com"},                  // Cyrillic а (U+0430)
		{"https://bücher.example/cb", "xn--bcher-kva.example"},        // one script, still ASCII
		{"https://ＡＰＰ.example:8443/cb", "app.example:8443"},           // full-width letters map to app
		{"https://xn--bcher-kva.example/cb", "xn--bcher-kva.example"}, // already ASCII
	} {
		st, reg := register(t, f, `{"redirect_uris":[`+jsonString(tc.redirect)+`],"token_endpoint_auth_method":"none","client_name":"IDN"}`)
		if st != http.StatusCreated {
			t.Fatalf("register %s: %d %v", tc.redirect, st, reg)
		}
		c := devClient{ClientID: reg["client_id"].(string), RedirectURIs: []string{tc.redirect}, AuthMethod: "none"}
		p := f.login(newBrowser(t, "https://"), newAuthRequest(c))
		if p.Status != http.StatusOK || !strings.Contains(p.Body, "consent_id") {
			t.Fatalf("%s: want the consent page: %d %v\n%s", tc.redirect, p.Status, p.Location, p.Body)
		}
		if want := "It will return to <strong>" + tc.ascii + "</strong>."; !strings.Contains(p.Body, want) {
			t.Errorf("%s: the page does not say %q:\n%s", tc.redirect, want, p.Body)
		}
		if want := "form-action 'self' https://" + tc.ascii; !strings.HasSuffix(p.Header.Get("Content-Security-Policy"), want) {
			t.Errorf("%s: CSP %q, want it to end with %q", tc.redirect, p.Header.Get("Content-Security-Policy"), want)
		}
	}
}

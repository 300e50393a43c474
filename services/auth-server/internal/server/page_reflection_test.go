package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestErrorPagesSayOnlyOurWords (brk47): the authorization endpoint's
// error page now says fixed words (TestAuthorizeErrorPageSaysOnlyOurWords),
// but the callback's and the consent endpoint's pages — same origin, same
// template — printed a description built from the request: guard's
// "parameter <name> is repeated" quotes a parameter NAME of the sender's
// choosing. Anyone could link a victim to
//
//	GET /oauth/callback?Your account is locked, call 555-0100=1&Your account is locked, call 555-0100=2
//
// (or auto-submit a cross-site form to POST /oauth/consent: guard answers
// before the consent handler's CSRF check) and the auth-server's own page
// shows the sender's sentence under its name: the reflected content that
// 70525eac removed from the authorization error page. Expected: the
// pages of every browser-facing endpoint say only our words; the detail
// goes to the JSON answer and the log.
func TestErrorPagesSayOnlyOurWords(t *testing.T) {
	f := startFleet(t, nil)
	const bait = "Your account is locked, call 555-0100"
	q := url.Values{bait: {"1", "2"}}.Encode()
	pages := map[string]*page{
		"GET /oauth/callback": newBrowser(t).get(f.Base + "/oauth/callback?" + q),
	}
	req, _ := http.NewRequest(http.MethodPost, f.Base+"/oauth/consent", strings.NewReader(q))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	pages["POST /oauth/consent"] = newBrowser(t).do(req)
	for name, p := range pages {
		if p.Status != http.StatusBadRequest || !strings.Contains(p.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: %d %s, want the 400 error page", name, p.Status, p.Header.Get("Content-Type"))
		}
		if strings.Contains(p.Body, bait) || strings.Contains(p.Body, "555-0100") {
			t.Errorf("%s: the auth-server's page repeats the sender's text %q:\n%s", name, bait, p.Body)
		}
	}
}

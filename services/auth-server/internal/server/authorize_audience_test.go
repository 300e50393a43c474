package server_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestAuthorizeAudienceRefusalBounded: an authorization request's audience
// value the client may not use is refused at its redirect URI with RFC
// 8707 §2's invalid_target and what the client may use, the value not
// repeated, short or long — anyone may build the request with the
// client's id and redirect URI, and the description reaches that client.
// Before, fosite's audience check repeated the value, the description cut
// only at 512 bytes.
func TestAuthorizeAudienceRefusalBounded(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	refusal := func(audience string) string {
		t.Helper()
		a := newAuthRequest(c)
		a.Extra = map[string][]string{"audience": {audience}}
		p := newBrowser(t, c.RedirectURIs[0], f.IdP.Issuer).get(a.URL(f.Base))
		if p.Location == nil || !strings.HasPrefix(p.Location.String(), c.RedirectURIs[0]) {
			t.Fatalf("audience of %d bytes: %d %.300v, want a redirect to the client", len(audience), p.Status, p.Location)
		}
		q := p.Location.Query()
		if q.Get("error") != "invalid_target" || q.Get("state") != a.State {
			t.Fatalf("audience of %d bytes: %.300v, want invalid_target with the state", len(audience), p.Location)
		}
		return q.Get("error_description")
	}

	for _, audience := range []string{
		"https://elsewhere.example/api",
		"https://x.example/Call_+1-555-0100_now,_your_account_is_locked",
		"https://x.example/" + strings.Repeat("Call_+1-555-0100_now,_your_account_is_locked._", 40),
	} {
		d := refusal(audience)
		if strings.Contains(d, "elsewhere.example") || strings.Contains(d, "your_account_is_locked") {
			t.Errorf("audience of %d bytes: the description repeats it: %.200q", len(audience), d)
		}
		if want := "The audience is not allowed for this client: it may use " + f.Base + "/mcp"; !strings.Contains(d, want) ||
			!strings.Contains(d, "(its resources in CLIENTS_FILE)") {
			t.Errorf("audience of %d bytes: description %q, want %q and where that is set", len(audience), d, want)
		}
	}
	if p := newBrowser(t).get(newAuthRequest(c).URL(f.Base)); p.Status != http.StatusOK {
		t.Errorf("a usual request after: %d", p.Status)
	}
}

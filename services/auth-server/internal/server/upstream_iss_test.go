package server_test

import (
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/dev-idp/idptest"
)

// answer runs the sign-in up to the client's redirect and returns its
// error, error_description and whether it carried a code.
func (f *fleet) answer(t *testing.T) (code, desc string, hasCode bool) {
	t.Helper()
	c := f.Clients["local-test"]
	a := newAuthRequest(c)
	p := f.login(newBrowser(t, c.RedirectURIs[0]), a)
	if p.Location == nil {
		t.Fatalf("no redirect to the client: %d %s\n%s", p.Status, p.URL, p.Body)
	}
	q := p.Location.Query()
	if q.Get("state") != a.State {
		t.Fatalf("redirect %s without the state", p.Location)
	}
	return q.Get("error"), q.Get("error_description"), q.Get("code") != ""
}

// TestUpstreamResponseIssuer: the iss parameter of the provider's
// authorization response (RFC 9207) is checked, in a code and in an
// error answer alike: another issuer's is refused, and so is none from a
// provider whose discovery says authorization_response_iss_parameter_supported
// (§2.4); a provider that neither sends nor advertises it still works.
// Before, iss was ignored: a response naming https://attacker.example
// completed, and a forged error was relayed as the provider's.
func TestUpstreamResponseIssuer(t *testing.T) {
	for name, shape := range map[string]idptest.Shape{
		"advertised and sent":         {IssParameterSupported: true, AuthorizeIss: "{issuer}"},
		"sent, not advertised":        {AuthorizeIss: "{issuer}"},
		"neither sent nor advertised": {},
		// A parameter sent without a value is one omitted (RFC 6749 §3.1).
		"empty, not advertised": {AuthorizeIss: "{empty}"},
	} {
		t.Run(name, func(t *testing.T) {
			shape.UserinfoClaims = fullProfile
			f, _ := startShaped(t, shape, nil)
			wantProfile(t, f.signIn(t), idptest.Subject, "ada@example.com", true, "Ada Lovelace")
		})
	}
	refused := map[string]idptest.Shape{
		"another issuer":                {AuthorizeIss: "https://attacker.example"},
		"another issuer, advertised":    {IssParameterSupported: true, AuthorizeIss: "https://attacker.example"},
		"the issuer with a slash":       {AuthorizeIss: "{issuer}/"},
		"another issuer's prefix":       {AuthorizeIss: "{base}x"},
		"empty, advertised":             {IssParameterSupported: true, AuthorizeIss: "{empty}"},
		"missing, though advertised":    {IssParameterSupported: true},
		"forged error":                  {AuthorizeError: "access_denied", AuthorizeIss: "https://attacker.example"},
		"error without iss, advertised": {IssParameterSupported: true, AuthorizeError: "temporarily_unavailable"},
	}
	for name, shape := range refused {
		t.Run("refused/"+name, func(t *testing.T) {
			f, _ := startShaped(t, shape, nil)
			code, desc, hasCode := f.answer(t)
			if code != "server_error" || hasCode || !strings.Contains(desc, "RFC 9207") {
				t.Errorf("error=%q (%s), code %v; want server_error naming RFC 9207", code, desc, hasCode)
			}
		})
	}
	t.Run("the provider's own error is relayed", func(t *testing.T) {
		f, _ := startShaped(t, idptest.Shape{IssParameterSupported: true, AuthorizeError: "access_denied", AuthorizeIss: "{issuer}"}, nil)
		if code, desc, _ := f.answer(t); code != "access_denied" {
			t.Errorf("error=%q (%s), want access_denied", code, desc)
		}
	})
}

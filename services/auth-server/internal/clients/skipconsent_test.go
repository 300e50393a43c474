package clients

import (
	"fmt"
	"strings"
	"testing"
)

// TestSkipConsentRefusedForPublicClientsWithoutProvenRedirects: RFC 8252
// §8.6 — a public client's identity is not proven by a redirect URI any
// local app can receive (http, on a loopback address or any host in
// development; https on a loopback host). skip_consent would hand such a
// request a code without the user's approval, so a registry with such a
// client is refused, naming the client, the redirect URI and the rule
// (the rule ApprovalReusable applies to a remembered approval). A public
// client whose redirect URIs are all https on a host it owns, and a
// confidential client (it proves itself at the token endpoint) with any
// redirect URI, keep skip_consent.
func TestSkipConsentRefusedForPublicClientsWithoutProvenRedirects(t *testing.T) {
	const hash = "$2a$04$abcdefghijklmnopqrstuuJ9yW2q7bq4o0m6c9o6oRr4rO6hQyF2e"
	rules := Rules{Resources: []string{"https://mcp.example/mcp"}}
	entry := func(id, method, hashLine, skip string, uris ...string) string {
		return fmt.Sprintf(`
  - client_id: %s
    redirect_uris: [%s]
    token_endpoint_auth_method: %s
    resources: ["https://mcp.example/mcp"]
%s%s`, id, `"`+strings.Join(uris, `", "`)+`"`, method, hashLine, skip)
	}
	const skip = "    skip_consent: true\n"
	secret := `    client_secret_hash: "` + hash + `"` + "\n"
	rule := func(id, uri string) string {
		return fmt.Sprintf(`client %q: skip_consent is refused for a public client (token_endpoint_auth_method none) with redirect URI %q: `+
			`a code sent there does not prove which app asked, since any local app can listen on it (RFC 8252 section 8.6), `+
			`so the user must approve on the consent page; remove skip_consent, or register only https redirect URIs on a host the app owns`, id, uri)
	}

	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"loopback IP", entry("native", "none", "", skip, "http://127.0.0.1:8976/cb"),
			[]string{rule("native", "http://127.0.0.1:8976/cb")}},
		{"localhost without a port", entry("native", "none", "", skip, "http://localhost/cb"),
			[]string{rule("native", "http://localhost/cb")}},
		{"https on a loopback host", entry("native", "none", "", skip, "https://localhost:8443/cb"),
			[]string{rule("native", "https://localhost:8443/cb")}},
		{"http on another host (development)", entry("native", "none", "", skip, "http://app.example/cb"),
			[]string{rule("native", "http://app.example/cb")}},
		{"one of several", entry("mixed", "none", "", skip, "https://app.example/cb", "http://[::1]:9000/cb", "https://127.0.0.1/cb"),
			[]string{rule("mixed", "http://[::1]:9000/cb"), rule("mixed", "https://127.0.0.1/cb")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, problems := Parse([]byte("clients:"+tc.doc), rules)
			if strings.Join(problems, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(problems, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}

	// Kept: a public client with only https redirects on a host it owns,
	// a confidential client on loopback, and a public loopback client
	// without skip_consent (it gets the consent page).
	s, problems := Parse([]byte("clients:"+
		entry("web-public", "none", "", skip, "https://app.example/cb", "https://app.example/other")+
		entry("confidential", "client_secret_basic", secret, skip, "http://127.0.0.1:8976/cb", "https://localhost/cb")+
		entry("native", "none", "", "", "http://127.0.0.1:8976/cb")), rules)
	if len(problems) != 0 {
		t.Fatalf("problems %q, want none", problems)
	}
	for id, needs := range map[string]bool{"web-public": false, "confidential": false, "native": true} {
		c, err := s.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if c.NeedsConsent() != needs {
			t.Errorf("%s: NeedsConsent %v, want %v", id, c.NeedsConsent(), needs)
		}
	}
}

package clients_test

import (
	"testing"

	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
)

func TestMatchRedirectURI(t *testing.T) {
	reg := []string{"https://app.example/cb", "http://127.0.0.1:8976/callback", "http://[::1]/cb?x=1", "http://localhost:3000/cb"}
	for _, tc := range []struct {
		uri  string
		want bool
	}{
		{"https://app.example/cb", true},
		{"https://app.example:443/cb", false}, // exact: an explicit default port is another string
		{"https://APP.example/cb", false},
		{"https://app.example/CB", false},
		{"https://app.example/cb/", false},
		{"https://app.example/cb?x=1", false},
		{"http://127.0.0.1:8976/callback", true},
		{"http://127.0.0.1:51234/callback", true}, // RFC 8252 §7.3: any port
		{"http://127.0.0.1:65535/callback", true},
		{"http://127.0.0.1:0/callback", false}, // not a TCP port a client listens on
		{"http://127.0.0.1:99999/callback", false},
		{"http://127.0.0.1:080x/callback", false},
		{"http://127.0.0.1/callback", true},
		{"http://127.0.0.1:51234/other", false},
		{"http://127.0.0.1:51234/callback?x=1", false},
		{"https://127.0.0.1:51234/callback", false},
		{"HTTP://127.0.0.1:51234/callback", false}, // only the port may differ: the scheme's case too
		{"Http://127.0.0.1:8976/callback", false},
		{"http://127.0.0.2:51234/callback", false},
		{"http://user@127.0.0.1:51234/callback", false},
		{"http://[::1]:4000/cb?x=1", true},
		{"http://[::1]:4000/cb", false},
		{"http://localhost:3000/cb", true},
		{"http://localhost:3001/cb", false}, // a registered localhost port stays exact
		{"http://127.0.0.1:3000/cb", false},
		// RFC 6749 §3.1.2: "#" starts a fragment even when nothing follows.
		{"http://127.0.0.1:8976/callback#", false},
		{"http://127.0.0.1:51234/callback#", false},
		{"http://127.0.0.1/callback#", false},
		{"https://app.example/cb#", false},
		// RFC 8252 §7.3: any port, but spelled as one port.
		{"http://127.0.0.1:/callback", false},
		{"http://127.0.0.1:08976/callback", false},
		{"http://127.0.0.1:0008976/callback", false},
		{"http://[::1]:/cb?x=1", false},
		{"http://[::1]:04000/cb?x=1", false},
		{"http://127.0.0.1:1/callback", true},
		{"http://127.0.0.1:10/callback", true},
	} {
		if got := clients.MatchRedirectURI(reg, tc.uri); got != tc.want {
			t.Errorf("MatchRedirectURI(%q) = %v, want %v", tc.uri, got, tc.want)
		}
	}
	// A port-less http://localhost registration (Claude Code's published
	// metadata document) matches any port on localhost, with the same
	// path and query (RFC 8252 §7.3's rule; §8.3 discourages localhost but
	// does not forbid it); never 127.0.0.1 or ::1 for localhost, nor the
	// reverse.
	portless := []string{"http://localhost/callback", "http://127.0.0.1/callback", "http://localhost/q?x=1"}
	for uri, want := range map[string]bool{
		"http://localhost/callback":            true,
		"http://localhost:54321/callback":      true,
		"http://localhost:1/callback":          true,
		"http://localhost:65535/callback":      true,
		"http://localhost:80/callback":         true,
		"http://localhost:54321/q?x=1":         true,
		"http://localhost:54321/q?x=2":         false,
		"http://localhost:54321/q":             false,
		"http://localhost:54321/callback/":     false,
		"http://localhost:54321/Callback":      false,
		"http://LOCALHOST:54321/callback":      false, // letter case as before: exact
		"http://Localhost/callback":            false,
		"HTTP://localhost:54321/callback":      false,
		"https://localhost:54321/callback":     false,
		"http://localhost.:54321/callback":     false,
		"http://a.localhost:54321/callback":    false,
		"http://user@localhost:54321/callback": false,
		"http://localhost:0/callback":          false,
		"http://localhost:99999/callback":      false,
		"http://localhost:054321/callback":     false,
		"http://localhost:/callback":           false,
		"http://localhost:54321/callback#":     false,
		"http://127.0.0.1:54321/callback":      true, // its own registration
		"http://[::1]:54321/callback":          false,
	} {
		if got := clients.MatchRedirectURI(portless, uri); got != want {
			t.Errorf("MatchRedirectURI(port-less localhost, %q) = %v, want %v", uri, got, want)
		}
	}
	if clients.MatchRedirectURI([]string{"http://localhost/callback"}, "http://127.0.0.1:54321/callback") ||
		clients.MatchRedirectURI([]string{"http://127.0.0.1/callback"}, "http://localhost:54321/callback") ||
		clients.MatchRedirectURI([]string{"http://[::1]/callback"}, "http://localhost/callback") {
		t.Error("localhost and a loopback IP literal are interchanged")
	}
	// A registered URI with an empty "#" or port (which registration
	// refuses) matches not even itself.
	for _, uri := range []string{"http://127.0.0.1:8976/callback#", "http://127.0.0.1:/callback", "http://127.0.0.1:08976/callback", "https://app.example:/cb"} {
		if clients.MatchRedirectURI([]string{uri}, uri) {
			t.Errorf("MatchRedirectURI(%q) matched itself", uri)
		}
	}
	for uri, want := range map[string]string{
		"http://127.0.0.1:8976/cb#":  `redirect_uri must not have a fragment, not even an empty "#" (RFC 6749 section 3.1.2)`,
		"http://127.0.0.1:/cb":       `redirect_uri has an empty port: remove the ":" after the host, or give the port (RFC 3986 section 3.2.3, section 6.2.3)`,
		"http://127.0.0.1:08976/cb":  `redirect_uri port "08976" has a leading zero: write 8976`,
		"http://127.0.0.1:8976/cb":   "",
		"http://127.0.0.1/cb":        "",
		"https://app.example/cb?x=:": "",
	} {
		got := ""
		if err := clients.RequestedRedirectProblem(uri); err != nil {
			got = "redirect_uri " + err.Error()
		}
		if got != want {
			t.Errorf("RequestedRedirectProblem(%q) = %q, want %q", uri, got, want)
		}
	}
	// A registered https loopback URI keeps exact matching.
	if clients.MatchRedirectURI([]string{"https://127.0.0.1:8443/cb"}, "https://127.0.0.1:9443/cb") {
		t.Error("https loopback matched on another port")
	}
}

func TestCanonicalResource(t *testing.T) {
	allowed := []string{"http://localhost:4000/mcp", "https://api.example.com/actions"}
	for _, tc := range []struct{ in, want string }{
		{"http://localhost:4000/mcp", "http://localhost:4000/mcp"},
		{"HTTP://localhost:4000/mcp", "http://localhost:4000/mcp"},
		{"http://LOCALHOST:4000/mcp", "http://localhost:4000/mcp"},
		{"HTTPS://API.Example.COM/actions", "https://api.example.com/actions"},
		{"http://localhost:4000/MCP", ""}, // the path is case-sensitive
		{"http://localhost:4000/mcp/", ""},
		{"http://localhost:4001/mcp", ""},
		{"http://localhost:4000/mcp#x", ""},
		{"/mcp", ""},
		{"", ""},
	} {
		got, ok := clients.CanonicalResource(allowed, tc.in)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("CanonicalResource(%q) = %q, %v; want %q", tc.in, got, ok, tc.want)
		}
	}
}

func TestHostAllowed(t *testing.T) {
	if !clients.HostAllowed(nil, "https://any.example/c") {
		t.Error("an empty list refuses")
	}
	allowed := []string{"app.example.com", "*.trusted.example"}
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"https://app.example.com/client.json", true},
		{"https://APP.example.com/client.json", true},
		{"https://app.example.com:8443/client.json", false},
		{"https://evil.example/client.json", false},
		{"https://a.trusted.example/c", true},
		{"https://trusted.example/c", false},
		{"https://eviltrusted.example/c", false},
		{"https://app.example.com.evil.example/c", false},
	} {
		if got := clients.HostAllowed(allowed, tc.id); got != tc.want {
			t.Errorf("HostAllowed(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

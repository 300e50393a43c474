package clients

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestPublicAddr(t *testing.T) {
	for _, tc := range []struct {
		ip     string
		public bool
	}{
		{"8.8.8.8", true}, {"2606:4700::1111", true}, {"93.184.216.34", true},
		{"127.0.0.1", false}, {"10.1.2.3", false}, {"172.16.0.1", false}, {"192.168.1.1", false},
		{"169.254.169.254", false}, {"100.64.0.1", false}, {"0.0.0.0", false}, {"224.0.0.1", false},
		{"198.18.0.1", false}, {"192.0.2.1", false}, {"::1", false}, {"fe80::1", false}, {"fc00::1", false},
		{"::ffff:127.0.0.1", false}, {"::ffff:10.0.0.1", false}, {"64:ff9b::a00:1", false}, {"2001:db8::1", false},
		// Special-use IPv6 outside the global unicast range 2000::/3 or in
		// the IANA registry: site-local (RFC 3879), IPv4-compatible
		// (RFC 4291 §2.5.5.1), IPv4-translated (RFC 2765), documentation
		// (RFC 9637), SRv6 SIDs (RFC 9602), AS112 (RFC 7534); and IPv4's
		// AS112 and AMT ranges.
		{"fec0::1", false}, {"::127.0.0.1", false}, {"::a00:1", false}, {"::ffff:0:7f00:1", false},
		{"3fff::1", false}, {"5f00::1", false}, {"2620:4f:8000::1", false},
		{"192.31.196.1", false}, {"192.52.193.1", false}, {"2a00:1450:4001::1", true},
	} {
		if got := PublicAddr(netip.MustParseAddr(tc.ip)); got != tc.public {
			t.Errorf("PublicAddr(%s) = %v, want %v", tc.ip, got, tc.public)
		}
	}
}

func TestCheckClientIDURL(t *testing.T) {
	f := NewMetadataFetcher(FetchOptions{})
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://app.example/client.json", true},
		{"http://app.example/client.json", false},
		{"https://app.example", false},
		{"https://app.example/", false},
		{"https://user:pw@app.example/c.json", false},
		{"https://app.example/c.json#x", false},
		{"https://app.example/a/../c.json", false},
		{"https://127.0.0.1/c.json", false},
		{"https://[::1]/c.json", false},
		{"https://localhost/c.json", false},
		// localhost names (RFC 6761 §6.3) are refused as "localhost" is,
		// before any lookup (they passed, and only the dial guard
		// refused them, once they resolved to a loopback address).
		{"https://app.localhost/c.json", false},
		{"https://LOCALHOST./c.json", false},
		{"https://169.254.169.254/latest", false},
		{"https://[fec0::1]/c.json", false},
		{"https://[::127.0.0.1]/c.json", false},
		{"https://[3fff::1]/c.json", false},
	} {
		_, err := f.CheckClientIDURL(tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("CheckClientIDURL(%q) = %v, want ok=%v", tc.url, err, tc.ok)
		}
	}
}

// The dial-time guard sees the resolved address of every connection, so a
// name that resolves to a private address is refused too.
func TestDialGuard(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:443", "[::1]:443", "10.0.0.5:443", "169.254.169.254:80", "[::ffff:192.168.0.1]:443",
		"[fec0::1]:443", "[::127.0.0.1]:443", "[5f00::1]:443"} {
		if err := dialGuard(addr); err == nil || !strings.Contains(err.Error(), "not a public address") {
			t.Errorf("dialGuard(%s) = %v, want a refusal", addr, err)
		}
	}
	if err := dialGuard("93.184.216.34:443"); err != nil {
		t.Errorf("public address refused: %v", err)
	}
	// The wiring: a fetch of a loopback server is refused (here by the URL
	// check; with a name resolving to loopback, by dialGuard).
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{}`)) }))
	defer srv.Close()
	_, _, err := NewMetadataFetcher(FetchOptions{}).Fetch(context.Background(), srv.URL+"/client.json")
	var me *MetadataError
	if !errors.As(err, &me) {
		t.Fatalf("fetch of a loopback server: %v", err)
	}
}

func TestRedirectURIRules(t *testing.T) {
	for _, tc := range []struct {
		uri        string
		production bool
		ok         bool
	}{
		{"https://app.example/cb", true, true},
		{"http://127.0.0.1:8000/cb", true, true},
		{"http://localhost/cb", true, true},
		{"http://[::1]:9/cb", true, true},
		{"http://app.example/cb", true, false},
		{"http://app.example/cb", false, true},
		{"https://app.example/cb#frag", true, false},
		{"/relative", true, false},
		{"myapp://cb", true, false},
		// RFC 3986 §3.2.2 hosts: IP-literal, IPv4, DNS names (IDNA).
		{"https://chatgpt.com/connector_platform_oauth_redirect", true, true},
		{"https://chat.openai.com/aip/g-0123456789abcdef/oauth/callback", true, true},
		{"https://bücher.example/cb", true, true},
		{"https://xn--bcher-kva.example/cb", true, true},
		{"https://App.Example:8443/cb", true, true},
		{"https://app.example./cb", true, true},
		{"https://93.184.216.34/cb", true, true},
		{"https://[2001:db8::1]:8443/cb", true, true},
		{"http://127.0.0.1:65535/cb", true, true},
		{"http://dev-box:3000/cb", false, true},
		{"https://a.example;sandbox/cb", true, false},
		{"https://b.example,script-src-elem/cb", true, false},
		{"https://c.example'x/cb", true, false},
		{"https://d.example!$&()*+=/cb", true, false},
		{"http://a;b/cb", false, false},
		{"https://chatgpt.com@app.example/cb", true, false},
		{"http://user@127.0.0.1:8000/cb", true, false},
		{"https://under_score.example/cb", true, false},
		{"https://-lead.example/cb", true, false},
		{"https://a..b/cb", true, false},
		{"https://xn--zz.example/cb", true, false},
		{"https://" + strings.Repeat("a", 64) + ".example/cb", true, false},
		{"http://127.1:8000/cb", true, false},
		{"https://127.1/cb", true, false},
		{"https://example.0x7f/cb", true, false},
		{"https://1.2.3.4.5/cb", true, false},
		{"http://[fe80::1%25eth0]:8000/cb", true, false},
		{"https://[::ffff:1.2.3.4]/cb", true, true},
		// RFC 3986 §2: no space, control character or " < > \ ^ ` { | }
		// anywhere; the scheme in its canonical lowercase (§3.1).
		{"https://app.example/cb ", true, false},
		{" https://app.example/cb", true, false},
		{"https://app.example/c b", true, false},
		{"https://app.example/cb?x=a b", true, false},
		{"https://app.example/cb?x={y}", true, false},
		{"https://app.example/cb|x", true, false},
		{"https://app.example/cb\t", true, false},
		{"HTTPS://app.example/cb", true, false},
		{"Http://127.0.0.1:8000/cb", true, false},
		{"https://app.example/cb?x=a%20b&y=1", true, true},
		{"https://app.example/a/b/cb?client=x&state=y", true, true},
		{"http://127.0.0.1:51004/callback", true, true},
		{"https://app.example:0/cb", true, false},
		{"https://app.example:65536/cb", true, false},
		// One spelling of a port (RFC 3986 §3.2.3, §6.2.3), an empty "#"
		// is a fragment (RFC 6749 §3.1.2).
		{"http://127.0.0.1:/cb", true, false},
		{"https://app.example:/cb", true, false},
		{"http://[::1]:/cb", true, false},
		{"http://127.0.0.1:08976/cb", true, false},
		{"https://app.example:0443/cb", true, false},
		{"http://127.0.0.1:00/cb", true, false},
		{"http://127.0.0.1:8976/cb#", true, false},
		{"http://127.0.0.1:8976/cb?x#", true, false},
		{"http://127.0.0.1:10/cb", true, true},
	} {
		if err := CheckRedirectURI(tc.uri, tc.production); (err == nil) != tc.ok {
			t.Errorf("CheckRedirectURI(%q, prod=%v) = %v, want ok=%v", tc.uri, tc.production, err, tc.ok)
		}
	}
}

func TestMetadataToClient(t *testing.T) {
	rules := Rules{Resources: []string{"https://api.example/mcp", "https://api.example/actions"}, Production: true}
	md := &Metadata{ClientID: "https://app.example/c.json", RedirectURIs: []string{"https://app.example/cb"}}
	c, err := md.ToClient(rules, KindMetadata)
	if err != nil {
		t.Fatal(err)
	}
	if !c.IsPublic() || !c.NeedsPKCE() || !c.NeedsConsent() || c.DefaultResource() != "https://api.example/mcp" {
		t.Errorf("client %+v", c)
	}
	for name, mod := range map[string]func(*Metadata){
		"secret method": func(m *Metadata) { m.AuthMethod = AuthPost },
		"http redirect": func(m *Metadata) { m.RedirectURIs = []string{"http://app.example/cb"} },
		"no redirect":   func(m *Metadata) { m.RedirectURIs = nil },
		"token type":    func(m *Metadata) { m.Response = []string{"token"} },
		"pkj no keys":   func(m *Metadata) { m.AuthMethod = AuthPrivateKeyJWT },
	} {
		bad := *md
		mod(&bad)
		if _, err := bad.ToClient(rules, KindMetadata); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestMetadataMemberNamesExact pins that a metadata document's member names
// match exactly (RFC 7591 §2, as dynamic registration): encoding/json on
// its own filled redirect_uris from "REDIRECT_URIS".
func TestMetadataMemberNamesExact(t *testing.T) {
	docs := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(docs[r.URL.Path]))
	}))
	defer srv.Close()
	cb := "https://app.example/cb"
	docs["/upper.json"] = `{"client_id":"` + srv.URL + `/upper.json","REDIRECT_URIS":["` + cb + `"]}`
	docs["/upper-id.json"] = `{"CLIENT_ID":"` + srv.URL + `/upper-id.json","redirect_uris":["` + cb + `"]}`
	docs["/both.json"] = `{"client_id":"` + srv.URL + `/both.json","redirect_uris":["` + cb + `"],"Redirect_Uris":["https://evil.example/cb"],"Token_Endpoint_Auth_Method":"client_secret_post"}`
	docs["/type.json"] = `{"client_id":"` + srv.URL + `/type.json","redirect_uris":"` + cb + `"}`
	docs["/array.json"] = `[{"client_id":"` + srv.URL + `/array.json"}]`
	f := NewMetadataFetcher(FetchOptions{AllowPrivate: true})
	rules := Rules{Resources: []string{"https://api.example/mcp"}}
	ctx := context.Background()

	md, _, err := f.Fetch(ctx, srv.URL+"/upper.json")
	if err != nil {
		t.Fatal(err)
	}
	if md.RedirectURIs != nil {
		t.Errorf("REDIRECT_URIS filled redirect_uris: %v", md.RedirectURIs)
	}
	if _, err := md.ToClient(rules, KindMetadata); err == nil {
		t.Error("a document whose only redirect URIs are under REDIRECT_URIS made a client")
	}

	md, _, err = f.Fetch(ctx, srv.URL+"/both.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(md.RedirectURIs) != 1 || md.RedirectURIs[0] != cb || md.AuthMethod != "" {
		t.Errorf("members of another letter case were read: %+v", md)
	}

	for path, want := range map[string]string{
		"/upper-id.json": "client_id in the document does not match its URL",
		"/type.json":     "redirect_uris must be an array of strings",
		"/array.json":    "not a JSON object",
	} {
		_, _, err := f.Fetch(ctx, srv.URL+path)
		var me *MetadataError
		if !errors.As(err, &me) || me.Reason != want {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
	}
}

package server_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tollgate/tollgate/services/dev-idp/idptest"
)

// TestHeadSpendsNoState: net/http's ServeMux serves HEAD with a GET
// pattern, so a HEAD of the callback URL (a link prefetcher, a mail
// scanner) consumed the single-use sign-in state and the browser's GET then
// failed "unknown, expired or already used sign-in state"; a HEAD of
// /oauth/authorize stored a pending request and set the login cookie. HEAD
// is a safe method (RFC 9110 §9.2.1): both answer 405 with Allow (RFC 9110
// §15.5.6) and write nothing, and the real GET still completes. Paths
// whose GET writes nothing keep serving HEAD.
func TestHeadSpendsNoState(t *testing.T) {
	f, _ := startShaped(t, idptest.Shape{UserinfoClaims: fullProfile}, nil)
	c := f.Clients["local-test"]
	head := func(t *testing.T, u string, cookie *http.Cookie) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodHead, u, nil)
		if cookie != nil {
			req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	t.Run("callback", func(t *testing.T) {
		a := newAuthRequest(c)
		ans := f.startUpstreamLogin(t, a)
		resp := head(t, ans.Callback+"?"+ans.Params.Encode(), ans.Cookie)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, POST" {
			t.Fatalf("HEAD callback: %d, Allow %q; want 405, Allow GET, POST", resp.StatusCode, resp.Header.Get("Allow"))
		}
		resp, body := f.deliver(t, http.MethodGet, ans, "")
		codeFrom(t, a, resp, body) // the state was not spent
	})
	t.Run("authorize", func(t *testing.T) {
		resp := head(t, newAuthRequest(c).URL(f.Base), nil)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, POST" || len(resp.Cookies()) != 0 {
			t.Fatalf("HEAD authorize: %d, Allow %q, cookies %v; want 405, Allow GET, POST and no cookie", resp.StatusCode, resp.Header.Get("Allow"), resp.Cookies())
		}
	})
	t.Run("read-only paths keep HEAD", func(t *testing.T) {
		for _, path := range []string{"/oauth/jwks", "/.well-known/openid-configuration"} {
			if resp := head(t, f.Base+path, nil); resp.StatusCode != http.StatusOK {
				t.Errorf("HEAD %s: %d, want 200", path, resp.StatusCode)
			}
		}
	})
}

// startRefusingUpstream runs a fleet whose upstream provider sits behind a
// real HTTP front that answers the token endpoint with refuse (the shapes
// of refusal real providers send) and passes everything else through.
func startRefusingUpstream(t *testing.T, refuse http.HandlerFunc) *fleet {
	t.Helper()
	f := newFleet(t, nil, "", true)
	var behind atomic.Pointer[httputil.ReverseProxy]
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/token") {
			_, _ = io.Copy(io.Discard, r.Body)
			refuse(w, r)
			return
		}
		behind.Load().ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	p := idptest.StartShape(t, idptest.Shape{BaseURL: front.URL, UserinfoClaims: fullProfile}, f.Base+"/oauth/callback")
	target, _ := url.Parse(p.Server.URL)
	behind.Store(httputil.NewSingleHostReverseProxy(target))
	f.env["UPSTREAM_ISSUER_URL"] = p.Issuer
	f.env["UPSTREAM_CLIENT_ID"] = p.ClientID
	f.env["UPSTREAM_CLIENT_SECRET"] = p.ClientSecret
	f.start()
	return f
}

// TestUpstreamRefusalShapes: a token endpoint that refuses this server's
// client credentials with 401 and no JSON body, or with Auth0's 401
// {"error":"access_denied","error_description":"Unauthorized"} (a wrong
// client secret), is the operator's upstream client settings (RFC 6749
// §5.2 answers 401 only for a failed client authentication), not "the
// identity provider's response could not be verified", which it was
// reported as; a 5xx is an outage (temporarily_unavailable); a refusal
// with a code RFC 6749 §5.2 does not define (403 access_denied) is a
// refusal, its code not repeated; another 5xx a failure naming its status.
func TestUpstreamRefusalShapes(t *testing.T) {
	const credentials = "the identity provider refused this server's client credentials (HTTP 401); the operator must check the upstream client settings"
	jsonAnswer := func(status int, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
		}
	}
	for name, tc := range map[string]struct {
		refuse     http.HandlerFunc
		code, desc string
	}{
		"401 without a body": {func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
			w.WriteHeader(http.StatusUnauthorized)
		}, "server_error", credentials},
		"401 text/plain": {func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
		}, "server_error", credentials},
		"Auth0's 401 access_denied": {jsonAnswer(http.StatusUnauthorized, `{"error":"access_denied","error_description":"Unauthorized"}`),
			"server_error", credentials},
		"403 access_denied": {jsonAnswer(http.StatusForbidden, `{"error":"access_denied","error_description":"call +1 555 0100 to unlock"}`),
			"server_error", "the identity provider refused the code exchange (see the auth-server log)"},
		"503 page": {func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "<html>upstream maintenance</html>", http.StatusServiceUnavailable)
		}, "temporarily_unavailable", "the identity provider is unavailable; retry later"},
		"500 page": {func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "internal error", http.StatusInternalServerError)
		}, "server_error", "the identity provider's token endpoint failed (HTTP 500)"},
	} {
		t.Run(name, func(t *testing.T) {
			f := startRefusingUpstream(t, tc.refuse)
			c := f.Clients["local-test"]
			a := newAuthRequest(c)
			b := newBrowser(t, c.RedirectURIs[0])
			// An outage keeps the sign-in for two reloads; the third
			// unanswered exchange goes to the client.
			p := reloadKept(b, f.login(b, a))
			if p.Location == nil {
				t.Fatalf("no redirect to the client: %d %s\n%s", p.Status, p.URL, p.Body)
			}
			q := p.Location.Query()
			if q.Get("error") != tc.code || q.Get("code") != "" || q.Get("state") != a.State || q.Get("error_description") != tc.desc {
				t.Fatalf("redirect %s\nwant error=%s, error_description %q", p.Location, tc.code, tc.desc)
			}
			if !strings.Contains(f.AS.Logs.String(), "upstream login failed") {
				t.Errorf("the refusal is not logged:\n%s", f.AS.Logs.String())
			}
		})
	}
}

// TestMissingResponseType: an authorization request without response_type
// (or with it empty, which is omitted, RFC 6749 §3.1) lacks a required
// parameter: invalid_request (RFC 6749 §4.1.2.1), sent to the verified
// redirect URI with state and iss. fosite answered
// unsupported_response_type, which says the server does not support the
// value sent. A value that is not code keeps unsupported_response_type.
func TestMissingResponseType(t *testing.T) {
	f := startFleet(t, nil)
	pub := f.Clients["test-public"]
	for name, tc := range map[string]struct {
		value      []string
		code, desc string
	}{
		"absent": {nil, "invalid_request", "response_type is required"},
		"empty":  {[]string{""}, "invalid_request", "response_type is required"},
		"token":  {[]string{"token"}, "unsupported_response_type", ""},
	} {
		t.Run(name, func(t *testing.T) {
			a := newAuthRequest(pub)
			u, _ := url.Parse(a.URL(f.Base))
			q := u.Query()
			q.Del("response_type")
			if tc.value != nil {
				q["response_type"] = tc.value
			}
			u.RawQuery = q.Encode()
			p := newBrowser(t, pub.RedirectURIs[0]).get(u.String())
			if p.Location == nil {
				t.Fatalf("no redirect: %d\n%s", p.Status, p.Body)
			}
			got := p.Location.Query()
			if got.Get("error") != tc.code || got.Get("state") != a.State || got.Get("iss") != f.Base || !strings.Contains(got.Get("error_description"), tc.desc) {
				t.Fatalf("redirect %s: want error=%s (%q) with state and iss", p.Location, tc.code, tc.desc)
			}
		})
	}
}

// TestNoClientAuthenticationIsInvalidClient: a request to the token,
// revocation or introspection endpoint with neither HTTP Basic, a
// client_id nor a client assertion is RFC 6749 §5.2's invalid_client ("no
// client authentication included"), 401; fosite answered 400
// invalid_request. An empty client_id is no client_id (RFC 6749 §3.2).
func TestNoClientAuthenticationIsInvalidClient(t *testing.T) {
	f := startFleet(t, nil)
	for _, tc := range []struct {
		path string
		form url.Values
	}{
		{"/oauth/token", badRefresh()},
		{"/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {"abc"}, "client_id": {""}}},
		{"/oauth/revoke", url.Values{"token": {"abc"}}},
		{"/oauth/introspect", url.Values{"token": {"abc"}}},
	} {
		r := f.clientCall(clientReq{Path: tc.path, Form: tc.form})
		if r.Status != http.StatusUnauthorized || r.Error != "invalid_client" || !strings.Contains(r.Description, "no client authentication") {
			t.Errorf("%s %v: %d %s %q, want 401 invalid_client", tc.path, tc.form, r.Status, r.Error, r.Description)
		}
	}
}

// TestInvalidClientChallenge: every 401 invalid_client of the token,
// revocation and introspection endpoints to a client that used the
// Authorization header, or sent no client authentication at all, carries
// a WWW-Authenticate challenge (RFC 9110 §15.5.2; RFC 6749 §5.2: the
// scheme the client used). The no-authentication answer (5fa32de), a Basic
// header whose credentials do not decode and a bearer token at
// introspection answered 401 without one. A client_secret_post failure
// stays without (oauth4webapi reads the body then; oauth.md).
func TestInvalidClientChallenge(t *testing.T) {
	f := startFleet(t, nil)
	for _, tc := range []struct {
		name, path, auth string
		form             url.Values
		want             string
	}{
		{"none at token", "/oauth/token", "", badRefresh(), `Basic realm="tollgate"`},
		{"none at revoke", "/oauth/revoke", "", url.Values{"token": {"abc"}}, `Basic realm="tollgate"`},
		{"none at introspect", "/oauth/introspect", "", url.Values{"token": {"abc"}}, `Basic realm="tollgate"`},
		{"empty client_id", "/oauth/token", "", url.Values{"grant_type": {"authorization_code"}, "code": {"abc"}, "client_id": {""}}, `Basic realm="tollgate"`},
		{"undecodable Basic at token", "/oauth/token", "Basic !!!", badRefresh(), `Basic realm="tollgate"`},
		{"undecodable Basic at introspect", "/oauth/introspect", "Basic !!!", url.Values{"token": {"abc"}}, `Basic realm="tollgate"`},
		{"bearer at introspect", "/oauth/introspect", "Bearer abc", url.Values{"token": {"abc"}}, `Bearer realm="tollgate"`},
		{"unknown client, Basic", "/oauth/token", "Basic " + base64.StdEncoding.EncodeToString([]byte("nobody:x")), badRefresh(), `Basic realm="tollgate"`},
		{"unknown client, post", "/oauth/token", "", postCreds(devClient{ClientID: "nobody"}, "x", badRefresh()), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, f.Base+tc.path, strings.NewReader(tc.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got := resp.Header.Get("WWW-Authenticate")
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), `"invalid_client"`) {
				t.Fatalf("%d %s, want 401 invalid_client", resp.StatusCode, b)
			}
			if (tc.want == "") != (got == "") || !strings.HasPrefix(got, tc.want) {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.want)
			}
		})
	}
}

// TestPathInsertedMetadataOnlyForTheMCPPath: the authorization server
// metadata at RFC 8414 §3.1's path-inserted location is served for the MCP
// endpoint's path — MCP clients that build the metadata URL from the MCP
// server URL (MCP 2025-03-26; the MCP TypeScript SDK inserts the path
// first) — and 404 for any other path: it named an issuer this server is
// not (RFC 8414 §3.3), and every path was served this server's document.
func TestPathInsertedMetadataOnlyForTheMCPPath(t *testing.T) {
	f := startFleet(t, nil)
	get := func(p string) (int, map[string]any) {
		resp, err := http.Get(f.Base + "/.well-known/oauth-authorization-server" + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Errorf("%s: %d, body not JSON: %v", p, resp.StatusCode, err)
		}
		return resp.StatusCode, m
	}
	for _, p := range []string{"", "/mcp", "/mcp/"} {
		if st, m := get(p); st != http.StatusOK || m["issuer"] != f.Base {
			t.Errorf("%q: %d issuer %v, want 200 with issuer %s", p, st, m["issuer"], f.Base)
		}
	}
	for _, p := range []string{"/anything", "/actions", "/mcp/x", "/tenant/a", "/mcpx"} {
		if st, m := get(p); st != http.StatusNotFound || m["error"] != "invalid_request" || m["issuer"] != nil {
			t.Errorf("%q: %d %v, want 404 invalid_request", p, st, m)
		}
	}
}

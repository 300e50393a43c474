package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// descriptionOutsideSet is the first character of d outside the set RFC
// 6749 §5.2 (and §4.1.2.1, RFC 6750 §3, RFC 7591 §3.2.2) allows in
// error_description, %x20-21 / %x23-5B / %x5D-7E, as a quoted byte; ""
// when every byte is in it.
func descriptionOutsideSet(d string) string {
	for i := 0; i < len(d); i++ {
		if c := d[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return strconv.Quote(string([]byte{c}))
		}
	}
	return ""
}

// challengeDescription is the error_description of a Bearer challenge: the
// quoted-string after error_description=, up to the first unescaped quote
// (a '\' escapes the next character, RFC 9110 §5.6.4).
var challengeDescription = regexp.MustCompile(`error_description="((?:[^"\\]|\\.)*)"`)

// TestErrorDescriptionsStayInRFC6749Set: every OAuth error the auth-server
// writes — the JSON body of the token, revocation, introspection,
// registration, userinfo and authorization endpoints, a Bearer challenge's
// error_description and an error redirect's — has an error_description of
// %x20-21 / %x23-5B / %x5D-7E only (RFC 6749 §5.2, §4.1.2.1; RFC 6750 §3;
// RFC 7591 §3.2.2), also when it quotes the request: a Content-Type, a
// scope, a redirect_uri or a metadata member name holding '"', '\' and
// non-ASCII. Before, our own words carried "§" and strconv.Quote's and
// %q's quotes and backslashes reached the client (a JSON body said
// `(RFC 6749 §3.2), not "application/json"`).
func TestErrorDescriptionsStayInRFC6749Set(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	pub := f.Clients["test-public"]
	const evil = `a"b\c é…§` // quotes, a backslash, non-ASCII

	type answer struct {
		status int
		header http.Header
		body   []byte
	}
	send := func(t *testing.T, method, target, contentType, body string, edit func(*http.Request)) answer {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, target, rd)
		if err != nil {
			t.Fatal(err)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if edit != nil {
			edit(req)
		}
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return answer{resp.StatusCode, resp.Header, b}
	}
	basic := func(cl devClient) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(url.QueryEscape(cl.ClientID), url.QueryEscape(cl.ClientSecret)) }
	}
	const form = "application/x-www-form-urlencoded"
	badRedirect := "https://app.example/" + evil
	// A scope the server does not support, sent to the verified redirect
	// URI: the refusal quotes it (invalid_scope, RFC 6749 §4.1.2.1).
	scoped := newAuthRequest(c)
	scoped.Scope = "openid " + evil

	for _, tc := range []struct {
		name string
		do   func(t *testing.T) answer
		code string // the error wanted
	}{
		{"token: JSON body (quoted Content-Type, section sign)", func(t *testing.T) answer {
			return send(t, http.MethodPost, f.Base+"/oauth/token", "application/json", `{"grant_type":"x"}`, basic(c))
		}, "invalid_request"},
		{"token: Content-Type no media type (strconv.Quote)", func(t *testing.T) answer {
			return send(t, http.MethodPost, f.Base+"/oauth/token", `text/"x\`+"\u00e9;", "grant_type=x", basic(c))
		}, "invalid_request"},
		{"token: two Content-Type headers", func(t *testing.T) answer {
			return send(t, http.MethodPost, f.Base+"/oauth/token", form, "grant_type=x", func(r *http.Request) {
				basic(c)(r)
				r.Header.Add("Content-Type", "text/plain")
			})
		}, "invalid_request"},
		{"token: query not percent-encoded", func(t *testing.T) answer {
			return send(t, http.MethodPost, f.Base+"/oauth/token?a=%zz", form, "grant_type=x", basic(c))
		}, "invalid_request"},
		{"token: refresh_token missing", func(t *testing.T) answer {
			return send(t, http.MethodPost, f.Base+"/oauth/token", form, "grant_type=refresh_token", basic(c))
		}, "invalid_request"},
		{"token: code missing", func(t *testing.T) answer {
			return send(t, http.MethodPost, f.Base+"/oauth/token", form,
				url.Values{"grant_type": {"authorization_code"}, "redirect_uri": {c.RedirectURIs[0]}}.Encode(), basic(c))
		}, "invalid_request"},
		{"token: unknown client named with quotes", func(t *testing.T) answer {
			return send(t, http.MethodPost, f.Base+"/oauth/token", form,
				url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {evil}}.Encode(), nil)
		}, "invalid_client"},
		{"revoke: token missing", func(t *testing.T) answer {
			return send(t, http.MethodPost, f.Base+"/oauth/revoke", form, "token_type_hint=x", basic(c))
		}, "invalid_request"},
		{"revoke: JSON body", func(t *testing.T) answer {
			return send(t, http.MethodPost, f.Base+"/oauth/revoke", "application/json", `{}`, basic(c))
		}, "invalid_request"},
		{"introspect: a public client", func(t *testing.T) answer {
			return send(t, http.MethodPost, f.Base+"/oauth/introspect", form, url.Values{"token": {"x"}, "client_id": {pub.ClientID}}.Encode(), nil)
		}, "invalid_client"},
		{"introspect: JSON body", func(t *testing.T) answer {
			return send(t, http.MethodPost, f.Base+"/oauth/introspect", "application/json", `{}`, basic(c))
		}, "invalid_request"},
		{"register: a repeated member named with quotes (strconv.Quote)", func(t *testing.T) answer {
			name, _ := json.Marshal(evil)
			return send(t, http.MethodPost, f.Base+"/oauth/register", "application/json",
				`{"redirect_uris":["https://app.example/cb"],`+string(name)+`:1,`+string(name)+`:2}`, nil)
		}, "invalid_client_metadata"},
		{"register: a redirect URI with quotes (%q)", func(t *testing.T) answer {
			uri, _ := json.Marshal("https://app.example/" + `"\` + "\u00e9")
			return send(t, http.MethodPost, f.Base+"/oauth/register", "application/json", `{"redirect_uris":[`+string(uri)+`]}`, nil)
		}, "invalid_redirect_uri"},
		{"register: JSON with a Content-Type no media type", func(t *testing.T) answer {
			return send(t, http.MethodPost, f.Base+"/oauth/register", `application/"json\`, `{}`, nil)
		}, "invalid_client_metadata"},
		{"userinfo: Content-Type no media type", func(t *testing.T) answer {
			return send(t, http.MethodPost, f.Base+"/oauth/userinfo", `a"\`+"\u00e9", "x=1", func(r *http.Request) { r.Header.Set("Authorization", "Bearer x") })
		}, "invalid_request"},
		{"userinfo: an invalid bearer token", func(t *testing.T) answer {
			return send(t, http.MethodGet, f.Base+"/oauth/userinfo", "", "", func(r *http.Request) { r.Header.Set("Authorization", "Bearer x") })
		}, "invalid_token"},
		{"authorize (JSON): an unregistered redirect_uri with quotes", func(t *testing.T) answer {
			a := newAuthRequest(c)
			a.RedirectURI = badRedirect
			return send(t, http.MethodGet, a.URL(f.Base), "", "", nil)
		}, "invalid_request"},
		{"authorize (JSON): a POST with its parameters in the query too", func(t *testing.T) answer {
			return send(t, http.MethodPost, newAuthRequest(c).URL(f.Base), form, "x=1", nil)
		}, "invalid_request"},
		{"authorize (redirect): an unsupported scope with quotes", func(t *testing.T) answer {
			return send(t, http.MethodGet, scoped.URL(f.Base), "", "", nil)
		}, "invalid_scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.do(t)
			var code, desc string
			if loc := a.header.Get("Location"); a.status/100 == 3 && loc != "" {
				u, err := url.Parse(loc)
				if err != nil {
					t.Fatal(err)
				}
				code, desc = u.Query().Get("error"), u.Query().Get("error_description")
			} else {
				var e struct {
					Error       string `json:"error"`
					Description string `json:"error_description"`
				}
				if err := json.Unmarshal(a.body, &e); err != nil {
					t.Fatalf("%d, not a JSON error: %s", a.status, a.body)
				}
				code, desc = e.Error, e.Description
			}
			if code != tc.code || desc == "" {
				t.Fatalf("%d error %q description %q, want %s with a description", a.status, code, desc, tc.code)
			}
			if bad := descriptionOutsideSet(desc); bad != "" {
				t.Errorf("error_description %q has %s, outside RFC 6749 section 5.2's set", desc, bad)
			}
			for _, ch := range a.header.Values("WWW-Authenticate") {
				m := challengeDescription.FindStringSubmatch(ch)
				if m == nil {
					continue
				}
				if bad := descriptionOutsideSet(m[1]); bad != "" {
					t.Errorf("WWW-Authenticate %q: error_description has %s, outside RFC 6750 section 3's set", ch, bad)
				}
			}
		})
	}
}

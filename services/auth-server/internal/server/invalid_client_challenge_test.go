package server_test

import (
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestInvalidClientChallengeByWhereTheCredentialsWere: a registered
// client that fails authentication gets WWW-Authenticate only when it
// used the Authorization header (RFC 6749 §5.2: "MUST include" it then;
// a challenge answering credentials in the body sends
// oauth4webapi/openid-client to the challenge instead of the error), at
// each endpoint where clients authenticate: a wrong client_secret_post
// secret and a client assertion in the body get none, a wrong secret in
// HTTP Basic gets Basic. (TestInvalidClientChallenge covers unknown
// clients, no credentials and other schemes.)
func TestInvalidClientChallengeByWhereTheCredentialsWere(t *testing.T) {
	redirect := "http://127.0.0.1:8979/challenge-callback"
	registry, assertion := keyJWTClient(t, "challenge-pkj", redirect)
	f := startFleetWith(t, nil, registry)
	post, basic := f.Clients["gpt-actions"], f.Clients["local-test"]
	if post.ClientID == "" || basic.ClientID == "" {
		t.Fatal("the dev clients gpt-actions and local-test are missing")
	}
	forms := map[string]url.Values{"/oauth/token": badRefresh(), "/oauth/revoke": {"token": {"abc"}}, "/oauth/introspect": {"token": {"abc"}}}
	for path, form := range forms {
		for _, tc := range []struct {
			name, auth string
			form       url.Values
			want       string
		}{
			{"client_secret_post, wrong secret", "", postCreds(post, "wrong-"+rand.Text(), form), ""},
			{"private_key_jwt, audience not this server", "", withAssertion(form, "challenge-pkj", assertion("https://elsewhere.example/token", rand.Text())), ""},
			{"client_secret_basic, wrong secret", "Basic " + base64.StdEncoding.EncodeToString([]byte(basic.ClientID+":wrong-"+rand.Text())), form, `Basic realm="tollgate"`},
		} {
			t.Run(path+" "+tc.name, func(t *testing.T) {
				req, _ := http.NewRequest(http.MethodPost, f.Base+path, strings.NewReader(tc.form.Encode()))
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
				if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), `"invalid_client"`) {
					t.Fatalf("%d %s, want 401 invalid_client", resp.StatusCode, b)
				}
				got := resp.Header.Values("WWW-Authenticate")
				if (tc.want == "") != (len(got) == 0) || (tc.want != "" && (len(got) != 1 || !strings.HasPrefix(got[0], tc.want))) {
					t.Errorf("WWW-Authenticate %q, want %q", got, tc.want)
				}
			})
		}
	}
}

// withAssertion is form with a private_key_jwt client assertion of id.
func withAssertion(form url.Values, id, assertion string) url.Values {
	out := url.Values{}
	for k, v := range form {
		out[k] = v
	}
	out.Set("client_id", id)
	out.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
	out.Set("client_assertion", assertion)
	return out
}

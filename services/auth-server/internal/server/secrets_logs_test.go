package server_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestClientIDSecretsNotLogged: a client_id that carries a secret — a URL
// with user information, or one of the server's own refresh tokens or
// authorization codes pasted into the wrong field — is an unknown client,
// and the service log ("authorize: unknown client") and the audit events
// (authorization_request, grant, client_authentication_failure) name it
// with the secret redacted ("https://[REDACTED]@x.example/cb",
// "ory_rt_[REDACTED]"): docs/security.md promises no credential or token
// in the logs (found by fresh3 against make dev).
func TestClientIDSecretsNotLogged(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	rt := f.fullFlow(c, newAuthRequest(c)).RefreshToken
	code := f.authorize(newAuthRequest(c))
	if !strings.HasPrefix(rt, "ory_rt_") || !strings.HasPrefix(code, "ory_ac_") {
		t.Fatalf("refresh token %.10q, code %.10q: want fosite's ory_rt_/ory_ac_ forms", rt, code)
	}
	const userinfo = "https://u:S3CRETpw@x.example/cb"
	secrets := []string{"S3CRETpw", strings.TrimPrefix(rt, "ory_rt_"), strings.TrimPrefix(code, "ory_ac_")}
	// Every part of the token and code, in case one is logged cut.
	for _, tok := range []string{rt[len("ory_rt_"):], code[len("ory_ac_"):]} {
		secrets = append(secrets, strings.Split(tok, ".")...)
	}

	noRedirect := &http.Client{Timeout: 60 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	send := func(req *http.Request) {
		t.Helper()
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s: %d, want 400 or 401", req.Method, req.URL.Path, resp.StatusCode)
		}
	}
	for _, id := range []string{userinfo, rt, code} {
		// As curl sends it (the URL unencoded), and encoded.
		for _, q := range []string{"client_id=" + id, url.Values{"client_id": {id}, "response_type": {"code"}}.Encode()} {
			req, _ := http.NewRequest(http.MethodGet, f.Base+"/oauth/authorize?"+q, nil)
			send(req)
		}
		for _, basic := range []bool{false, true} {
			form := url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "redirect_uri": {c.RedirectURIs[0]}}
			if !basic {
				form.Set("client_id", id)
			}
			req, _ := http.NewRequest(http.MethodPost, f.Base+"/oauth/token", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if basic {
				req.SetBasicAuth(url.QueryEscape(id), "wrong")
			}
			send(req)
		}
	}
	// A Basic client id that is not form-urlencoded (an invalid "%zz")
	// is recorded as sent, percent-encoded: its secret is found in the
	// valid sequences it holds (review1).
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"ory_rt_unknown.unknown"}}
	req, _ := http.NewRequest(http.MethodPost, f.Base+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(userinfo)+"%zz", "wrong")
	send(req)

	logs := f.AS.Logs.String()
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the logs hold the secret %.12q…", s)
		}
	}
	if !strings.Contains(logs, "authorize: unknown client") || !strings.Contains(logs, "https://[REDACTED]@x.example/cb") {
		t.Errorf("want the unknown client logged with its user information redacted:\n%s", logs)
	}
	events := auditEvents(t, f)
	for _, want := range []map[string]any{
		{"event": "authorization_request", "client_id": "https://[REDACTED]@x.example/cb"},
		{"event": "authorization_request", "client_id": "ory_rt_[REDACTED]"},
		{"event": "authorization_request", "client_id": "ory_ac_[REDACTED]"},
		{"event": "client_authentication_failure", "client_id": "https://[REDACTED]@x.example/cb"},
		{"event": "client_authentication_failure", "client_id": "ory_rt_[REDACTED]"},
		{"event": "client_authentication_failure", "client_id": "ory_ac_[REDACTED]"},
		{"event": "client_authentication_failure", "client_id": "https://[REDACTED]@x.example/cb%zz"},
	} {
		if findEvent(events, want) == nil {
			t.Errorf("no audit event %v", want)
		}
	}
}

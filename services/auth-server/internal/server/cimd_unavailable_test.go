package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tollgate/tollgate/services/auth-server/internal/fetchtest"
)

// TestGrantClientDocumentUnavailable (auth49 #2): a token of a Client ID
// Metadata Document client whose document is no longer cached is read
// again with its client, whose document is fetched again. When the
// document's server gives no answer about it — it answers 500, 503 or
// 429, breaks off the connection, does not answer within the fetch
// timeout, or is down (connection refused) — the token was not judged:
// introspection, userinfo, refresh and revocation answer 503
// temporarily_unavailable with Retry-After 5 (as for the fetch bound,
// TestIntrospectionWhileFetchBoundFull), never {"active":false},
// 401 invalid_token or invalid_grant, and nothing of the grant changes.
// A definitive answer — 404, 410, a document whose client_id is not its
// URL, one that is no JSON — still makes the client unknown and its token
// inactive. Before, every failure made the token inactive, a refresh
// invalid_grant (which makes the client drop its refresh token) and a
// revocation 200 with the grant left in place.
func TestGrantClientDocumentUnavailable(t *testing.T) {
	redirect := "http://127.0.0.1:8978/cimd-cb"
	var mode atomic.Value
	mode.Store("ok")
	docs := fetchtest.New(t, func(*http.Request) bool { return mode.Load() == "hang" }, func(w http.ResponseWriter, r *http.Request) {
		switch m := mode.Load().(string); m {
		case "ok", "hang":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"client_id":%q,"client_name":"auth49 app","redirect_uris":[%q],"token_endpoint_auth_method":"none"}`, fetchtest.URL(r), redirect)
		case "other-id":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"client_id":%q,"client_name":"auth49 app","redirect_uris":[%q],"token_endpoint_auth_method":"none"}`, fetchtest.URL(r)+"x", redirect)
		case "not-json":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `<html>moved</html>`)
		case "reset":
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		default: // a status
			var status int
			_, _ = fmt.Sscan(m, &status)
			w.WriteHeader(status)
		}
	})
	extra, cs := standardsClients(t)
	f := startFleetWith(t, nil, extra)
	c := devClient{ClientID: docs.URL + "/app.json", RedirectURIs: []string{redirect}, AuthMethod: "none"}
	tr := approvedTokens(t, f, c, newAuthRequest(c), "the document's client")
	if tr.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	uncache := f.uncacheDocuments
	type answer struct {
		status int
		h      http.Header
		m      map[string]any
	}
	decode := func(resp *http.Response, b []byte) answer {
		m := map[string]any{}
		_ = json.Unmarshal(b, &m)
		return answer{resp.StatusCode, resp.Header, m}
	}
	introspect := func() answer {
		return decode(f.post("/oauth/introspect", cs["test-rs"], url.Values{"token": {tr.AccessToken}}))
	}
	userinfo := func() answer {
		status, h, m := f.userinfoAnswer(tr.AccessToken)
		return answer{status, h, m}
	}
	refresh := func() answer {
		return decode(f.post("/oauth/token", c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}))
	}
	revoke := func() answer {
		return decode(f.post("/oauth/revoke", c, url.Values{"token": {tr.RefreshToken}}))
	}
	unavailable := func(what string, got answer, reason string) {
		t.Helper()
		desc, _ := got.m["error_description"].(string)
		if got.status != http.StatusServiceUnavailable || got.m["error"] != "temporarily_unavailable" || got.h.Get("Retry-After") != "5" ||
			desc != "the client's metadata document could not be fetched now ("+reason+"); retry later" {
			t.Errorf("%s: %d Retry-After %q %v; want 503 temporarily_unavailable, Retry-After 5, saying %q (the token was not judged)", what, got.status, got.h.Get("Retry-After"), got.m, reason)
		}
		if got.h.Get("WWW-Authenticate") != "" {
			t.Errorf("%s: WWW-Authenticate %q on a 503: the token was not judged (RFC 6750 section 3 challenges a request without a usable token)", what, got.h.Get("WWW-Authenticate"))
		}
	}
	active := func(what string) {
		t.Helper()
		mode.Store("ok")
		uncache()
		if got := introspect(); got.status != http.StatusOK || got.m["active"] != true {
			t.Fatalf("introspection %s: %d %v, want active", what, got.status, got.m)
		}
	}
	active("with the document served")

	// No answer about the document: 503 at each endpoint.
	for _, tc := range []struct{ mode, reason string }{
		{"503", "fetch answered 503"},
		{"500", "fetch answered 500"},
		{"429", "fetch answered 429"},
		{"reset", "fetch failed: the request failed"},
		{"hang", "fetch failed: timed out"},
	} {
		mode.Store(tc.mode)
		uncache()
		unavailable("introspection, the document's server "+tc.mode, introspect(), tc.reason)
		if tc.mode == "503" {
			uncache()
			unavailable("userinfo, the document's server 503", userinfo(), tc.reason)
			uncache()
			unavailable("refresh, the document's server 503", refresh(), tc.reason)
			uncache()
			unavailable("revocation, the document's server 503", revoke(), tc.reason)
		}
		active("once the document's server answered again after " + tc.mode)
	}
	// The refresh and the revocation above changed nothing: the refresh
	// token still works (and rotates).
	if got := refresh(); got.status != http.StatusOK {
		t.Fatalf("refresh once the document's server answered again: %d %v", got.status, got.m)
	} else {
		tr.AccessToken, _ = got.m["access_token"].(string)
		tr.RefreshToken, _ = got.m["refresh_token"].(string)
	}

	// A definitive answer: the client is unknown, its token inactive (and
	// active again once the document is served: nothing was revoked).
	for _, m := range []string{"404", "410", "other-id", "not-json"} {
		mode.Store(m)
		uncache()
		if got := introspect(); got.status != http.StatusOK || got.m["active"] != false {
			t.Errorf("introspection, the document's server answering %s: %d %v, want 200 {\"active\":false}", m, got.status, got.m)
		}
		active("once the document was served again after " + m)
	}

	// The authorization endpoint: a new client whose document's server
	// answers 503 is not judged either (503 page, Retry-After), one whose
	// document is 404 is unknown (400 invalid_client).
	for _, tc := range []struct {
		mode   string
		status int
		want   string
	}{
		{"503", http.StatusServiceUnavailable, "temporarily_unavailable"},
		{"404", http.StatusBadRequest, "invalid_client"},
	} {
		mode.Store(tc.mode)
		resp, body := authorizeAnswer(t, f, docs.URL, "/new-"+tc.mode+".json", "127.0.0.1", "application/json")
		if resp.StatusCode != tc.status || !strings.Contains(body, `"error":"`+tc.want+`"`) || (tc.status == http.StatusServiceUnavailable) != (resp.Header.Get("Retry-After") == "5") {
			t.Errorf("authorization, a new client's document answering %s: %d Retry-After %q %s; want %d %s", tc.mode, resp.StatusCode, resp.Header.Get("Retry-After"), body, tc.status, tc.want)
		}
	}

	// The document's server is down (connection refused).
	docs.Close()
	uncache()
	unavailable("introspection, the document's server down", introspect(), "fetch failed: could not connect")
}

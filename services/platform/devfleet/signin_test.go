package devfleet

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// closedOrigin is an http origin on loopback where nothing listens: a
// port bound and released.
func closedOrigin(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func devCreds(origin string) DevCredentials {
	return DevCredentials{Origin: origin, Clients: []DevClient{{
		ClientID: "local-test", RedirectURIs: []string{"http://127.0.0.1:1/callback"}, AuthMethod: "client_secret_basic",
	}}}
}

// TestSignInSaysWhatToCheckWhenTheFleetIsUnreachable: `make token` with a
// PUBLIC_URL no tunnel answers said only "dial tcp: lookup … no such
// host"; it names PUBLIC_URL and where the tunnel must point, and without
// a PUBLIC_URL asks whether make dev runs — the cause kept (errors.Is).
// An origin that answers with an error is the server's answer, not this.
func TestSignInSaysWhatToCheckWhenTheFleetIsUnreachable(t *testing.T) {
	origin := closedOrigin(t)
	const local = "http://localhost:4000"

	_, err := SignIn(t.Context(), SignInOptions{Creds: devCreds(origin), ClientID: "local-test", LocalOrigin: local})
	want := "PUBLIC_URL " + origin + " is unreachable: is the tunnel running and pointed at " + local + "?"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("PUBLIC_URL on a closed port: %v, want %q", err, want)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("the cause is lost: %v", err)
	}

	// The local ingress itself (no PUBLIC_URL), or no LocalOrigin given.
	for _, l := range []string{origin, origin + "/", ""} {
		_, err := SignIn(t.Context(), SignInOptions{Creds: devCreds(origin), ClientID: "local-test", LocalOrigin: l})
		want := origin + " is unreachable: is `make dev` running?"
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "PUBLIC_URL") {
			t.Errorf("LocalOrigin %q: %v, want %q", l, err, want)
		}
	}

	// A fleet that answers, with an error: its answer, no reachability hint.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such route", http.StatusNotFound)
	}))
	defer srv.Close()
	_, err = SignIn(t.Context(), SignInOptions{Creds: devCreds(srv.URL), ClientID: "local-test", LocalOrigin: local})
	if err == nil || !strings.Contains(err.Error(), "answered 404") || strings.Contains(err.Error(), "unreachable") {
		t.Errorf("an answering origin: %v, want its 404 and no reachability hint", err)
	}
}

// authServer is a stand-in authorization server that records the
// authorization and token requests SignIn makes and answers them: a
// redirect to the redirect URI with a code, a token.
func authServer(t *testing.T) (*httptest.Server, *[]url.Values) {
	t.Helper()
	var got []url.Values
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/oauth/authorize":
			q := r.URL.Query()
			got = append(got, q)
			http.Redirect(w, r, q.Get("redirect_uri")+"?code=c&state="+url.QueryEscape(q.Get("state")), http.StatusFound)
		case "/oauth/token":
			_ = r.ParseForm()
			got = append(got, r.PostForm)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":"at","token_type":"Bearer","expires_in":60}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &got
}

// TestSignInSendsNoResourceUnlessAsked: without Resource, SignIn sends no
// resource on either request, as a GPT Action's OAuth does (the server
// then gives the client's first resource: the audience a GPT's token
// has). It sent the client's default audience as resource, so `make
// token CLIENT=gpt-actions` followed another path than the GPT it stands
// for. A Resource given is sent on both requests, under Origin when one
// is named instead of the credentials' origin.
func TestSignInSendsNoResourceUnlessAsked(t *testing.T) {
	srv, got := authServer(t)
	if _, err := SignIn(t.Context(), SignInOptions{Creds: devCreds(srv.URL), ClientID: "local-test"}); err != nil {
		t.Fatal(err)
	}
	if len(*got) != 2 {
		t.Fatalf("requests %v, want the authorization and the token request", *got)
	}
	for i, q := range *got {
		if _, ok := q["resource"]; ok {
			t.Errorf("request %d sent resource %q, want none", i, q["resource"])
		}
	}

	*got = nil
	creds := devCreds("http://fleet-that-wrote-the-credentials.invalid")
	if _, err := SignIn(t.Context(), SignInOptions{Creds: creds, ClientID: "local-test", Resource: "actions", Origin: srv.URL + "/"}); err != nil {
		t.Fatal(err)
	}
	for i, q := range *got {
		if r := q["resource"]; len(r) != 1 || r[0] != srv.URL+"/actions" {
			t.Errorf("request %d sent resource %q, want %s/actions", i, r, srv.URL)
		}
	}
}

// TestSignInAtANamedOrigin: an Origin that does not answer is named with
// what to check there, not make dev or a tunnel; one that is not an
// origin is refused before any request.
func TestSignInAtANamedOrigin(t *testing.T) {
	origin := closedOrigin(t)
	_, err := SignIn(t.Context(), SignInOptions{Creds: devCreds("http://localhost:4000"), ClientID: "local-test", Origin: origin, LocalOrigin: "http://localhost:4000"})
	want := origin + " is unreachable: is the fleet running there?"
	if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("a named origin on a closed port: %v, want %q and the cause", err, want)
	}
	for _, bad := range []string{"localhost:4000", "ftp://h", "http://h/mcp", "http://h?x=1", "http://"} {
		_, err := SignIn(t.Context(), SignInOptions{Creds: devCreds("http://localhost:4000"), ClientID: "local-test", Origin: bad})
		if err == nil || !strings.Contains(err.Error(), "want the fleet's origin, http(s)://host[:port]") {
			t.Errorf("Origin %q: %v, want it refused as not an origin", bad, err)
		}
	}
}

package devfleet

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
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

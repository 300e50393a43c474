package clients

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/auth-server/internal/fetchtest"
)

// TestStaticHasJWKSURI: the operator's registry names its clients'
// jwks_uris (the auth-server fetches and caches those apart from the ones
// anonymous callers name, brk47), a registry reloaded with Replace names
// the new ones only, and a nil registry names none.
func TestStaticHasJWKSURI(t *testing.T) {
	doc := func(uri string) []byte {
		return []byte(`{"clients":[{"client_id":"pk","token_endpoint_auth_method":"private_key_jwt","jwks_uri":"` + uri + `",` +
			`"redirect_uris":["https://app.example/cb"],"resources":["https://mcp.example/mcp"]}]}`)
	}
	rules := Rules{Resources: []string{"https://mcp.example/mcp"}}
	s, problems := Parse(doc("https://app.example/jwks.json"), rules)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	for uri, want := range map[string]bool{"https://app.example/jwks.json": true, "https://app.example/jwks.json?x": false, "https://evil.example/jwks.json": false, "": false} {
		if got := s.HasJWKSURI(uri); got != want {
			t.Errorf("HasJWKSURI(%q) = %v, want %v", uri, got, want)
		}
	}
	next, problems := Parse(doc("https://app.example/v2/jwks.json"), rules)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	s.Replace(next)
	if s.HasJWKSURI("https://app.example/jwks.json") || !s.HasJWKSURI("https://app.example/v2/jwks.json") {
		t.Error("after Replace: want the new registry's jwks_uri only")
	}
	if (*Static)(nil).HasJWKSURI("https://app.example/jwks.json") {
		t.Error("a nil registry names a jwks_uri")
	}
}

// TestFetchSlotsPerAddress: over a real loopback server, one client
// address (WithFetchAddress) holds at most MaxInFlightPerAddress of the
// anonymous slots: with its 2 fetches hanging, its 3rd waits QueueWait,
// then is refused unsent ("for this client address"); another address's
// fetch and a fetch without an address are sent; the operator's client
// has slots of its own; once the hanging fetches end, the address
// fetches again and no address entry is left behind.
func TestFetchSlotsPerAddress(t *testing.T) {
	srv := fetchtest.New(t, fetchtest.PathPrefix("/hang/"), nil)
	f := NewMetadataFetcher(FetchOptions{AllowPrivate: true, MaxInFlightPerAddress: 2, QueueWait: 50 * time.Millisecond})
	a, b := WithFetchAddress(context.Background(), "203.0.113.7"), WithFetchAddress(context.Background(), "198.51.100.9")

	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, _ = f.Fetch(a, fmt.Sprintf("%s/hang/a%d.json", srv.URL, i))
		}()
	}
	srv.AwaitHeld(t, 2)
	before := srv.Requests()
	_, _, err := f.Fetch(a, srv.URL+"/a3.json")
	if want := "fetch failed: this server has too many fetches in flight for this client address (at most 2 at once); retry later"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("the address's 3rd fetch: %v, want %q", err, want)
	}
	if n := srv.Requests(); n != before {
		t.Errorf("the refused fetch reached the server")
	}
	if _, _, err := f.Fetch(b, srv.URL+"/b.json"); err != nil {
		t.Errorf("another address's fetch: %v", err)
	}
	if _, _, err := f.Fetch(context.Background(), srv.URL+"/none.json"); err != nil {
		t.Errorf("a fetch without an address: %v", err)
	}
	if st := f.FetchStats(); st.RefusedPerAddress != 1 || st.Refused != 0 || st.PerAddressLimit != 2 {
		t.Errorf("stats %+v, want one refusal for the address, none of the process's bound", st)
	}
	srv.Release()
	wg.Wait()
	if _, _, err := f.Fetch(a, srv.URL+"/a4.json"); err != nil {
		t.Errorf("the address once its fetches ended: %v", err)
	}
	f.gate.mu.Lock()
	left := len(f.gate.addresses)
	f.gate.mu.Unlock()
	if left != 0 || len(f.gate.slots) != 0 {
		t.Errorf("%d address entries and %d slots left after every fetch ended, want none", left, len(f.gate.slots))
	}
}

package oauth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
)

// hasSet reports whether f caches a JWK set for location.
func (f *jwksFetcher) hasSet(location string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.cache.Peek(location)
	return ok && c.set != nil
}

// jwksGate is a loopback jwks_uri that counts its GETs and holds each
// answer until the gate is opened.
type jwksGate struct {
	srv     *httptest.Server
	asked   atomic.Int32
	arrived chan struct{}

	mu      sync.Mutex
	release chan struct{}
	opened  bool
}

func newJWKSGate(t *testing.T) *jwksGate {
	g := &jwksGate{arrived: make(chan struct{}, 1000), release: make(chan struct{})}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.asked.Add(1)
		g.arrived <- struct{}{}
		g.mu.Lock()
		release := g.release
		g.mu.Unlock()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	t.Cleanup(func() { g.open(); g.srv.Close() })
	return g
}

func (g *jwksGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.opened {
		close(g.release)
		g.opened = true
	}
}

// shut closes the gate again and forgets the GETs that arrived.
func (g *jwksGate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.release, g.opened = make(chan struct{}), false
	for len(g.arrived) > 0 {
		<-g.arrived
	}
}

// awaitGET waits for a GET to arrive at g.
func (g *jwksGate) awaitGET(t *testing.T) {
	t.Helper()
	select {
	case <-g.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no GET arrived")
	}
}

// TestJWKSFetchesAreShared: concurrent Resolves that must fetch one
// jwks_uri — 50 token requests of a new client at once, then 50
// assertions naming a kid the set lacks once the set is
// jwksRefetchInterval old — share one GET (over real loopback HTTP,
// through the guarded client); before, each fetched it: 50 GETs (review6
// #3). A request that gives up while the shared GET is under way stops
// waiting at once, and the GET goes on for the others.
func TestJWKSFetchesAreShared(t *testing.T) {
	f := newJWKSFetcher(clients.NewMetadataFetcher(clients.FetchOptions{AllowPrivate: true}).RetryableClient())
	now := time.Now()
	f.now = func() time.Time { return now }
	g := newJWKSGate(t)
	loc := g.srv.URL + "/jwks.json"

	for _, phase := range []struct {
		name        string
		after       time.Duration
		ignoreCache bool
	}{
		{"50 concurrent first fetches of one jwks_uri", 0, false},
		{"50 concurrent assertions with an unknown kid", jwksRefetchInterval, true},
	} {
		now = now.Add(phase.after)
		g.shut()
		before := g.asked.Load()
		var wg sync.WaitGroup
		errs := make(chan error, 50)
		for range 50 {
			wg.Go(func() {
				if _, err := f.Resolve(context.Background(), loc, phase.ignoreCache); err != nil {
					errs <- err
				}
			})
		}
		g.awaitGET(t)
		time.Sleep(300 * time.Millisecond) // time for the others to ask too
		g.open()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("%s: %v", phase.name, err)
		}
		if n := g.asked.Load() - before; n != 1 {
			t.Errorf("%s: %d GETs, want 1", phase.name, n)
		}
	}

	// One request gives up while the shared GET waits; the other still
	// gets the set, and the jwks_uri was asked once.
	now = now.Add(jwksRefetchInterval)
	g.shut()
	before := g.asked.Load()
	ctx, cancel := context.WithCancel(context.Background())
	quitter := make(chan error, 1)
	go func() {
		_, err := f.Resolve(ctx, loc, true)
		quitter <- err
	}()
	g.awaitGET(t)
	stayer := make(chan error, 1)
	go func() {
		_, err := f.Resolve(context.Background(), loc, true)
		stayer <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-quitter:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the request that gave up: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the request that gave up still waits for the GET")
	}
	select {
	case err := <-stayer:
		t.Fatalf("the other request returned before the GET was answered: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	g.open()
	if err := <-stayer; err != nil {
		t.Errorf("the request that waited: %v, want the set", err)
	}
	if n := g.asked.Load() - before; n != 1 {
		t.Errorf("one request gave up, one waited: %d GETs, want 1", n)
	}
}

// TestJWKSFailuresAreRemembered: a jwks_uri whose fetch fails — an HTML
// page, 404, a 500 (retried once by the guarded client), an answer over
// jwksMaxBytes, no answer in time — is fetched once per jwksFailureTTL,
// its failure answered from the cache to every assertion meanwhile (with
// and without ignoreCache), and a client that fixes it is served once
// jwksFailureTTL has passed; before, each assertion fetched it again
// (review6). A failed refetch keeps the set fetched before for the
// assertions whose kid it has. A failure weighs jwksFailureWeight beside
// its jwks_uri in the cache's budget.
func TestJWKSFailuresAreRemembered(t *testing.T) {
	var asked sync.Map // path → *atomic.Int32
	var fixed, broken atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := asked.LoadOrStore(r.URL.Path, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		if fixed.Load() || (r.URL.Path == "/flaky" && !broken.Load()) {
			_, _ = w.Write([]byte(`{"keys":[]}`))
			return
		}
		switch r.URL.Path {
		case "/html":
			_, _ = w.Write([]byte(`<html><body>Welcome</body></html>`))
		case "/500":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "/big":
			_, _ = w.Write([]byte(`{"keys":[],"pad":"` + strings.Repeat("x", jwksMaxBytes) + `"}`))
		case "/slow":
			<-r.Context().Done()
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	gets := func(path string) int32 {
		n, ok := asked.Load(path)
		if !ok {
			return 0
		}
		return n.(*atomic.Int32).Load()
	}
	f := newJWKSFetcher(clients.NewMetadataFetcher(clients.FetchOptions{AllowPrivate: true, Timeout: 300 * time.Millisecond}).RetryableClient())
	now := time.Now()
	f.now = func() time.Time { return now }
	ctx := context.Background()

	paths := []struct{ path, why string }{
		{"/html", "its answer is not a JWK set"},
		{"/404", "it answered HTTP 404"},
		{"/500", "it answered a server error status"},
		{"/big", "its answer is not a JWK set"},
		{"/slow", "timed out"},
	}
	perFetch := map[string]int32{}
	for _, p := range paths {
		_, err := f.Resolve(ctx, srv.URL+p.path, false)
		if got := jwksFetchFailure(err); got != p.why {
			t.Errorf("%s: %q (%v), want %q", p.path, got, err, p.why)
		}
		perFetch[p.path] = gets(p.path)
		for i := range 6 {
			now = now.Add(jwksFailureTTL / 8)
			_, err := f.Resolve(ctx, srv.URL+p.path, i%2 == 0)
			if got := jwksFetchFailure(err); got != p.why {
				t.Errorf("%s, remembered: %q (%v), want %q", p.path, got, err, p.why)
			}
		}
		if n := gets(p.path); n != perFetch[p.path] {
			t.Errorf("%s: 7 assertions within %v: %d GETs, want %d (one fetch)", p.path, jwksFailureTTL, n, perFetch[p.path])
		}
		now = now.Add(jwksFailureTTL / 4) // 8/8 of it since the fetch
		if _, err := f.Resolve(ctx, srv.URL+p.path, false); err == nil {
			t.Errorf("%s: resolved", p.path)
		}
		if n := gets(p.path); n != 2*perFetch[p.path] {
			t.Errorf("%s: after %v: %d GETs, want %d (a second fetch)", p.path, jwksFailureTTL, n, 2*perFetch[p.path])
		}
		// The client fixes its jwks_uri: served once jwksFailureTTL has
		// passed since the last fetch.
		fixed.Store(true)
		now = now.Add(jwksFailureTTL - time.Second)
		if _, err := f.Resolve(ctx, srv.URL+p.path, false); err == nil {
			t.Errorf("%s: fixed, served before %v had passed", p.path, jwksFailureTTL)
		}
		now = now.Add(time.Second)
		if _, err := f.Resolve(ctx, srv.URL+p.path, false); err != nil {
			t.Errorf("%s: fixed, and %v passed: %v", p.path, jwksFailureTTL, err)
		}
		fixed.Store(false)
	}
	// A set, then a failed refetch (an unknown kid once the set is a
	// minute old): the set still answers, the failure answers the refetch
	// without a GET until jwksFailureTTL has passed.
	g := newJWKSFetcher(clients.NewMetadataFetcher(clients.FetchOptions{AllowPrivate: true}).RetryableClient())
	g.now = f.now
	flaky := srv.URL + "/flaky"
	if _, err := g.Resolve(ctx, flaky, false); err != nil {
		t.Fatal(err)
	}
	now = now.Add(jwksRefetchInterval)
	broken.Store(true)
	if _, err := g.Resolve(ctx, flaky, true); jwksFetchFailure(err) != "it answered HTTP 404" {
		t.Errorf("a failed refetch: %v, want HTTP 404", err)
	}
	if _, err := g.Resolve(ctx, flaky, false); err != nil {
		t.Errorf("the set fetched before, after a failed refetch: %v", err)
	}
	if _, err := g.Resolve(ctx, flaky, true); err == nil {
		t.Error("a refetch within jwksFailureTTL of the failed one: resolved")
	}
	if n := gets("/flaky"); n != 2 {
		t.Errorf("/flaky: %d GETs, want 2", n)
	}
	_, _ = g.Resolve(ctx, srv.URL+"/html", false)
	sets, bytes := g.cached()
	want := len(`{"keys":[]}`) + len(flaky) + jwksFailureWeight + len(srv.URL+"/html") + jwksFailureWeight
	if sets != 2 || bytes != want {
		t.Errorf("a set with a failure and a failure: %d entries, %d bytes; want 2, %d", sets, bytes, want)
	}
	now = now.Add(jwksFailureTTL)
	broken.Store(false)
	if _, err := g.Resolve(ctx, flaky, true); err != nil {
		t.Errorf("a refetch %v after the failed one, the jwks_uri fixed: %v", jwksFailureTTL, err)
	}
	if _, bytes := g.cached(); bytes != want-jwksFailureWeight {
		t.Errorf("after a fetch that succeeded: %d bytes, want %d", bytes, want-jwksFailureWeight)
	}
}

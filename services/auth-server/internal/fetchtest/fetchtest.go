// Package fetchtest is the document and jwks_uri server of the tests of
// the auth-server's guarded fetcher (clients.MetadataFetcher): a real HTTP
// server on loopback that holds the requests a test chooses until the
// test releases them, counting them, so that a test can fill the
// fetcher's bounds and watch what reaches the server. It is used by tests
// only.
package fetchtest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Server is an httptest.Server whose held requests wait until Release.
type Server struct {
	*httptest.Server
	arrived  chan string
	release  chan struct{}
	released sync.Once

	requests, held, inFlight, most atomic.Int64
}

// ArrivalWait bounds how long Arrived waits for a held request: a guard
// against a test that would otherwise hang, not a measure of anything.
const ArrivalWait = time.Minute

// New starts a server on loopback. A request hold reports true for (hold
// nil: every request) is counted as held and waits until Release, or until
// its client goes away (then nothing is answered); then answer writes the
// response (answer nil: Document). The server is released, then closed,
// when the test ends.
func New(t testing.TB, hold func(*http.Request) bool, answer http.HandlerFunc) *Server {
	t.Helper()
	if answer == nil {
		answer = Document
	}
	s := &Server{arrived: make(chan string, 1024), release: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if hold == nil || hold(r) {
			s.held.Add(1)
			n := s.inFlight.Add(1)
			for m := s.most.Load(); n > m && !s.most.CompareAndSwap(m, n); m = s.most.Load() {
			}
			select {
			case s.arrived <- r.URL.Path:
			default: // more arrivals than a test awaits: not counted for Arrived
			}
			select {
			case <-s.release:
				s.inFlight.Add(-1)
			case <-r.Context().Done():
				s.inFlight.Add(-1)
				return
			}
		}
		answer(w, r)
	}))
	t.Cleanup(s.Close)   // runs second: it waits for the handlers
	t.Cleanup(s.Release) // runs first
	return s
}

// Arrived waits for the next held request to arrive and answers its path;
// the test fails if none arrives within ArrivalWait.
func (s *Server) Arrived(t testing.TB) string {
	t.Helper()
	select {
	case p := <-s.arrived:
		return p
	case <-time.After(ArrivalWait):
		t.Fatalf("fetchtest: no held request arrived within %v", ArrivalWait)
		return ""
	}
}

// AwaitHeld waits for n held requests to arrive (Arrived, n times).
func (s *Server) AwaitHeld(t testing.TB, n int) {
	t.Helper()
	for range n {
		s.Arrived(t)
	}
}

// Release lets every held request, and every later one, go on; once.
func (s *Server) Release() { s.released.Do(func() { close(s.release) }) }

// Requests is the number of requests the server got, held or not.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Held is the number of requests the server held.
func (s *Server) Held() int64 { return s.held.Load() }

// Most is the largest number of requests held at once.
func (s *Server) Most() int64 { return s.most.Load() }

// URL is the address r was sent to (http, loopback): a Client ID Metadata
// Document's client_id.
func URL(r *http.Request) string { return "http://" + r.Host + r.URL.Path }

// Document answers the Client ID Metadata Document of r's URL: client_id
// that URL, one redirect URI, the server's /cb.
func Document(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"client_id":%q,"redirect_uris":[%q]}`, URL(r), "http://"+r.Host+"/cb")
}

// EmptyJWKS answers a JWK set without keys.
func EmptyJWKS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"keys":[]}`))
}

// LargeHeaders sets a header of n bytes on w: more than the fetcher's
// 16 KiB of response headers (clients.MaxResponseHeaderBytes) for n of
// 20 KiB.
func LargeHeaders(w http.ResponseWriter, n int) { w.Header().Set("X-Big", strings.Repeat("a", n)) }

// PathPrefix is a hold function: the requests whose path begins with prefix.
func PathPrefix(prefix string) func(*http.Request) bool {
	return func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, prefix) }
}

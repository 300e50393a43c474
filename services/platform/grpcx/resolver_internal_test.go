package grpcx

import (
	"context"
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/resolver"
)

// The resolver's schedule, driven step by step: the test answers each
// lookup and each wait, on a clock of its own.

type fakeCC struct {
	resolver.ClientConn // the methods the resolver does not call
	events              chan any
	updateErr           error
}

func (c *fakeCC) UpdateState(s resolver.State) error {
	c.events <- s
	return c.updateErr
}

func (c *fakeCC) ReportError(err error) { c.events <- err }

type wait struct {
	d    time.Duration
	fire chan time.Time
}

type schedule struct {
	t       *testing.T
	mu      sync.Mutex
	now     time.Time
	waits   chan wait
	answers chan lookupAnswer
	lookups chan string
	cc      *fakeCC
	r       resolver.Resolver
}

type lookupAnswer struct {
	ips []string
	err error
}

func newSchedule(t *testing.T, endpoint string) *schedule {
	t.Helper()
	s := &schedule{
		t: t, now: time.Unix(1_000_000, 0),
		waits: make(chan wait), answers: make(chan lookupAnswer), lookups: make(chan string, 1),
		cc: &fakeCC{events: make(chan any, 1)},
	}
	b := &dnsBuilder{
		lookup: func(ctx context.Context, host string) ([]string, error) {
			s.lookups <- host
			select {
			case a := <-s.answers:
				return a.ips, a.err
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
		clock: func() time.Time { s.mu.Lock(); defer s.mu.Unlock(); return s.now },
		after: func(d time.Duration) <-chan time.Time {
			w := wait{d: d, fire: make(chan time.Time, 1)}
			s.waits <- w
			return w.fire
		},
	}
	r, err := b.Build(resolver.Target{URL: url.URL{Scheme: dnsScheme, Path: "/" + endpoint}}, s.cc, resolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.r = r
	t.Cleanup(func() {
		done := make(chan struct{})
		go func() { r.Close(); close(done) }()
		// Close while the resolver waits or looks up: it must return.
		for {
			select {
			case <-done:
				return
			case <-s.waits:
			case <-s.lookups:
			case <-time.After(10 * time.Second):
				t.Error("Close did not return")
				return
			}
		}
	})
	return s
}

// lookup expects a lookup of host and answers it.
func (s *schedule) lookup(host string, a lookupAnswer) {
	s.t.Helper()
	if got := <-s.lookups; got != host {
		s.t.Fatalf("looked up %q, want %q", got, host)
	}
	s.answers <- a
}

// expectWait expects the resolver to wait d, then lets the clock run d.
func (s *schedule) expectWait(d time.Duration) {
	s.t.Helper()
	w := <-s.waits
	if w.d != d {
		s.t.Fatalf("the resolver waits %v, want %v", w.d, d)
	}
	s.mu.Lock()
	s.now = s.now.Add(d)
	s.mu.Unlock()
	w.fire <- s.now
}

func (s *schedule) event() any {
	s.t.Helper()
	return <-s.cc.events
}

func notFound(host string) error {
	return &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// A headless Service without a Ready pod: every lookup finds no address,
// and the next one comes ResolveRetryInterval later every time — no
// growing back-off — until the name has addresses, which gRPC gets at once.
func TestResolverRetriesAtAFixedIntervalUntilTheNameHasAddresses(t *testing.T) {
	const host = "tollgate-capability-core-grpc.tollgate.svc.cluster.local"
	s := newSchedule(t, host+":9000")
	failures := []struct {
		err       error
		noAddress bool // reported as ErrNoAddress
	}{
		{notFound(host), true},
		{&net.DNSError{Err: "i/o timeout", Name: host, IsTimeout: true}, false},
		{nil, true}, // an answer without addresses
		{&net.DNSError{Err: "server misbehaving", Name: host, IsTemporary: true}, false},
		{notFound(host), true}, {notFound(host), true}, {notFound(host), true}, {notFound(host), true},
	}
	for i, f := range failures {
		s.lookup(host, lookupAnswer{err: f.err})
		err, ok := s.event().(error)
		if !ok {
			t.Fatalf("lookup %d: gRPC got addresses, want an error", i)
		}
		if !strings.Contains(err.Error(), host) {
			t.Errorf("lookup %d: error %q does not name the host", i, err)
		}
		if errors.Is(err, ErrNoAddress) != f.noAddress {
			t.Errorf("lookup %d: error %q: ErrNoAddress %v, want %v", i, err, !f.noAddress, f.noAddress)
		}
		s.expectWait(ResolveRetryInterval)
	}
	s.lookup(host, lookupAnswer{ips: []string{"10.244.0.7", "fd00::7"}})
	st, ok := s.event().(resolver.State)
	if !ok {
		t.Fatal("gRPC got an error, want addresses")
	}
	var got []string
	for _, a := range st.Addresses {
		got = append(got, a.Addr)
	}
	if want := []string{"10.244.0.7:9000", "[fd00::7]:9000"}; !slices.Equal(got, want) {
		t.Errorf("addresses %v, want %v", got, want)
	}
	// With addresses, the next lookup is the refresh.
	s.expectWait(ResolveRefreshInterval)
	s.lookup(host, lookupAnswer{ips: []string{"10.244.0.7", "10.244.0.9"}})
	if _, ok := s.event().(resolver.State); !ok {
		t.Fatal("refresh: gRPC got an error, want addresses")
	}
	s.expectWait(ResolveRefreshInterval)
}

// gRPC asks for a lookup when a connection breaks: it gets one, but never
// sooner than DNSReresolveInterval after the previous one.
func TestResolverAnswersResolveNowAtMostOncePerInterval(t *testing.T) {
	s := newSchedule(t, "core:9000")
	s.lookup("core", lookupAnswer{ips: []string{"10.244.0.7"}})
	s.event()
	w := <-s.waits // the refresh, which does not fire
	if w.d != ResolveRefreshInterval {
		t.Fatalf("waits %v, want the refresh %v", w.d, ResolveRefreshInterval)
	}
	s.r.ResolveNow(resolver.ResolveNowOptions{})
	s.expectWait(DNSReresolveInterval) // no time has passed since the lookup
	s.lookup("core", lookupAnswer{ips: []string{"10.244.0.8"}})
	s.event()
	if w = <-s.waits; w.d != ResolveRefreshInterval {
		t.Fatalf("waits %v, want the refresh %v", w.d, ResolveRefreshInterval)
	}
	// A request long after the last lookup is served without a wait.
	s.mu.Lock()
	s.now = s.now.Add(10 * time.Second)
	s.mu.Unlock()
	s.r.ResolveNow(resolver.ResolveNowOptions{})
	s.lookup("core", lookupAnswer{ips: []string{"10.244.0.8"}})
	s.event()
	s.expectWait(ResolveRefreshInterval)
}

// gRPC refusing the addresses counts as a failure: looked up again soon.
func TestResolverRetriesWhenGRPCRefusesTheState(t *testing.T) {
	s := newSchedule(t, "core:9000")
	s.cc.updateErr = errors.New("bad resolver state")
	s.lookup("core", lookupAnswer{ips: []string{"10.244.0.7"}})
	s.event()
	s.expectWait(ResolveRetryInterval)
	s.cc.updateErr = nil
	s.lookup("core", lookupAnswer{ips: []string{"10.244.0.7"}})
	s.event()
	s.expectWait(ResolveRefreshInterval)
}

func TestResolverRefusesATargetWithoutPort(t *testing.T) {
	b := newDNSBuilder(nil)
	for _, endpoint := range []string{"capability-core", "", "[::1"} {
		_, err := b.Build(resolver.Target{URL: url.URL{Scheme: dnsScheme, Path: "/" + endpoint}}, &fakeCC{}, resolver.BuildOptions{})
		if err == nil || !strings.Contains(err.Error(), "grpc target") {
			t.Errorf("Build(%q) = %v, want a grpc target error", endpoint, err)
		}
	}
}

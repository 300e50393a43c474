package registry_test

import (
	"context"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
)

// A backend that starts after the fleet's first refresh (pods start in
// any order; make dev starts the auth-server before capability-core) is
// asked again within about a second, not after a whole refresh interval:
// until then its tools and scopes are missing everywhere.
func TestDiscoveryRunRetriesAnUnreachableBackendSoon(t *testing.T) {
	a := registrytest.Start(t, "alpha", []registrytest.Service{notes("notes")})
	a.Stop()
	h := discover(t, a)
	if got := toolNames(h.d.Refresh(context.Background())); got != "" {
		t.Fatalf("tools with alpha not started = %q", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.d.Run(ctx, time.Hour) }()
	t.Cleanup(func() { cancel(); <-done })

	installed := make(chan *registry.Registry, 4)
	h.d.OnChange(func(r *registry.Registry) { installed <- r })
	a.Restart(t)
	// The bound is a deadline for a missed retry (the interval is an
	// hour), not a measurement: the first retries come 250 ms, 500 ms, 1 s
	// after Run starts.
	select {
	case r := <-installed:
		if got := toolNames(r); got != "notes.add notes.list" {
			t.Fatalf("tools once alpha started = %q", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("alpha, started after the first refresh, was not asked again before the hour's interval")
	}
}

// A backend that answered is asked again only at the interval: the
// sooner retry is for a backend that cannot be reached.
func TestDiscoveryRunDoesNotRetryReachableBackendsSoon(t *testing.T) {
	a := registrytest.Start(t, "alpha", []registrytest.Service{notes("notes")})
	h := discover(t, a)
	h.d.Refresh(context.Background())
	before := h.metric(t, "tollgate_capability_discoveries_total", "alpha")
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	h.d.Run(ctx, time.Hour)
	if after := h.metric(t, "tollgate_capability_discoveries_total", "alpha"); after != before {
		t.Errorf("a reachable backend was asked again %v times within 1.5 s of an hour's interval", after-before)
	}
}

// A backend that stays down is retried alone: the others are read only at
// the interval, not every RetryMax for as long as the outage lasts.
func TestDiscoveryRunRetriesOnlyTheUnreachable(t *testing.T) {
	a := registrytest.Start(t, "alpha", []registrytest.Service{notes("notes")})
	b := registrytest.Start(t, "beta", []registrytest.Service{notes("todo")})
	b.Stop()
	h := discover(t, a, b)
	h.d.Refresh(context.Background())
	alpha := h.metric(t, "tollgate_capability_discoveries_total", "alpha")
	beta := h.metric(t, "tollgate_capability_discoveries_total", "beta")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	h.d.Run(ctx, time.Hour)
	if got := h.metric(t, "tollgate_capability_discoveries_total", "alpha"); got != alpha {
		t.Errorf("healthy alpha was read %v more times within 2 s of an hour's interval", got-alpha)
	}
	if got := h.metric(t, "tollgate_capability_discoveries_total", "beta"); got <= beta {
		t.Errorf("unreachable beta was not asked again within 2 s (reads %v, before %v)", got, beta)
	}
}

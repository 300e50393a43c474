package grpcx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc/resolver"
)

// Name resolution of a host:port target (docs/operations/failures.md).
//
// gRPC's own dns resolver treats a lookup that finds no address as a
// failure and then backs off exponentially (1.6 s, 2.6 s, 4.1 s ... up to
// 120 s) without honouring re-resolution requests in between. A headless
// Service has no address until its first pod is Ready, so on a first
// install a client that started before capability-core was Ready kept
// failing for up to one back-off step after it was (0–15 s measured on a
// real cluster). This resolver looks a target without addresses up again
// at a fixed interval instead.
const (
	// ResolveRetryInterval is how often a target is looked up while it has
	// no address: the lookup failed, or found none (a headless Service
	// with no Ready pod). Fixed, not growing: one query a second per client.
	ResolveRetryInterval = time.Second
	// ResolveRefreshInterval is how often a target with addresses is looked
	// up again while every connection is healthy, so that pods added by a
	// scale-up get calls without waiting for a connection to close.
	ResolveRefreshInterval = 30 * time.Second
	// ResolveTimeout bounds one lookup.
	ResolveTimeout = 5 * time.Second
)

// LookupFunc resolves a host name to IP addresses, as
// (*net.Resolver).LookupHost does.
type LookupFunc func(ctx context.Context, host string) ([]string, error)

// ErrNoAddress is reported (wrapped, naming the host) while a target's host
// resolves to no address.
var ErrNoAddress = errors.New("no address")

const dnsScheme = "tollgate-dns"

// dnsBuilder builds a resolver per ClientConn, for targets
// tollgate-dns:///host:port.
type dnsBuilder struct {
	lookup LookupFunc
	// clock and after tell the time and wait; time.Now and time.After
	// outside tests.
	clock func() time.Time
	after func(time.Duration) <-chan time.Time
}

func newDNSBuilder(lookup LookupFunc) *dnsBuilder {
	if lookup == nil {
		lookup = net.DefaultResolver.LookupHost
	}
	return &dnsBuilder{lookup: lookup, clock: time.Now, after: time.After}
}

func (b *dnsBuilder) Scheme() string { return dnsScheme }

func (b *dnsBuilder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	host, port, err := net.SplitHostPort(target.Endpoint())
	if err != nil {
		return nil, fmt.Errorf("grpc target %q: %w", target.Endpoint(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &dnsResolver{
		host: host, port: port, cc: cc, lookup: b.lookup, clock: b.clock, after: b.after,
		ctx: ctx, cancel: cancel, resolveNow: make(chan struct{}, 1),
	}
	r.wg.Add(1)
	go r.watch()
	return r, nil
}

// dnsResolver looks its host up at once, then again on every ResolveNow
// (gRPC asks when a connection breaks or fails), every
// ResolveRefreshInterval while it has addresses, and every
// ResolveRetryInterval while it has none. Two lookups are at least
// DNSReresolveInterval apart.
type dnsResolver struct {
	host, port string
	cc         resolver.ClientConn
	lookup     LookupFunc
	clock      func() time.Time
	after      func(time.Duration) <-chan time.Time
	ctx        context.Context
	cancel     context.CancelFunc
	resolveNow chan struct{}
	wg         sync.WaitGroup
}

func (r *dnsResolver) ResolveNow(resolver.ResolveNowOptions) {
	select {
	case r.resolveNow <- struct{}{}:
	default: // one is pending already
	}
}

func (r *dnsResolver) Close() {
	r.cancel()
	r.wg.Wait()
}

func (r *dnsResolver) watch() {
	defer r.wg.Done()
	for {
		last := r.clock()
		next := ResolveRefreshInterval
		if err := r.resolveOnce(); err != nil {
			next = ResolveRetryInterval
		}
		select {
		case <-r.ctx.Done():
			return
		case <-r.resolveNow:
		case <-r.after(next):
		}
		// The shortest gap between two lookups, however often gRPC asks.
		if wait := DNSReresolveInterval - r.clock().Sub(last); wait > 0 {
			select {
			case <-r.ctx.Done():
				return
			case <-r.after(wait):
			}
		}
	}
}

// resolveOnce looks the host up and hands the addresses to gRPC. No address
// is reported as an error: gRPC keeps the addresses it had (a rollout's
// pods that still answer) and fails calls at once when it had none.
func (r *dnsResolver) resolveOnce() error {
	ctx, cancel := context.WithTimeout(r.ctx, ResolveTimeout)
	ips, err := r.lookup(ctx, r.host)
	cancel()
	if r.ctx.Err() != nil {
		return r.ctx.Err()
	}
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		err = fmt.Errorf("resolving %s: %w (%v)", r.host, ErrNoAddress, err)
	case err != nil:
		err = fmt.Errorf("resolving %s: %w", r.host, err)
	case len(ips) == 0:
		err = fmt.Errorf("resolving %s: %w", r.host, ErrNoAddress)
	}
	if err != nil {
		r.cc.ReportError(err)
		return err
	}
	addrs := make([]resolver.Address, 0, len(ips))
	for _, ip := range ips {
		addrs = append(addrs, resolver.Address{Addr: net.JoinHostPort(ip, r.port)})
	}
	return r.cc.UpdateState(resolver.State{Addresses: addrs})
}

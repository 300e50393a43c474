package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Backend is one source of capabilities for Discovery: a configured gRPC
// backend (CAPABILITY_BACKENDS) whose services are read through server
// reflection, or — Services set — a server's own services, used as given
// (the auth-server's GrantsService, for the auth-server itself).
type Backend struct {
	// Name routes calls (Capability.Backend, Conns) and labels logs and
	// metrics.
	Name string
	// Target is where Conn points, for logs.
	Target string
	// Conn reaches the backend: reflection, then every call routed to it.
	Conn grpc.ClientConnInterface
	// Services, when not nil, are the backend's services; Conn is then
	// not asked for them.
	Services []protoreflect.ServiceDescriptor
}

// DiscoveryOptions configure NewDiscovery.
type DiscoveryOptions struct {
	// Backends in the operator's order: on a conflict the earlier keeps
	// the name and the later one's service is refused.
	Backends []Backend
	Log      *slog.Logger
	// Metrics registers the discovery metrics (nil: not registered).
	Metrics prometheus.Registerer
	// ReservedPaths are the paths the connector serves itself (the
	// actions-api's OpenAPI document, privacy policy and protected
	// resource metadata): a service declaring an operation at one is
	// refused, as one repeating another's route is, and every other
	// service is served.
	ReservedPaths []string
	// UnderscoreToolNames: the connector publishes tool names with "_"
	// for "." (UnderscoreToolName; the mcp-gateway's
	// MCP_TOOL_NAME_STYLE=underscore). A service with a tool whose name
	// is published as one an accepted tool's already is ("notes_list"
	// beside "notes.list") is refused, as one repeating a tool name is,
	// and every other service is served.
	UnderscoreToolNames bool
	// Timeout bounds one backend's reflection in a refresh, waiting for
	// its connection included (default DefaultDiscoveryTimeout): a
	// backend that is down costs a refresh this long, the others
	// meanwhile answer concurrently.
	Timeout time.Duration
}

// DefaultDiscoveryTimeout bounds one backend's reflection in a refresh.
const DefaultDiscoveryTimeout = 2 * time.Second

// Discovery keeps the registry of the capabilities that the configured
// backends serve, read at run time from their gRPC server reflection
// (nothing comes from descriptors linked into the binary), and routes each
// capability to the backend that serves it.
//
// Rules (docs/architecture.md, "Capabilities discovered from backends"):
//   - a backend that cannot be reached keeps the services it last
//     described (calls fail with Unavailable until it returns); one never
//     reached yet has none, and never blocks the others; Run asks an
//     unreachable backend again within RetryMin..RetryMax, not only at
//     the interval;
//   - a service that a backend's answer no longer lists is removed, with
//     its tools, actions and scopes, at that refresh;
//   - a service whose name, or one of whose tools, routes, operationIds or
//     scopes, an earlier backend already declares is refused (log line
//     "capability service refused", metric
//     tollgate_capability_conflicts_total); a route is its method and its
//     path with the parameters' names erased (/actions/items/{id} and
//     /actions/items/{item_id} are one), and with UnderscoreToolNames a
//     tool is its published name ("notes.list" and "notes_list" are
//     one). So is a service whose options are invalid, that clashes with
//     itself that way, that declares an operation at one of
//     ReservedPaths, or that requires a scope no accepted service
//     declares. Services are taken in the order of Backends, each
//     backend's by full name: of two that clash, the later is refused.
//
// Registry is safe for concurrent use; a registry once returned never
// changes, so a call that took it finishes with it.
type Discovery struct {
	o       DiscoveryOptions
	m       *discoveryMetrics
	mu      sync.Mutex // serializes Refresh
	state   map[string]*backendState
	built   bool
	cur     atomic.Pointer[Registry]
	subMu   sync.Mutex
	subs    []func(*Registry)
	refused map[string]string // "backend/service" -> reason, as last built
}

type backendState struct {
	up *bool // nil: not asked yet
	// unreachable: the last refresh could not reach it (not an invalid
	// answer, which asking again soon would only repeat).
	unreachable bool
	services    []protoreflect.ServiceDescriptor
	finger      string
}

// NewDiscovery prepares discovery over o.Backends; Refresh reads them.
// Until then Registry is empty.
func NewDiscovery(o DiscoveryOptions) (*Discovery, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultDiscoveryTimeout
	}
	seen := map[string]bool{}
	for _, b := range o.Backends {
		if b.Name == "" || seen[b.Name] {
			return nil, fmt.Errorf("capability discovery: backend name %q is empty or repeated", b.Name)
		}
		if b.Conn == nil && b.Services == nil {
			return nil, fmt.Errorf("capability discovery: backend %q has neither a connection nor services", b.Name)
		}
		seen[b.Name] = true
	}
	m, err := newDiscoveryMetrics(o.Metrics)
	if err != nil {
		return nil, err
	}
	d := &Discovery{o: o, m: m, state: map[string]*backendState{}, refused: map[string]string{}}
	for _, b := range o.Backends {
		d.state[b.Name] = &backendState{}
		m.up.WithLabelValues(b.Name).Set(0)
		m.services.WithLabelValues(b.Name).Set(0)
		m.conflicts.WithLabelValues(b.Name)
	}
	empty, _ := build(nil, rules{checkScopes: true})
	d.cur.Store(empty)
	return d, nil
}

// Registry is the current registry.
func (d *Discovery) Registry() *Registry { return d.cur.Load() }

// Conns are the connections to every backend, by name.
func (d *Discovery) Conns() Conns {
	cs := Conns{}
	for _, b := range d.o.Backends {
		if b.Conn != nil {
			cs[b.Name] = b.Conn
		}
	}
	return cs
}

// OnChange calls f with every registry installed after this call, in
// order, from the goroutine that refreshed.
func (d *Discovery) OnChange(f func(*Registry)) {
	d.subMu.Lock()
	defer d.subMu.Unlock()
	d.subs = append(d.subs, f)
}

// RetryMin and RetryMax bound the delay before Run asks again a backend
// that its last refresh could not reach: RetryMin after the first
// failure, doubling at each further one up to RetryMax (or Run's
// interval, when shorter).
const (
	RetryMin = 250 * time.Millisecond
	RetryMax = 5 * time.Second
)

// Run refreshes every interval until ctx ends. While a backend is
// unreachable (down, or not started yet: a fleet's pods start in any
// order) it asks that backend again sooner — after RetryMin, then twice
// as long after each attempt that still cannot reach it, up to RetryMax —
// so that a backend that comes up late is served within a second or two
// of its start (at most RetryMax after a long outage) instead of up to a
// whole interval later. These retries ask only the unreachable backends:
// one that stays down does not make the others be read more often. A
// backend whose answer is invalid waits for the interval, as one that
// answered does: asking again soon would only repeat the answer.
func (d *Discovery) Run(ctx context.Context, interval time.Duration) {
	retry := RetryMin
	full := time.Now().Add(interval)
	// next is the wait before the next refresh, and whether it is the
	// interval's full one rather than a retry of the unreachable.
	next := func() (time.Duration, bool) {
		untilFull := time.Until(full)
		if !d.unreachable() {
			retry = RetryMin
			return untilFull, true
		}
		if retry >= untilFull {
			return untilFull, true
		}
		wait := retry
		retry = min(retry*2, RetryMax)
		return wait, false
	}
	wait, isFull := next()
	t := time.NewTimer(max(wait, 0))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if isFull {
				d.Refresh(ctx)
				full = time.Now().Add(interval)
			} else {
				d.refresh(ctx, true)
			}
			wait, isFull = next()
			t.Reset(max(wait, 0))
		}
	}
}

// unreachable reports whether the last refresh could not reach a backend.
func (d *Discovery) unreachable() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, st := range d.state {
		if st.unreachable {
			return true
		}
	}
	return false
}

// Refresh asks every backend for its services (concurrently, each bounded
// by the timeout), installs a new registry when any answer changed, and
// returns the current registry.
func (d *Discovery) Refresh(ctx context.Context) *Registry { return d.refresh(ctx, false) }

// refresh is Refresh; unreachableOnly asks only the backends the last
// refresh could not reach, and leaves the others as they are.
func (d *Discovery) refresh(ctx context.Context, unreachableOnly bool) *Registry {
	d.mu.Lock()
	defer d.mu.Unlock()
	type answer struct {
		r    *reflected
		err  error
		skip bool
	}
	answers := make([]answer, len(d.o.Backends))
	var wg sync.WaitGroup
	for i, b := range d.o.Backends {
		if unreachableOnly && !d.state[b.Name].unreachable {
			answers[i] = answer{skip: true}
			continue
		}
		if b.Services != nil {
			answers[i] = answer{r: &reflected{services: b.Services, fingerprint: "local"}}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, d.o.Timeout)
			defer cancel()
			r, err := reflectServices(cctx, b.Conn)
			answers[i] = answer{r: r, err: err}
		}()
	}
	wg.Wait()
	changed := !d.built
	for i, b := range d.o.Backends {
		st, a := d.state[b.Name], answers[i]
		if a.skip {
			continue
		}
		wasUp := st.up != nil && *st.up
		known := st.up != nil
		st.unreachable = a.err != nil && !errors.Is(a.err, errInvalid)
		if a.err != nil {
			result := "unavailable"
			if errors.Is(a.err, errInvalid) {
				result = "invalid"
				d.o.Log.Error("capability backend invalid", "backend", b.Name, "target", b.Target, "err", a.err)
			} else if wasUp || !known {
				d.o.Log.Warn("capability backend unavailable", "backend", b.Name, "target", b.Target, "err", a.err)
			}
			d.m.discoveries.WithLabelValues(b.Name, result).Inc()
			d.m.up.WithLabelValues(b.Name).Set(0)
			down := false
			st.up = &down
			continue
		}
		d.m.discoveries.WithLabelValues(b.Name, "ok").Inc()
		d.m.up.WithLabelValues(b.Name).Set(1)
		up := true
		st.up = &up
		if st.finger != a.r.fingerprint || !wasUp {
			if st.finger != a.r.fingerprint {
				changed = true
			}
			st.finger, st.services = a.r.fingerprint, a.r.services
			names := make([]string, len(st.services))
			for j, sd := range st.services {
				names[j] = string(sd.FullName())
			}
			d.o.Log.Info("capability backend discovered", "backend", b.Name, "target", b.Target, "services", names)
		}
	}
	if !changed {
		return d.cur.Load()
	}
	d.built = true
	return d.install()
}

// install merges the backends' services in order, logs what is refused,
// and swaps the registry in.
func (d *Discovery) install() *Registry {
	var (
		accepted []protoreflect.ServiceDescriptor
		owner    = map[protoreflect.FullName]string{}
		refused  = map[string]string{}
		conflict = map[string]bool{}
		winner   = map[string]string{}
	)
	refuse := func(backend string, sd protoreflect.ServiceDescriptor, reason string, isConflict bool, by string) {
		k := backend + "/" + string(sd.FullName())
		refused[k], conflict[k], winner[k] = reason, isConflict, by
	}
	for _, b := range d.o.Backends {
		for _, sd := range d.state[b.Name].services {
			if prev, dup := owner[sd.FullName()]; dup {
				refuse(b.Name, sd, "service already served by backend "+prev, true, prev)
				continue
			}
			if _, err := build(append(slices.Clone(accepted), sd), d.rules(false)); err != nil {
				reason := strings.TrimPrefix(err.Error(), "capability registry:\n  - ")
				reason = strings.ReplaceAll(reason, "\n  - ", "; ")
				by := ""
				if strings.Contains(reason, "already declared by") {
					by = ownerIn(reason, owner)
				}
				refuse(b.Name, sd, reason, by != "", by)
				continue
			}
			accepted = append(accepted, sd)
			owner[sd.FullName()] = b.Name
		}
	}
	// A service may require a scope another backend declares; one whose
	// required scopes nobody accepted declares is refused (repeat: its
	// own scopes go with it).
	var reg *Registry
	for {
		r, err := build(accepted, d.rules(true))
		if err == nil {
			reg = r
			break
		}
		lacking := map[protoreflect.FullName]string{}
		for _, line := range strings.Split(err.Error(), "\n  - ")[1:] {
			for _, sd := range accepted {
				if strings.HasPrefix(line, string(sd.FullName())+".") {
					lacking[sd.FullName()] = line
				}
			}
		}
		if len(lacking) == 0 { // cannot happen: every problem names its method
			d.o.Log.Error("capability registry not rebuilt", "err", err)
			return d.cur.Load()
		}
		accepted = slices.DeleteFunc(accepted, func(sd protoreflect.ServiceDescriptor) bool {
			reason, bad := lacking[sd.FullName()]
			if bad {
				refuse(owner[sd.FullName()], sd, reason, false, "")
				delete(owner, sd.FullName())
			}
			return bad
		})
	}
	for _, c := range reg.caps {
		c.Backend = owner[c.Method.Parent().FullName()]
	}
	for _, b := range d.o.Backends {
		if st := d.state[b.Name]; st.finger == "" && st.unreachable {
			reg.unreached = append(reg.unreached, b.Name)
		}
	}
	keys := make([]string, 0, len(refused))
	for k := range refused {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, before := d.refused[k]; before {
			continue
		}
		backend, service, _ := strings.Cut(k, "/")
		attrs := []any{"backend", backend, "service", service, "reason", refused[k]}
		if conflict[k] {
			attrs = append(attrs, "winner", winner[k])
			d.m.conflicts.WithLabelValues(backend).Inc()
		}
		d.o.Log.Error("capability service refused", attrs...)
	}
	d.refused = refused
	counts := map[string]int{}
	for _, n := range owner {
		counts[n]++
	}
	for _, b := range d.o.Backends {
		d.m.services.WithLabelValues(b.Name).Set(float64(counts[b.Name]))
	}
	old := d.cur.Load()
	added, removed := diffTools(old, reg)
	d.cur.Store(reg)
	d.m.swaps.Inc()
	d.m.tools.Set(float64(len(reg.tools)))
	d.o.Log.Info("capability registry updated", "tools", len(reg.tools), "actions", len(reg.actions),
		"scopes", len(reg.scopes), "added", added, "removed", removed)
	d.subMu.Lock()
	subs := slices.Clone(d.subs)
	d.subMu.Unlock()
	for _, f := range subs {
		f(reg)
	}
	return reg
}

// rules are the registry's rules under d's options.
func (d *Discovery) rules(checkScopes bool) rules {
	return rules{checkScopes: checkScopes, reserved: d.o.ReservedPaths, underscoreTools: d.o.UnderscoreToolNames}
}

// ownerIn names the backend of the service an "already declared by
// pkg.Service.Method" problem points at.
func ownerIn(reason string, owner map[protoreflect.FullName]string) string {
	_, rest, _ := strings.Cut(reason, "already declared by ")
	name := strings.FieldsFunc(rest, func(r rune) bool { return r == ';' || r == ' ' })
	if len(name) == 0 {
		return ""
	}
	for svc, b := range owner {
		if name[0] == string(svc) || strings.HasPrefix(name[0], string(svc)+".") {
			return b
		}
	}
	return ""
}

func diffTools(old, cur *Registry) (added, removed []string) {
	for n := range cur.tools {
		if _, ok := old.tools[n]; !ok {
			added = append(added, n)
		}
	}
	for n := range old.tools {
		if _, ok := cur.tools[n]; !ok {
			removed = append(removed, n)
		}
	}
	sort.Strings(added)
	sort.Strings(removed)
	return added, removed
}

type discoveryMetrics struct {
	up, services *prometheus.GaugeVec
	discoveries  *prometheus.CounterVec
	conflicts    *prometheus.CounterVec
	swaps        prometheus.Counter
	tools        prometheus.Gauge
}

func newDiscoveryMetrics(reg prometheus.Registerer) (*discoveryMetrics, error) {
	m := &discoveryMetrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tollgate_capability_backend_up",
			Help: "1 if the last reflection of the capability backend succeeded, else 0.",
		}, []string{"backend"}),
		services: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tollgate_capability_backend_services",
			Help: "Services of the capability backend in the current registry.",
		}, []string{"backend"}),
		discoveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_capability_discoveries_total",
			Help: "Reflections of capability backends, by backend and result (ok, unavailable, invalid).",
		}, []string{"backend", "result"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_capability_conflicts_total",
			Help: "Services of the backend newly refused because an earlier backend declares the same service, tool, route, operationId or scope.",
		}, []string{"backend"}),
		swaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_capability_registry_swaps_total",
			Help: "Capability registries installed.",
		}),
		tools: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tollgate_capability_tools",
			Help: "Tools in the current capability registry.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.up, m.services, m.discoveries, m.conflicts, m.swaps, m.tools} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

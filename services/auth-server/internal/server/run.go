// Package server wires the auth-server: configuration, signing keys, the
// client registry, Redis, the public OAuth/OIDC HTTP endpoints, the fleet
// gRPC API and the admin listener.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/reflect/protoreflect"

	authv1 "github.com/tollgate/tollgate/proto/gen/tollgate/auth/v1"
	"github.com/tollgate/tollgate/services/auth-server/internal/audit"
	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
	"github.com/tollgate/tollgate/services/auth-server/internal/config"
	"github.com/tollgate/tollgate/services/auth-server/internal/oauth"
	"github.com/tollgate/tollgate/services/platform/app"
	"github.com/tollgate/tollgate/services/platform/capauth"
	pconfig "github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/grpcx"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/revocation"
	"github.com/tollgate/tollgate/services/platform/telemetry"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// Run starts the auth-server and blocks until ctx ends. Start-up fails
// closed: every configuration, key and client-registry problem is listed.
func Run(ctx context.Context, getenv func(string) string, stderr io.Writer, onListen app.Listening) error {
	cfg, err := config.Load(getenv)
	var problems pconfig.Problems
	configValid := err == nil
	if err != nil {
		var ce *pconfig.Error
		if !errors.As(err, &ce) {
			return err
		}
		problems = append(problems, ce.Problems...)
	}
	var ring *tokens.KeyRing
	if cfg.SigningKeysDir != "" {
		if ring, err = tokens.LoadKeyDir(cfg.SigningKeysDir, cfg.SigningKeyActive, cfg.SigningKeyActiveES256); err != nil {
			problems.Addf("SIGNING_KEYS_DIR: %v", err)
		} else if !ring.Supports(jose.SignatureAlgorithm(cfg.AccessTokenAlg)) {
			problems.Addf("ACCESS_TOKEN_SIGNING_ALG: %s needs an EC P-256 key in SIGNING_KEYS_DIR", cfg.AccessTokenAlg)
		}
	}
	own, err := Own()
	if err != nil {
		problems.Addf("%v", err)
		own, _ = registry.New()
	}
	if !configValid {
		// Without a valid configuration the backends are not read: report
		// the client registry's other problems with the rest.
		_, cp := clients.LoadFile(cfg.ClientsFile, clients.Rules{Resources: cfg.Resources(), Production: cfg.Production(), ScopesUnknown: clients.AlwaysUnknown})
		for _, p := range cp {
			problems.Addf("CLIENTS_FILE: %s", p)
		}
		return problems.Err()
	}
	// (Key problems are reported below with the client registry's.)
	base, err := app.NewBase(ctx, cfg.Common, stderr)
	if err != nil {
		return err
	}
	gc := gcPolicy(getenv, cfg.GCPercent, memlimit.FromCgroup)
	if gc.percent != 0 || gc.limit != 0 {
		base.Log.Info("garbage collector set", "gc_percent", gc.percent, "memory_limit_bytes", gc.limit, "container_memory_limit_bytes", gc.container)
	}
	if gc.err != nil {
		base.Log.Warn("container memory limit not read: the Go runtime has no memory limit (set GOMEMLIMIT)", "error", gc.err)
	}
	// The supported scopes are the OpenID Connect ones, the auth-server's
	// own services' and those of every configured backend, read from its
	// reflection now and every CAPABILITY_REFRESH_INTERVAL (see
	// docs/architecture.md, "Capabilities discovered from backends").
	dctx, stopDiscovery := context.WithCancel(ctx)
	defer stopDiscovery()
	disc, closeBackends, err := registry.Start(dctx, registry.Fleet{
		Backends: cfg.Backends,
		First:    []registry.Backend{{Name: pconfig.ReservedBackend, Target: cfg.GRPCAddr, Services: ownServices()}},
		Log:      base.Log, Metrics: base.Metrics, Telemetry: base.Telemetry,
	})
	if err != nil {
		base.Close()
		return err
	}
	defer closeBackends()
	caps := disc.Registry()
	// A client that names a scope must find it declared, unless a backend
	// has not been reached yet (down while the auth-server starts, or still
	// when the clients file is reloaded): the scopes it declares are
	// unknown, so the clients' scopes are taken provisionally — refusing a
	// reload would drop its change (a client removed, say) until the file
	// changed again — and checked again once every backend has answered
	// (checkClientScopes); meanwhile, and after, a scope no backend
	// declares is refused per request (invalid_scope at /oauth/authorize).
	rules := clients.Rules{Resources: cfg.Resources(), Production: cfg.Production(), Scopes: caps.ScopeNames(),
		ScopeSource:   scopeNames(disc),
		ScopesUnknown: func() bool { return len(disc.Registry().Unreached()) > 0 }}
	unreached := caps.Unreached()
	static, cp := clients.LoadFile(cfg.ClientsFile, rules)
	for _, p := range cp {
		problems.Addf("CLIENTS_FILE: %s", p)
	}
	if err := problems.Err(); err != nil {
		base.Close()
		return err
	}
	// Open refuses a reachable Redis without persistence when durability
	// is required (production): refresh-token families must survive restarts.
	rdb, err := redisx.Open(ctx, cfg.Redis, redisx.WithLogger(base.Log), redisx.WithMetrics(base.Metrics))
	if err != nil {
		base.Close()
		return err
	}
	defer rdb.Close()
	if err := base.Instrument(rdb); err != nil {
		base.Close()
		return err
	}
	base.Ready.AddDependency("redis", rdb.Ping) // reported, never gating (see admin.Readiness)
	if static.Len() == 0 {
		base.Log.Warn("the static client registry is empty; only self-registered clients can sign in")
	}

	// Revoked grants are followed in memory by this replica too (userinfo,
	// introspection); Redis being down does not stop the start.
	rctx, stopRevocations := context.WithCancel(ctx)
	defer stopRevocations()
	revoked, err := revocation.Follow(rctx, rdb, cfg.Revocation, base.Log, base.Metrics)
	if err != nil {
		base.Close()
		return err
	}
	auditLog := audit.New(base.Output, cfg.Service)
	o, err := oauth.New(oauth.Options{
		Config: cfg, Ring: ring, Redis: rdb, Static: static, Log: base.Log, Metrics: base.Metrics,
		Audit: auditLog, Revocations: revoked, Capabilities: caps,
	})
	if err != nil {
		base.Close()
		return fmt.Errorf("oauth: %w", err)
	}
	defer o.Close() // before rdb.Close: no re-listing outlives the client
	disc.OnChange(o.UseRegistry)
	unsupported := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tollgate_client_scopes_unsupported",
		Help: "Scopes static clients (CLIENTS_FILE) allow that no backend declares, counted once every backend has answered; requests for them are refused (invalid_scope).",
	})
	if err := base.Metrics.Register(unsupported); err != nil {
		base.Close()
		return err
	}
	if len(unreached) > 0 {
		base.Log.Warn("backends not reached yet: the static clients' scopes are accepted until they answer", "backends", unreached)
	}
	checkScopes := checkClientScopes(static, base.Log, unsupported)
	disc.OnChange(checkScopes)
	checkScopes(disc.Registry())
	o.UseRegistry(disc.Registry()) // one installed since caps was read
	// The fleet's gRPC API. The key set is public (verifiers fetch it
	// before they can check anything); every other RPC needs a verified
	// access token with its scopes (capauth), and the only streams served
	// are the health watch and reflection.
	auth := capauth.Options{
		Registry: own, Verifier: o.Verifier(),
		Public:  []string{capauth.HealthCheck, authv1.KeySetService_GetKeySet_FullMethodName},
		Streams: []string{capauth.HealthWatch, capauth.Reflection},
	}
	srv := grpcx.NewServer(grpcx.ServerOptions{
		Logger: base.Log, Registry: base.Metrics, Telemetry: base.Telemetry,
		StreamWorkers: cfg.StreamWorkers(),
		Unary:         []grpc.UnaryServerInterceptor{capauth.Unary(auth)},
		Stream:        []grpc.StreamServerInterceptor{capauth.Stream(auth)},
	})
	base.Ready.OnDrain(srv.Health.Shutdown) // grpc.health.v1 answers NOT_SERVING while draining
	authv1.RegisterKeySetServiceServer(srv, &KeySet{Issuer: cfg.Issuer, Ring: ring})
	authv1.RegisterGrantsServiceServer(srv, &Grants{OAuth: o})
	g, err := app.NewGRPC(ctx, cfg.GRPCAddr, srv.Server)
	if err != nil {
		base.Close()
		return err
	}
	// A rotated secret takes effect when the mounted registry changes; a
	// removed client's access tokens are refused fleet-wide (recorded
	// like a revoked grant), and its grants end: the record is kept for
	// the refresh-token lifetime, so that a client added back does not
	// bring back the grants made before its removal (oauth's
	// grantOutlivedItsClient).
	removals := revocation.NewRevoker(rdb, oauth.RevocationRetention(max(cfg.AccessTokenTTL, cfg.RefreshTokenTTL)), revoked)
	removalFailures := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tollgate_revocation_client_removal_failures_total",
		Help: "Attempts to record clients removed from CLIENTS_FILE that failed (Redis unavailable); each is retried at the next reload tick.",
	})
	if err := base.Metrics.Register(removalFailures); err != nil {
		base.Close()
		return err
	}
	// A refused reload keeps the last good registry; it is made visible
	// (docs/operations/client-registry.md#reloads): a gauge, a readiness
	// dependency reported without failing the pod — which serves the last
	// good registry, as every replica does — and WARN lines: Watch's when
	// a change is refused, then the dependency's "still down", with the
	// problems, once a minute while it stays refused (the only reminder:
	// Watch does not repeat it).
	refused := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tollgate_auth_clients_file_refused",
		Help: "1 while the CLIENTS_FILE on disk is refused (a reload found problems; the previous registry stays in use), 0 once a reload is accepted.",
	}, func() float64 {
		if static.Refused() != nil {
			return 1
		}
		return 0
	})
	if err := base.Metrics.Register(refused); err != nil {
		base.Close()
		return err
	}
	if cfg.ClientsFile != "" {
		base.Ready.AddDependency("clients-file", func(context.Context) error {
			if r := static.Refused(); r != nil {
				return fmt.Errorf("CLIENTS_FILE %s changed but was refused (since %s; the previous registry stays in use): %s",
					cfg.ClientsFile, r.Since.UTC().Format(time.RFC3339), strings.Join(r.Problems, "; "))
			}
			return nil
		})
	}
	go static.Watch(ctx, cfg.ClientsFile, rules,
		cfg.ClientsReload, base.Log, o.CheckRegistry, recordRemovals(removals, base.Log, removalFailures), auditLog)
	public, err := base.PublicHTTP(o.Handler(), telemetry.HTTPOptions{Route: o.Route, AccessLog: base.Log})
	if err != nil {
		base.Close()
		return err
	}
	h, err := app.NewHTTP(ctx, "http", cfg.HTTPAddr, public)
	if err != nil {
		base.Close()
		return err
	}
	base.Log.Info("oauth provider ready", "issuer", cfg.Issuer, "static_clients", static.Len(),
		"active_key", ring.ActiveKeyID(), "upstream", cfg.Upstream.Issuer, "dcr", cfg.DCREnabled, "cimd", cfg.CIMDEnabled)
	return base.Serve(ctx, onListen, g, h)
}

// recordRemovals records the clients removed from the clients file
// (clients.Static.Watch) with rev. An id the records cannot hold (longer
// than revocation.MaxClientIDLength) is logged and skipped, so that it
// does not hold up the others' retries. Each failed attempt counts in
// failures.
func recordRemovals(rev *revocation.Revoker, log *slog.Logger, failures prometheus.Counter) clients.RecordRemovals {
	return func(ctx context.Context, at time.Time, ids []string) error {
		valid := make([]string, 0, len(ids))
		for _, id := range ids {
			if revocation.ValidClientID(id) {
				valid = append(valid, id)
			} else {
				log.Error("a client removed from the registry has an id the revocation records cannot hold; its access tokens are refused by the auth-server only, until they expire",
					"client_id_bytes", len(id), "max", revocation.MaxClientIDLength)
			}
		}
		err := rev.RemoveClients(ctx, at, valid...)
		if err != nil {
			failures.Inc()
		}
		return err
	}
}

// checkClientScopes returns the check, run at each registry change, of the
// static clients' scopes against those the backends declare; it does
// nothing while a backend has never been reached. Each scope no backend
// declares is logged once and counted in the gauge.
func checkClientScopes(static *clients.Static, log *slog.Logger, gauge prometheus.Gauge) func(*registry.Registry) {
	var mu sync.Mutex
	logged := map[string]bool{}
	return func(reg *registry.Registry) {
		if len(reg.Unreached()) > 0 {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		bad := static.UnsupportedScopes(reg.ScopeNames())
		for _, b := range bad {
			if !logged[b] {
				logged[b] = true
				id, sc, _ := strings.Cut(b, " ")
				log.Error("static client scope not supported: no backend declares it; the client's requests for it are refused (invalid_scope)", "client_id", id, "scope", sc)
			}
		}
		gauge.Set(float64(len(bad)))
	}
}

// scopeNames is the names of the scopes supported now, as a client that
// names no scopes asks for them (clients.Client.AnyScope): on every token
// and authorization request. They are computed once per registry the
// discovery installs — Registry.ScopeNames copies and sorts them on each
// call, which was ~6 % of a refresh's allocation — and shared: callers
// only read them.
func scopeNames(disc *registry.Discovery) func() []string {
	type cached struct {
		reg   *registry.Registry
		names []string
	}
	var last atomic.Pointer[cached]
	return func() []string {
		reg := disc.Registry()
		if c := last.Load(); c != nil && c.reg == reg {
			return c.names
		}
		c := &cached{reg: reg, names: reg.ScopeNames()}
		last.Store(c)
		return c.names
	}
}

// ownServices are the auth-server's own services (tollgate.auth.v1): it
// serves them, so their options (the connected-apps capability and its
// scopes) are its own. Other packages linked into the binary publish
// nothing.
func ownServices() []protoreflect.ServiceDescriptor {
	var out []protoreflect.ServiceDescriptor
	for _, fd := range []protoreflect.FileDescriptor{authv1.File_tollgate_auth_v1_keys_proto, authv1.File_tollgate_auth_v1_grants_proto} {
		for i := 0; i < fd.Services().Len(); i++ {
			out = append(out, fd.Services().Get(i))
		}
	}
	return out
}

// Own is the registry of the auth-server's own services: the policies of
// its gRPC API (capauth).
func Own() (*registry.Registry, error) {
	return registry.New(ownServices()...)
}

// KeySet serves the fleet's verifiers.
type KeySet struct {
	authv1.UnimplementedKeySetServiceServer
	Issuer string
	Ring   *tokens.KeyRing
}

// GetKeySet returns the issuer and the public keys.
func (k *KeySet) GetKeySet(context.Context, *authv1.GetKeySetRequest) (*authv1.GetKeySetResponse, error) {
	return &authv1.GetKeySetResponse{Issuer: k.Issuer, JwksJson: k.Ring.PublicJWKSJSON(), ActiveKeyId: k.Ring.ActiveKeyID()}, nil
}

// memoryLimitShare is the share of the container's memory limit that the
// auth-server gives the Go runtime as its soft memory limit (GOMEMLIMIT)
// when the environment sets none: the rest is headroom for what the limit
// does not bound exactly (the runtime may overshoot it briefly, and
// non-Go memory such as the executable's pages counts against the
// container, not the runtime).
const memoryLimitShare = 0.9

// gcSetting is what gcPolicy applied.
type gcSetting struct {
	// percent is the GOGC applied from GC_PERCENT; 0 when GOGC is in the
	// environment (the runtime applied it, and it stands).
	percent int
	// limit is the soft memory limit applied, bytes: memoryLimitShare of
	// container; 0 when GOMEMLIMIT is in the environment (it stands) or
	// no container limit was found.
	limit int64
	// container is the container's memory limit found, bytes (0: none).
	container uint64
	// err is why the container's limit could not be read (then no limit
	// is applied); nil for a container without a limit.
	err error
}

// gcPolicy sets the garbage collector's target to pct (GC_PERCENT) unless
// GOGC is in the environment, and its soft memory limit to
// memoryLimitShare of the container's memory limit (containerLimit: the
// process's cgroup, memlimit.FromCgroup) unless GOMEMLIMIT is — the
// runtime has then read the operator's settings already, and they stand.
// A high target spends memory for CPU (at 800 a collection starts once the
// heap has grown by 8 live heaps, a quarter as often as at 200); the limit
// bounds what that can cost: as the heap nears it the collector runs more
// often, whatever the target (docs/reference/configuration.md "Go
// runtime"). The settings are the process's: the auth-server's main
// applies them once at start.
func gcPolicy(getenv func(string) string, pct int, containerLimit func() (uint64, error)) gcSetting {
	var s gcSetting
	if getenv("GOGC") == "" {
		debug.SetGCPercent(pct)
		s.percent = pct
	}
	if getenv("GOMEMLIMIT") != "" {
		return s
	}
	limit, err := containerLimit()
	switch {
	case errors.Is(err, memlimit.ErrNoLimit), errors.Is(err, memlimit.ErrNoCgroup), errors.Is(err, memlimit.ErrCgroupsNotSupported):
		return s
	case err != nil:
		s.err = err
		return s
	case limit == 0 || limit > math.MaxInt64:
		return s
	}
	s.container = limit
	s.limit = int64(float64(limit) * memoryLimitShare)
	debug.SetMemoryLimit(s.limit)
	return s
}

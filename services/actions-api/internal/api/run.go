// Package api wires the actions-api: the GPT Actions REST API whose routes
// and OpenAPI document are built from the capability registry, each
// operation answered by capability-core over gRPC with the caller's token.
package api

import (
	"context"
	"io"
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/tollgate/tollgate/proto/gen/tollgate/capability/v1" // the offline export's capabilities (Capabilities)
	"github.com/tollgate/tollgate/services/actions-api/internal/config"
	"github.com/tollgate/tollgate/services/actions-api/internal/openapi"
	"github.com/tollgate/tollgate/services/platform/app"
	pconfig "github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/grpcx"
	"github.com/tollgate/tollgate/services/platform/ratelimit"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/revocation"
	"github.com/tollgate/tollgate/services/platform/telemetry"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// Capabilities is the registry of the capabilities linked into the binary
// (capability-core's and the auth-server's services). Only the offline
// export (Export, make openapi) uses it: the running service serves what
// its configured backends declare (Run, registry.Discovery).
func Capabilities() (*registry.Registry, error) {
	return registry.FromFiles(protoregistry.GlobalFiles)
}

// Run starts the actions-api and blocks until ctx ends.
func Run(ctx context.Context, getenv func(string) string, stderr io.Writer, onListen app.Listening) (err error) {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	base, err := app.NewBase(ctx, cfg.Common, stderr)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			base.Close()
		}
	}()
	authConn, err := base.Dial(cfg.AuthGRPCAddr, "auth-server")
	if err != nil {
		return err
	}
	defer authConn.Close()
	coreConn, err := base.Dial(cfg.CoreGRPCAddr, "capability-core")
	if err != nil {
		return err
	}
	defer coreConn.Close()
	// Open refuses a reachable Redis older than 7.0, and one without
	// persistence when durability is required (production).
	rdb, err := redisx.Open(ctx, cfg.Redis, redisx.WithLogger(base.Log), redisx.WithMetrics(base.Metrics))
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := base.Instrument(rdb); err != nil {
		return err
	}
	// Revoked grants are followed in memory (loaded now, then announced
	// and reconciled); Redis being down does not stop the start.
	rctx, stopRevocations := context.WithCancel(ctx)
	defer stopRevocations()
	revoked, err := revocation.Follow(rctx, rdb, cfg.Revocation, base.Log, base.Metrics)
	if err != nil {
		return err
	}
	verifier := tokens.NewVerifier(tokens.VerifierOptions{
		Source: tokens.NewGRPCKeySource(authConn), Audiences: []string{cfg.Audience}, Revocations: revoked,
	})
	// Keys are fetched in the background and refreshed every 5 minutes:
	// requests never wait for the auth-server (tokens/source.go).
	go verifier.KeepFresh(ctx)
	// Shared dependencies are reported, never gating (see admin.Readiness).
	base.Ready.AddDependency("capability-core", grpcx.HealthCheck(coreConn, ""))
	base.Ready.AddDependency("signing-keys", verifier.Ready)
	base.Ready.AddDependency("redis", rdb.Ping)

	ins, err := newInstruments(base.Metrics, base.Log)
	if err != nil {
		return err
	}
	// The operations are what the configured backends serve, read from
	// their reflection now and every CAPABILITY_REFRESH_INTERVAL; the
	// auth-server is always one (its connected-apps service, see
	// docs/architecture.md, "Capabilities discovered from backends").
	dctx, stopDiscovery := context.WithCancel(ctx)
	defer stopDiscovery()
	disc, closeBackends, err := registry.Start(dctx, registry.Fleet{
		Backends: cfg.Backends,
		First:    []registry.Backend{{Name: pconfig.ReservedBackend, Target: cfg.AuthGRPCAddr, Conn: authConn}},
		Reuse:    map[string]*grpc.ClientConn{cfg.CoreGRPCAddr: coreConn},
		// A service declaring an operation at a path the actions-api
		// serves itself is refused, alone, by discovery: not the whole
		// registry here, which stopped the start and, at a refresh, kept
		// every backend's previous operations.
		ReservedPaths: slices.Sorted(maps.Keys(ownPaths(cfg))),
		Log:           base.Log, Metrics: base.Metrics, Telemetry: base.Telemetry,
	})
	if err != nil {
		return err
	}
	defer closeBackends()
	tmpl := server{
		cfg: cfg, log: base.Log, core: coreConn, verifier: verifier, backends: disc.Conns(),
		limiter: ratelimit.New(rdb), instruments: ins,
	}
	live := &liveHandler{}
	// A document over the GPT Actions limits (openapi.CheckLimits) never
	// stops the API: its operations and the document are served, and the
	// problem is logged, reported by readiness as the dependency
	// "openapi-document" (down, never failing readiness; the
	// tollgate_dependency_up gauge) and measured by
	// tollgate_actions_openapi_document_bytes.
	docSize := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tollgate_actions_openapi_document_bytes",
		Help: "Size of the served OpenAPI document; GPT Actions import at most 100,000 characters (budget openapi.MaxDocument).",
	})
	if err := base.Metrics.Register(docSize); err != nil {
		return err
	}
	var docProblem atomic.Pointer[error]
	base.Ready.AddDependency("openapi-document", func(context.Context) error {
		if p := docProblem.Load(); p != nil {
			return *p
		}
		return nil
	})
	var mu sync.Mutex
	apply := func(reg *registry.Registry) error {
		mu.Lock()
		defer mu.Unlock()
		if reg != disc.Registry() {
			return nil // a newer registry is (or was) applied
		}
		h, doc, err := tmpl.withRegistry(reg)
		if err != nil {
			return err
		}
		live.h.Store(&h)
		docSize.Set(float64(len(doc.json)))
		if doc.problem != nil {
			base.Log.Error("OpenAPI document over the GPT Actions limits: a GPT cannot import it; its operations are served (docs/reference/actions.md, \"Document size\")",
				"bytes", len(doc.json), "budget", openapi.MaxDocument, "err", doc.problem)
			docProblem.Store(&doc.problem)
		} else {
			docProblem.Store(nil)
		}
		return nil
	}
	disc.OnChange(func(reg *registry.Registry) {
		if err := apply(reg); err != nil {
			base.Log.Error("capability registry not served: the actions-api keeps the previous operations", "err", err)
		}
	})
	if err := apply(disc.Registry()); err != nil {
		return err
	}
	// observe (in the handler) logs each request and names its route; the
	// platform middleware adds the request id, the trace and the latency
	// histogram.
	public, err := base.PublicHTTP(live, telemetry.HTTPOptions{})
	if err != nil {
		return err
	}
	h, err := app.NewHTTP(ctx, "http", cfg.HTTPAddr, public)
	if err != nil {
		return err
	}
	return base.Serve(ctx, onListen, h)
}

// servedDocument is the OpenAPI document a handler serves and what
// openapi.CheckLimits found in it (nil: within the limits).
type servedDocument struct {
	json    []byte
	problem error
}

// withRegistry is a copy of s serving reg: its routes and its OpenAPI
// document, served even over the GPT Actions limits (the caller reports
// them).
func (s server) withRegistry(reg *registry.Registry) (http.Handler, servedDocument, error) {
	doc, err := openapi.Build(reg, openapi.Options{ServerURL: s.cfg.PublicURL, OAuthBaseURL: s.cfg.OAuthBaseURL})
	if err != nil {
		return nil, servedDocument{}, err
	}
	if s.doc, err = doc.JSON(); err != nil {
		return nil, servedDocument{}, err
	}
	served := servedDocument{json: s.doc, problem: openapi.CheckLimits(s.doc)}
	s.reg = reg
	if s.metadataURL, s.metadata, err = resourceMetadata(s.cfg, reg); err != nil {
		return nil, servedDocument{}, err
	}
	e, err := s.handler()
	if err != nil {
		return nil, servedDocument{}, err
	}
	return e, served, nil
}

// liveHandler serves the handler of the current registry: a request that
// started keeps the one it found.
type liveHandler struct{ h atomic.Pointer[http.Handler] }

func (l *liveHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*l.h.Load()).ServeHTTP(w, r)
}

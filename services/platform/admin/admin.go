// Package admin is the per-service admin listener: Prometheus metrics,
// liveness, readiness that reflects only what stops this pod from serving
// (shared dependencies are reported, never gating), and opt-in pprof. It
// never shares a port with public traffic.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check reports whether one dependency is usable. It must honour ctx.
type Check func(ctx context.Context) error

// DependencyTimeout bounds each dependency check, so a hung dependency
// cannot make the readiness endpoint itself time out (Kubernetes probes
// default to a 1s timeout).
const DependencyTimeout = 500 * time.Millisecond

// Readiness answers /healthz/ready. Only what stops this pod from serving
// fails it: a local check (Add) failing, or draining (Drain) after SIGTERM.
// Shared dependencies (Redis, the auth-server's key set, capability-core)
// are AddDependency checks: their state is reported in the body and in the
// tollgate_dependency_up gauge but never fails readiness, because every pod
// shares them — failing readiness would take the whole fleet out of its
// Services at once and turn a degraded answer (503 + Retry-After from the
// service itself) into the ingress's bare 503.
//
// A check's error never reaches the body: it carries internal addresses
// (Redis's host:port, a gRPC target, "dial tcp 10.0.3.7:6379: connect:
// connection refused") and the admin port answers whoever reaches it. The
// body says only which check is down and whether it timed out (Result);
// the error itself is logged when a check goes down, at most once a
// minute (RepeatDownEvery) while it stays down, however its error changes,
// and once when it is ok again.
type Readiness struct {
	mu       sync.RWMutex
	checks   map[string]Check
	deps     map[string]Check
	draining bool
	onDrain  []func()
	timeout  time.Duration

	log         *slog.Logger
	logMu       sync.Mutex
	failed      map[string]*downState // the checks that are down, by name
	repeatEvery time.Duration         // RepeatDownEvery; tests shorten it
}

// NewReadiness returns a readiness set whose local checks each get timeout;
// dependency checks get at most DependencyTimeout. Failing checks' errors
// are logged on log (nil: not logged).
func NewReadiness(timeout time.Duration, log *slog.Logger) *Readiness {
	return &Readiness{checks: map[string]Check{}, deps: map[string]Check{}, timeout: timeout, log: log,
		failed: map[string]*downState{}, repeatEvery: RepeatDownEvery}
}

// Add registers a local check: when it fails, this pod cannot serve and
// readiness fails.
func (r *Readiness) Add(name string, c Check) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks[name] = c
}

// AddDependency registers a check of a dependency shared by every pod: it
// is reported but does not fail readiness.
func (r *Readiness) AddDependency(name string, c Check) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deps[name] = c
}

// OnDrain registers f to run once when draining begins (a gRPC server's
// health service switching to NOT_SERVING, for example).
func (r *Readiness) OnDrain(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onDrain = append(r.onDrain, f)
}

// Drain marks the service not ready (shutdown has begun) so load balancers
// stop sending new work while in-flight requests finish, and runs the
// OnDrain functions.
func (r *Readiness) Drain() {
	r.mu.Lock()
	already := r.draining
	r.draining = true
	hooks := r.onDrain
	r.mu.Unlock()
	if already {
		return
	}
	for _, f := range hooks {
		f()
	}
}

// Draining reports whether Drain has been called.
func (r *Readiness) Draining() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.draining
}

// Result is the outcome of one check.
type Result struct {
	Name string `json:"name"`
	// Status is "ok" or "down".
	Status string `json:"status"`
	// Error says why a check is down, in words that name no address:
	// "timeout" (it did not answer within its time, or its client's socket
	// deadline passed: a hung Redis), "failed" (it answered
	// an error, which is logged, not shown) or, for "shutdown", "draining".
	Error string `json:"error,omitempty"`
}

// The Result.Error values.
const (
	ErrorTimeout  = "timeout"
	ErrorFailed   = "failed"
	ErrorDraining = "draining"
)

// Report is the body of /healthz/ready.
type Report struct {
	// Status is "ok" (ready) or "down".
	Status string `json:"status"`
	// Checks are the local checks, plus "shutdown" while draining.
	Checks []Result `json:"checks"`
	// Dependencies are the shared dependencies; they never fail readiness.
	Dependencies []Result `json:"dependencies"`
}

// Run runs every check concurrently and reports whether the pod is ready.
func (r *Readiness) Run(ctx context.Context) (bool, Report) {
	r.mu.RLock()
	checks, deps, draining := sorted(r.checks), sorted(r.deps), r.draining
	r.mu.RUnlock()
	var local, shared []Result
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); local = r.runChecks(ctx, "check", checks, r.timeout) }()
	go func() {
		defer wg.Done()
		shared = r.runChecks(ctx, "dependency", deps, min(r.timeout, DependencyTimeout))
	}()
	wg.Wait()
	ok := !draining
	for _, res := range local {
		ok = ok && res.Status == "ok"
	}
	if draining {
		local = append(local, Result{Name: "shutdown", Status: "down", Error: ErrorDraining})
	}
	rep := Report{Status: "ok", Checks: local, Dependencies: shared}
	if !ok {
		rep.Status = "down"
	}
	return ok, rep
}

// Dependencies runs only the dependency checks.
func (r *Readiness) Dependencies(ctx context.Context) []Result {
	r.mu.RLock()
	deps := sorted(r.deps)
	r.mu.RUnlock()
	return r.runChecks(ctx, "dependency", deps, min(r.timeout, DependencyTimeout))
}

type named struct {
	name  string
	check Check
}

func sorted(m map[string]Check) []named {
	out := make([]named, 0, len(m))
	for n, c := range m {
		out = append(out, named{n, c})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func (r *Readiness) runChecks(ctx context.Context, kind string, checks []named, timeout time.Duration) []Result {
	results := make([]Result, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			results[i] = Result{Name: c.name, Status: "ok"}
			err := c.check(cctx)
			if err != nil {
				results[i].Status, results[i].Error = "down", ErrorFailed
				var ne net.Error // a socket deadline: 'read tcp …: i/o timeout' from a hung Redis
				if errors.Is(err, context.DeadlineExceeded) || cctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout()) {
					results[i].Error = ErrorTimeout
				}
			}
			if err != nil && ctx.Err() != nil {
				// The caller gave up (a probe or scrape that hung up, a
				// request cancelled): that says nothing of the check, so it
				// is neither logged down nor counted as a failed probe.
				return
			}
			r.logChange(kind, c.name, err, results[i].Error)
		}()
	}
	wg.Wait()
	return results
}

// downState is what is known of a check that is down, for its log lines.
type downState struct {
	since, warned time.Time
	probes        int // failed probes since the last warning
	total         int // failed probes since it went down
}

// RepeatDownEvery is how often a warning repeats while a check stays down.
const RepeatDownEvery = time.Minute

// logChange logs, for a check that failed (class is its Result.Error) or
// passed (err nil): a warning with its error when it goes down; while it
// stays down, whatever its error and class — a hung Redis alternates
// 'read tcp …:<new port>->…: i/o timeout' (timeout) with the breaker's
// 'circuit breaker open' (failed) — at most one more warning per
// RepeatDownEvery, with the latest error and the failed probes since the
// last warning; and one line when it is ok again. So neither probes nor
// scrapes make a line each.
func (r *Readiness) logChange(kind, name string, err error, class string) {
	if r.log == nil {
		return
	}
	now := time.Now()
	r.logMu.Lock()
	st, wasDown := r.failed[name]
	switch {
	case err == nil && !wasDown:
		r.logMu.Unlock()
	case err == nil:
		delete(r.failed, name)
		r.logMu.Unlock()
		r.log.Info("readiness: "+kind+" ok again", "check", name,
			"down_for", now.Sub(st.since).Round(time.Millisecond), "failed_probes", st.total)
	case !wasDown:
		r.failed[name] = &downState{since: now, warned: now, total: 1}
		r.logMu.Unlock()
		r.log.Warn("readiness: "+kind+" down", "check", name, "error", class, "err", err.Error())
	default:
		st.probes++
		st.total++
		if now.Sub(st.warned) < r.repeatEvery {
			r.logMu.Unlock()
			return
		}
		n := st.probes
		st.warned, st.probes = now, 0
		down := now.Sub(st.since).Round(time.Millisecond)
		r.logMu.Unlock()
		r.log.Warn("readiness: "+kind+" still down", "check", name, "error", class, "err", err.Error(),
			"down_for", down, "failed_probes", n)
	}
}

// Collector returns a Prometheus collector of tollgate_dependency_up
// {dependency}: 1 when the dependency check passes, 0 when it fails. The
// checks run at scrape time, bounded by DependencyTimeout.
func (r *Readiness) Collector() prometheus.Collector { return depCollector{r} }

var depDesc = prometheus.NewDesc("tollgate_dependency_up",
	"Whether a shared dependency answers (1) or not (0); it never fails readiness.", []string{"dependency"}, nil)

type depCollector struct{ r *Readiness }

func (c depCollector) Describe(ch chan<- *prometheus.Desc) { ch <- depDesc }

func (c depCollector) Collect(ch chan<- prometheus.Metric) {
	for _, res := range c.r.Dependencies(context.Background()) {
		v := 0.0
		if res.Status == "ok" {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(depDesc, prometheus.GaugeValue, v, res.Name)
	}
}

// Options configure the admin handler.
type Options struct {
	Gatherer  prometheus.Gatherer
	Readiness *Readiness
	Pprof     bool
}

// Handler serves /metrics, /healthz/live, /healthz/ready and, when enabled,
// /debug/pprof/.
func Handler(o Options) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz/live", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /healthz/ready", func(w http.ResponseWriter, r *http.Request) {
		ok, rep := o.Readiness.Run(r.Context())
		code := http.StatusOK
		if !ok {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, rep)
	})
	if o.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Package admin is the per-service admin listener: Prometheus metrics,
// liveness, readiness that reflects dependencies, and opt-in pprof. It never
// shares a port with public traffic.
package admin

import (
	"context"
	"encoding/json"
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

// Readiness runs named checks; the service is ready when all pass.
type Readiness struct {
	mu       sync.RWMutex
	checks   map[string]Check
	draining bool
	timeout  time.Duration
}

// NewReadiness returns a readiness set whose checks each get timeout.
func NewReadiness(timeout time.Duration) *Readiness {
	return &Readiness{checks: map[string]Check{}, timeout: timeout}
}

// Add registers a named check.
func (r *Readiness) Add(name string, c Check) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks[name] = c
}

// Drain marks the service not ready (shutdown has begun) so load balancers
// stop sending new work while in-flight requests finish.
func (r *Readiness) Drain() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.draining = true
}

// Result is the outcome of one check.
type Result struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// Run runs every check concurrently and reports whether all passed.
func (r *Readiness) Run(ctx context.Context) (bool, []Result) {
	r.mu.RLock()
	names := make([]string, 0, len(r.checks))
	for n := range r.checks {
		names = append(names, n)
	}
	sort.Strings(names)
	checks := make([]Check, len(names))
	for i, n := range names {
		checks[i] = r.checks[n]
	}
	draining := r.draining
	r.mu.RUnlock()

	results := make([]Result, len(names))
	var wg sync.WaitGroup
	for i := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, r.timeout)
			defer cancel()
			results[i] = Result{Name: names[i], Status: "ok"}
			if err := checks[i](cctx); err != nil {
				results[i].Status, results[i].Error = "down", err.Error()
			}
		}()
	}
	wg.Wait()
	ok := !draining
	for _, res := range results {
		ok = ok && res.Status == "ok"
	}
	if draining {
		results = append(results, Result{Name: "shutdown", Status: "down", Error: "draining"})
	}
	return ok, results
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
		ok, results := o.Readiness.Run(r.Context())
		status, code := "ok", http.StatusOK
		if !ok {
			status, code = "down", http.StatusServiceUnavailable
		}
		writeJSON(w, code, map[string]any{"status": status, "checks": results})
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

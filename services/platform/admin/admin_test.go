package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/tollgate/tollgate/services/platform/admin"
)

func TestReadinessReflectsChecksAndDrain(t *testing.T) {
	ready := admin.NewReadiness(time.Second)
	up := true
	ready.Add("listener", func(context.Context) error {
		if up {
			return nil
		}
		return errors.New("not bound")
	})
	ready.Add("slow", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	reg := prometheus.NewRegistry()
	reg.MustRegister(ready.Collector())
	srv := httptest.NewServer(admin.Handler(admin.Options{Gatherer: reg, Readiness: ready}))
	defer srv.Close()
	get := func(path string) (int, admin.Report) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body admin.Report
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	if code, _ := get("/healthz/live"); code != 200 {
		t.Errorf("live = %d", code)
	}
	code, body := get("/healthz/ready")
	if code != 503 || body.Status != "down" {
		t.Errorf("ready with a hanging local check = %d %v", code, body)
	}
	ready.Add("slow", func(context.Context) error { return nil })
	if code, _ := get("/healthz/ready"); code != 200 {
		t.Errorf("ready = %d", code)
	}
	up = false
	if code, _ := get("/healthz/ready"); code != 503 {
		t.Errorf("ready with a local check failing = %d", code)
	}
	up = true
	drained := 0
	ready.OnDrain(func() { drained++ })
	ready.Drain()
	ready.Drain()
	if code, body := get("/healthz/ready"); code != 503 || body.Checks[len(body.Checks)-1].Name != "shutdown" {
		t.Errorf("ready while draining = %d %+v", code, body)
	}
	if drained != 1 || !ready.Draining() {
		t.Errorf("OnDrain ran %d times, want once", drained)
	}
	if code, _ := get("/metrics"); code != 200 {
		t.Errorf("metrics = %d", code)
	}
	if resp, _ := http.Get(srv.URL + "/debug/pprof/"); resp.StatusCode != 404 {
		t.Errorf("pprof without opt-in = %d", resp.StatusCode)
	}
}

// TestSharedDependenciesNeverFailReadiness: a dependency every pod shares
// (Redis, the key set, capability-core) is reported in the body and in
// tollgate_dependency_up, but readiness stays 200 so an outage cannot take
// every pod out of its Service; a hung dependency check is cut at
// DependencyTimeout so the probe itself answers.
func TestSharedDependenciesNeverFailReadiness(t *testing.T) {
	ready := admin.NewReadiness(5 * time.Second)
	redisUp := false
	ready.AddDependency("redis", func(context.Context) error {
		if redisUp {
			return nil
		}
		return errors.New("redis unavailable: circuit breaker open")
	})
	ready.AddDependency("capability-core", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	reg := prometheus.NewRegistry()
	reg.MustRegister(ready.Collector())
	srv := httptest.NewServer(admin.Handler(admin.Options{Gatherer: reg, Readiness: ready}))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/healthz/ready")
	if err != nil {
		t.Fatal(err)
	}
	var body admin.Report
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 200 || body.Status != "ok" {
		t.Fatalf("ready with shared dependencies down = %d %+v", resp.StatusCode, body)
	}
	want := map[string]string{"capability-core": "down", "redis": "down"}
	for _, d := range body.Dependencies {
		if want[d.Name] != d.Status || d.Error == "" {
			t.Errorf("dependency %+v", d)
		}
		delete(want, d.Name)
	}
	if len(want) != 0 {
		t.Errorf("dependencies not reported: %v", want)
	}
	redisUp = true
	if got := testutil.ToFloat64(collectorFor(ready, "redis")); got != 1 {
		t.Errorf("tollgate_dependency_up{redis} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(collectorFor(ready, "capability-core")); got != 0 {
		t.Errorf("tollgate_dependency_up{capability-core} = %v, want 0", got)
	}
}

// collectorFor narrows the dependency collector to one label value, so
// testutil.ToFloat64 sees exactly one metric.
func collectorFor(r *admin.Readiness, dep string) prometheus.Collector {
	return filtered{r.Collector(), dep}
}

type filtered struct {
	c   prometheus.Collector
	dep string
}

func (f filtered) Describe(ch chan<- *prometheus.Desc) { f.c.Describe(ch) }

func (f filtered) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric, 16)
	go func() { f.c.Collect(all); close(all) }()
	for m := range all {
		var pb dto.Metric
		_ = m.Write(&pb)
		if pb.GetLabel()[0].GetValue() == f.dep {
			ch <- m
		}
	}
}

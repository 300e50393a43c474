package telemetry_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/telemetry"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// labelValues gathers reg and returns, per metric family, every value seen
// for each label.
func labelValues(t *testing.T, reg *prometheus.Registry) map[string]map[string]map[string]bool {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]map[string]bool{}
	for _, mf := range mfs {
		out[mf.GetName()] = map[string]map[string]bool{}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if out[mf.GetName()][lp.GetName()] == nil {
					out[mf.GetName()][lp.GetName()] = map[string]bool{}
				}
				out[mf.GetName()][lp.GetName()][lp.GetValue()] = true
			}
		}
	}
	return out
}

// TestHTTPLabelsAreBounded: whatever path, method or status a caller
// provokes, the histogram's labels take values from fixed sets.
func TestHTTPLabelsAreBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /known/{id}", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("POST /fail", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	h, err := telemetry.Off().Middleware(mux, telemetry.HTTPOptions{Registry: reg, Route: telemetry.MuxRoute(mux)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	for i := range 30 {
		for _, m := range []string{"GET", "POST", "BREW", "PROPFIND"} {
			for _, p := range []string{"/known/x" + fmt.Sprint(i), "/random-" + fmt.Sprint(i), "/fail", "/%2e%2e/etc"} {
				req, _ := http.NewRequest(m, srv.URL+p, nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
		}
	}
	allowed := map[string]map[string]bool{
		"route":  {"/known/{id}": true, "/fail": true, telemetry.RouteOther: true},
		"method": {"GET": true, "POST": true, "other": true},
		"code":   {"2xx": true, "4xx": true, "5xx": true},
	}
	got := labelValues(t, reg)["tollgate_http_request_duration_seconds"]
	if len(got) != len(allowed) {
		t.Fatalf("labels %v, want %v", got, allowed)
	}
	for label, values := range got {
		for v := range values {
			if !allowed[label][v] {
				t.Errorf("label %s has the unbounded value %q", label, v)
			}
		}
	}
	if !got["code"]["5xx"] || !got["route"]["/known/{id}"] {
		t.Errorf("expected series missing: %v", got)
	}
}

func TestStatusClassAndMethodLabel(t *testing.T) {
	for in, want := range map[int]string{0: "other", 99: "other", 200: "2xx", 302: "3xx", 429: "4xx", 503: "5xx", 600: "other"} {
		if got := telemetry.StatusClass(in); got != want {
			t.Errorf("StatusClass(%d) = %q, want %q", in, got, want)
		}
	}
	if telemetry.MethodLabel("BREW") != "other" || telemetry.MethodLabel("GET") != "GET" {
		t.Error("MethodLabel does not bound methods")
	}
}

// TestRedisMetrics: commands are counted by bounded name and result, and
// an unreachable Redis shows as unavailable and tollgate_redis_up 0, until
// it answers again.
func TestRedisMetrics(t *testing.T) {
	r := testharness.StartRedis(t)
	rdb := r.Client()
	reg := prometheus.NewRegistry()
	if err := telemetry.InstrumentRedisMetrics(rdb.UniversalClient, reg); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_ = rdb.Set(ctx, "k", "v", time.Minute).Err()
	_ = rdb.Get(ctx, "k").Err()
	_ = rdb.Get(ctx, "missing").Err()
	_ = rdb.Do(ctx, "OBJECT", "ENCODING", "k").Err()
	_ = rdb.Do(ctx, "NOSUCHCOMMAND-"+strings.Repeat("x", 20)).Err()
	_, _ = rdb.Pipelined(ctx, func(p redis.Pipeliner) error { p.Get(ctx, "k"); return nil })
	got := labelValues(t, reg)["tollgate_redis_command_duration_seconds"]
	for _, want := range []string{"set", "get", "other", "pipeline"} {
		if !got["command"][want] {
			t.Errorf("no command=%q series: %v", want, got)
		}
	}
	for v := range got["command"] {
		if v != strings.ToLower(v) || len(v) > 20 || strings.Contains(v, "nosuch") {
			t.Errorf("command label %q is not bounded", v)
		}
	}
	for _, want := range []string{"ok", "miss", "error"} {
		if !got["result"][want] {
			t.Errorf("no result=%q series: %v", want, got)
		}
	}
	if up := gauge(t, reg, "tollgate_redis_up"); up != 1 {
		t.Errorf("tollgate_redis_up = %v with Redis up", up)
	}
	r.Stop()
	_ = rdb.Get(ctx, "k").Err()
	if up := gauge(t, reg, "tollgate_redis_up"); up != 0 {
		t.Errorf("tollgate_redis_up = %v with Redis down", up)
	}
	if !labelValues(t, reg)["tollgate_redis_command_duration_seconds"]["result"]["unavailable"] {
		t.Error("a refused connection is not counted as unavailable")
	}
	r.Start()
	deadline := time.Now().Add(10 * time.Second)
	for rdb.Ping(ctx) != nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if up := gauge(t, reg, "tollgate_redis_up"); up != 1 {
		t.Errorf("tollgate_redis_up = %v after Redis came back", up)
	}
	if v := gauge(t, reg, "tollgate_redis_pool_connections"); v < 1 {
		t.Errorf("pool connections = %v", v)
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			return value(m)
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	}
	return 0
}

package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/tollgate/tollgate/services/platform/admin"
	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/grpcx"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

func TestReadinessReflectsChecksAndDrain(t *testing.T) {
	ready := admin.NewReadiness(time.Second, nil)
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
	ready := admin.NewReadiness(5*time.Second, nil)
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

// TestReadinessBodyNamesNoAddress: the admin port answers whoever reaches
// it, so a failing check's body says which dependency is down and how
// (timeout or failed) but not its error, which carries internal addresses
// (here a real redisx client and a real gRPC connection to loopback ports
// that refuse, and a check that hangs): those go to the log, once per
// change, and "ok again" when it recovers.
func TestReadinessBodyNamesNoAddress(t *testing.T) {
	redisAddr, grpcAddr := testharness.ClosedAddr(t), testharness.ClosedAddr(t)
	rdb, err := redisx.New(config.Redis{URL: "redis://" + redisAddr + "/0"})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	conn, err := grpcx.Dial(grpcAddr, grpcx.ClientOptions{Name: "capability-core"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{&logMu, &logs}, nil))
	ready := admin.NewReadiness(time.Second, log)
	ready.AddDependency("redis", rdb.Ping)
	ready.AddDependency("capability-core", grpcx.HealthCheck(conn, ""))
	hung := true
	ready.Add("listener", func(ctx context.Context) error {
		if hung {
			<-ctx.Done()
			return fmt.Errorf("accept on 10.0.3.7:9100: %w", ctx.Err())
		}
		return nil
	})
	srv := httptest.NewServer(admin.Handler(admin.Options{Gatherer: prometheus.NewRegistry(), Readiness: ready}))
	defer srv.Close()

	for range 2 {
		resp, err := http.Get(srv.URL + "/healthz/ready")
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, leak := range []string{redisAddr, grpcAddr, "127.0.0.1", "10.0.3.7", "dial", "refused"} {
			if strings.Contains(string(raw), leak) {
				t.Errorf("readiness body holds %q: %s", leak, raw)
			}
		}
		var body admin.Report
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, r := range append(body.Checks, body.Dependencies...) {
			got[r.Name] = r.Status + " " + r.Error
		}
		want := map[string]string{"listener": "down timeout", "redis": "down failed", "capability-core": "down failed"}
		if resp.StatusCode != 503 || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("ready = %d %v, want 503 %v", resp.StatusCode, got, want)
		}
	}
	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	for _, addr := range []string{redisAddr, grpcAddr, "10.0.3.7:9100"} {
		if n := strings.Count(out, addr); n != 1 {
			t.Errorf("the log names %s %d times after two probes, want once (on the change):\n%s", addr, n, out)
		}
	}
	hung = false
	if resp, err := http.Get(srv.URL + "/healthz/ready"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("ready after the listener check passes: %v %v", resp, err)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "ok again") {
		t.Errorf("no recovery logged:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestHungDependencyLogsOnceThenRecovery: a paused redis-server (SIGSTOP:
// connections accepted, nothing answered) makes the redis check fail with
// 'read tcp 127.0.0.1:<port>->…: i/o timeout', a new port per connection,
// alternating with the breaker's 'circuit breaker open'. Over many probes
// that is one warning (before: one per probe whose error text changed),
// and the recovery is logged once.
func TestHungDependencyLogsOnceThenRecovery(t *testing.T) {
	r := testharness.StartRedis(t)
	cfg := r.Config()
	cfg.DialTimeout, cfg.CommandTimeout, cfg.BreakerOpen = 0, 0, 0 // production defaults
	rdb, err := redisx.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{&logMu, &logs}, nil))
	ready := admin.NewReadiness(time.Second, log)
	ready.AddDependency("redis", rdb.Ping)
	count := func(s string) int {
		logMu.Lock()
		defer logMu.Unlock()
		return strings.Count(logs.String(), s)
	}
	probe := func() string {
		res := ready.Dependencies(context.Background())
		return res[0].Status + " " + res[0].Error
	}
	if got := probe(); got != "ok " {
		t.Fatalf("redis before the pause: %q", got)
	}
	r.Pause()
	seen := map[string]int{}
	for range 16 {
		seen[probe()]++
		time.Sleep(100 * time.Millisecond)
	}
	if seen["down timeout"] < 2 || seen["down failed"] < 1 {
		t.Errorf("probes of a hung redis: %v, want timeouts alternating with the open breaker", seen)
	}
	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	if n := strings.Count(out, "level=WARN"); n != 1 {
		t.Errorf("%d warnings over 16 probes of a hung redis, want 1:\n%s", n, out)
	}
	r.Resume()
	testharness.Eventually(t, 10*time.Second, "redis ok again", func() (bool, string) {
		got := probe()
		return got == "ok ", got
	})
	for range 3 {
		probe()
	}
	if n := count("ok again"); n != 1 {
		logMu.Lock()
		defer logMu.Unlock()
		t.Errorf("recovery logged %d times, want once:\n%s", n, logs.String())
	}
}

// TestStillDownIsLoggedAtMostOncePerInterval: while a check stays down a
// warning repeats at most once per interval (a minute; shortened here),
// counting the failed probes since the last one.
func TestStillDownIsLoggedAtMostOncePerInterval(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // accepts, never answers
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{&logMu, &logs}, nil))
	ready := admin.NewReadiness(time.Second, log)
	admin.SetRepeatEvery(ready, 300*time.Millisecond)
	ready.AddDependency("hung", func(ctx context.Context) error {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(50 * time.Millisecond))
		_, err = c.Read(make([]byte, 1))
		return err
	})
	start := time.Now()
	for range 20 {
		ready.Dependencies(context.Background())
		time.Sleep(50 * time.Millisecond)
	}
	elapsed := time.Since(start)
	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	down, still := strings.Count(out, "dependency down"), strings.Count(out, "dependency still down")
	if max := int(elapsed/(300*time.Millisecond)) + 1; down != 1 || still < 2 || still > max {
		t.Errorf("over %s: %d down and %d still-down warnings, want 1 and 2–%d:\n%s", elapsed, down, still, max, out)
	}
	if !strings.Contains(out, "failed_probes=") {
		t.Errorf("a repeated warning does not count the probes:\n%s", out)
	}
}

// TestCallerGivingUpIsNoDependencyFailure: a readiness request whose caller
// hung up (make dev's wait loop, a kubelet probe timing out) cancelled the
// checks' context, and a healthy dependency was logged "dependency down"
// with err="context canceled" — then "ok again" on the next probe.
func TestCallerGivingUpIsNoDependencyFailure(t *testing.T) {
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{&logMu, &logs}, nil))
	ready := admin.NewReadiness(time.Second, log)
	started := make(chan struct{}, 1)
	ready.AddDependency("slow", func(ctx context.Context) error {
		started <- struct{}{}
		<-ctx.Done() // answers only after the caller has gone
		return ctx.Err()
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []admin.Result)
	go func() { done <- ready.Dependencies(ctx) }()
	<-started
	cancel()
	if res := <-done; len(res) != 1 || res[0].Status != "down" {
		t.Fatalf("a cancelled check: %+v, want it down to the caller", res)
	}
	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	if strings.Contains(out, "dependency down") || strings.Contains(out, "ok again") {
		t.Errorf("a caller that hung up was logged as the dependency's failure:\n%s", out)
	}
	// A check that fails on its own is still logged, once.
	ready = admin.NewReadiness(time.Second, log)
	ready.AddDependency("broken", func(context.Context) error { return errors.New("connection refused") })
	ready.Dependencies(context.Background())
	logMu.Lock()
	out = logs.String()
	logMu.Unlock()
	if !strings.Contains(out, "check=broken") || strings.Count(out, "dependency down") != 1 {
		t.Errorf("a failing check is not logged down once:\n%s", out)
	}
}

package devfleet

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

func newTestFleet(t *testing.T) (*Fleet, *testharness.SyncBuffer) {
	out := &testharness.SyncBuffer{}
	return &Fleet{o: Options{Out: out, VarDir: t.TempDir()}, exited: make(chan string, 4)}, out
}

func TestACrashIsReportedByName(t *testing.T) {
	f, out := newTestFleet(t)
	if _, err := f.spawn(context.Background(), Component{Name: "boom", Cmd: "/bin/sh", Args: []string{"-c", "echo starting; exit 3"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-f.Exited():
		if msg != "boom exited unexpectedly (exit status 3)" {
			t.Errorf("message = %q", msg)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("crash not reported")
	}
	if !strings.Contains(out.String(), "boom            | starting") {
		t.Errorf("output not prefixed:\n%s", out)
	}
}

func TestStopTerminatesEveryComponent(t *testing.T) {
	f, _ := newTestFleet(t)
	for _, name := range []string{"a", "b"} {
		if _, err := f.spawn(context.Background(), Component{Name: name, Cmd: "/bin/sh", Args: []string{"-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"}}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	f.Stop()
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("stop took %s", d)
	}
	for _, p := range f.procs {
		select {
		case <-p.done:
		default:
			t.Errorf("%s still running", p.c.Name)
		}
	}
}

func TestReadinessFailureNamesTheComponent(t *testing.T) {
	f, _ := newTestFleet(t)
	pr, err := f.spawn(context.Background(), Component{Name: "early-exit", Cmd: "/bin/sh", Args: []string{"-c", "exit 1"}, ReadyAddr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	err = f.waitReady(context.Background(), pr, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "early-exit exited during start-up (exit status 1)") {
		t.Errorf("err = %v", err)
	}
}

func TestMissingRedisSaysHowToInstall(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := EnsureRedis(&testharness.SyncBuffer{}, false)
	if err == nil || !strings.Contains(err.Error(), "apt-get install -y redis-server") {
		t.Errorf("err = %v", err)
	}
}

func TestExternalRedis(t *testing.T) {
	env, err := ExternalRedisEnv(func(k string) string {
		return map[string]string{"REDIS_MODE": "cluster", "REDIS_URL": "redis://127.0.0.1:7000?addr=127.0.0.1:7001", "HOME": "/root"}[k]
	})
	if err != nil || len(env) != 2 {
		t.Fatalf("env %v, %v", env, err)
	}
	cs := Components(Options{Ports: DefaultPorts(), ExternalRedis: env}, t.TempDir(), "")
	for _, c := range cs {
		if c.Name == "redis" {
			t.Fatal("the fleet starts its own Redis although REDIS_URL is set")
		}
		if c.Env["REDIS_MODE"] != "cluster" || c.Env["REDIS_URL"] != env["REDIS_URL"] {
			t.Errorf("%s: REDIS_MODE=%q REDIS_URL=%q", c.Name, c.Env["REDIS_MODE"], c.Env["REDIS_URL"])
		}
	}
	if own := Components(Options{Ports: DefaultPorts()}, t.TempDir(), "redis-server"); own[0].Name != "redis" {
		t.Error("without REDIS_URL the fleet starts no Redis")
	}
	if env, err := ExternalRedisEnv(func(string) string { return "" }); env != nil || err != nil {
		t.Errorf("empty environment: %v %v", env, err)
	}
	if _, err := ExternalRedisEnv(func(k string) string { return map[string]string{"REDIS_MODE": "sentinel"}[k] }); err == nil || !strings.Contains(err.Error(), "without REDIS_URL") {
		t.Errorf("REDIS_MODE alone: %v", err)
	}
}

// TestDevRedisCommandTimeout: every service of `make dev` gets the dev
// REDIS_COMMAND_TIMEOUT, longer than production's default, unless the
// environment (or Options.Env) sets one — also with an external Redis.
func TestDevRedisCommandTimeout(t *testing.T) {
	t.Setenv("REDIS_COMMAND_TIMEOUT", "")
	os.Unsetenv("REDIS_COMMAND_TIMEOUT")
	for _, o := range []Options{
		{Ports: DefaultPorts()},
		{Ports: DefaultPorts(), ExternalRedis: map[string]string{"REDIS_URL": "redis://127.0.0.1:7000/0"}},
	} {
		for _, c := range Components(o, t.TempDir(), "redis-server") {
			if c.Name != "redis" && c.Env["REDIS_COMMAND_TIMEOUT"] != DevRedisCommandTimeout {
				t.Errorf("%s: REDIS_COMMAND_TIMEOUT=%q, want %s", c.Name, c.Env["REDIS_COMMAND_TIMEOUT"], DevRedisCommandTimeout)
			}
		}
	}
	if d, err := time.ParseDuration(DevRedisCommandTimeout); err != nil || d <= config.DefaultRedisCommandTimeout {
		t.Errorf("DevRedisCommandTimeout %s (%v) is not longer than production's %v", DevRedisCommandTimeout, err, config.DefaultRedisCommandTimeout)
	}
	t.Setenv("REDIS_COMMAND_TIMEOUT", "500ms")
	for _, c := range Components(Options{Ports: DefaultPorts()}, t.TempDir(), "redis-server") {
		if c.Name != "redis" && c.Env["REDIS_COMMAND_TIMEOUT"] != "500ms" {
			t.Errorf("%s with REDIS_COMMAND_TIMEOUT=500ms in the environment: %q", c.Name, c.Env["REDIS_COMMAND_TIMEOUT"])
		}
	}
	o := Options{Ports: DefaultPorts(), Env: map[string]string{"REDIS_COMMAND_TIMEOUT": "1s"}}
	for _, c := range Components(o, t.TempDir(), "redis-server") {
		if c.Name != "redis" && c.Env["REDIS_COMMAND_TIMEOUT"] != "1s" {
			t.Errorf("%s with Env REDIS_COMMAND_TIMEOUT=1s: %q", c.Name, c.Env["REDIS_COMMAND_TIMEOUT"])
		}
	}
}

// TestWavesStartTheAuthServerWithItsBackends: the auth-server starts
// together with the capability backends its start-up discovers (and
// whose key sets it serves), after Redis, and the connectors after all of
// them; with an external Redis the first wave is the services'.
func TestWavesStartTheAuthServerWithItsBackends(t *testing.T) {
	names := func(o Options) string {
		var ws []string
		for _, w := range Waves(Components(o, t.TempDir(), "redis-server")) {
			var n []string
			for _, c := range w {
				n = append(n, c.Name)
			}
			ws = append(ws, strings.Join(n, " "))
		}
		return strings.Join(ws, " | ")
	}
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Ports: DefaultPorts()}, "redis | dev-idp auth-server capability-core | mcp-gateway actions-api"},
		{Options{Ports: DefaultPorts(), ExampleBackend: true}, "redis | dev-idp auth-server capability-core example-backend | mcp-gateway actions-api"},
		{Options{Ports: DefaultPorts(), ExternalRedis: map[string]string{"REDIS_URL": "redis://127.0.0.1:7000/0"}}, "dev-idp auth-server capability-core | mcp-gateway actions-api"},
	} {
		if got := names(tc.o); got != tc.want {
			t.Errorf("example backend %v, external Redis %v: waves %q, want %q", tc.o.ExampleBackend, tc.o.ExternalRedis != nil, got, tc.want)
		}
	}
	// A cycle still starts everything, in order.
	cyc := Waves([]Component{{Name: "a", After: []string{"b"}}, {Name: "b", After: []string{"a"}}, {Name: "c"}})
	if len(cyc) != 3 || cyc[0][0].Name != "c" || cyc[1][0].Name != "a" || cyc[2][0].Name != "b" {
		t.Errorf("waves of a cycle: %v", cyc)
	}
}

// TestReadyWaitsForReadyDeps: a component with ReadyDeps is ready only
// once its /healthz/ready reports them ok, not at its first 200 (a
// capability backend started with the auth-server has no key set yet).
func TestReadyWaitsForReadyDeps(t *testing.T) {
	var keys atomic.Bool
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status := "down"
		if keys.Load() {
			status = "ok"
		}
		fmt.Fprintf(w, `{"status":"ok","checks":[],"dependencies":[{"name":"redis","status":"ok"},{"name":"signing-keys","status":%q}]}`, status)
	}))
	defer admin.Close()
	port := admin.Listener.Addr().(*net.TCPAddr).Port
	f, _ := newTestFleet(t)
	pr, err := f.spawn(context.Background(), Component{Name: "backend", Cmd: "/bin/sh", AdminPort: port, ReadyDeps: []string{"signing-keys"},
		Args: []string{"-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	if err := f.waitReady(context.Background(), pr, 500*time.Millisecond); err == nil ||
		!strings.Contains(err.Error(), "backend not ready after 500ms (ready, with its dependencies signing-keys ok in /healthz/ready)") {
		t.Errorf("ready without its key set: %v", err)
	}
	keys.Store(true)
	if err := f.waitReady(context.Background(), pr, time.Minute); err != nil {
		t.Errorf("with its key set: %v", err)
	}
}

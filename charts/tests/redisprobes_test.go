package tests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBundledRedisProbesWantPONG runs the bundled Redis's rendered probe
// commands against a real redis-server. redis-cli exits 0 on an error
// reply, so `redis-cli ping` passed against a Redis that refused it
// (NOAUTH: the probe's password is not Redis's) and while Redis was still
// loading its append-only file (LOADING): the pod was Ready, and the fleet
// got errors, before Redis could serve, and the startup probe's budget
// bounded nothing. The probes now pass on PONG only; the password stays in
// REDISCLI_AUTH (from the Secret), out of the process list.
func TestBundledRedisProbesWantPONG(t *testing.T) {
	server := lookRedis(t)
	out, err := render(t, filepath.Join(chartDir(t), "ci", "minimal-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var probes map[string][]string
	for _, d := range splitDocs(t, out) {
		if d["kind"] != "StatefulSet" {
			continue
		}
		for _, c := range list(dig(d, "spec", "template", "spec"), "containers") {
			if c["name"] != "redis" {
				continue
			}
			probes = map[string][]string{}
			for _, p := range []string{"startupProbe", "livenessProbe", "readinessProbe"} {
				cmd, _ := dig(c, p, "exec")["command"].([]any)
				for _, a := range cmd {
					probes[p] = append(probes[p], fmt.Sprint(a))
				}
			}
			auth := false
			for _, e := range list(c, "env") {
				if e["name"] == "REDISCLI_AUTH" && dig(e, "valueFrom", "secretKeyRef") != nil {
					auth = true
				}
			}
			if !auth {
				t.Fatal("the redis container has no REDISCLI_AUTH from a Secret for its probes")
			}
		}
	}
	if len(probes) != 3 {
		t.Fatalf("no redis container with three exec probes rendered: %v", probes)
	}

	dir := t.TempDir()
	port := freePort(t)
	const password = "probe-Password-1"
	// probe runs one probe's command as the kubelet would (argv, no
	// shell of its own) with REDISCLI_AUTH set, redis-cli pointed at
	// port, and reports whether it passed.
	probe := func(name, auth string) (bool, string) {
		t.Helper()
		var argv []string
		for i, a := range probes[name] {
			if i == 0 && a == "redis-cli" {
				argv = append(argv, a, "-p", fmt.Sprint(port))
				continue
			}
			argv = append(argv, strings.ReplaceAll(a, "redis-cli", fmt.Sprintf("redis-cli -p %d", port)))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := exec.CommandContext(ctx, argv[0], argv[1:]...)
		c.Env = append(os.Environ(), "REDISCLI_AUTH="+auth)
		b, err := c.CombinedOutput()
		return err == nil, fmt.Sprintf("%q: %v %s", argv, err, b)
	}
	each := func(want bool, auth, state string) {
		t.Helper()
		for name := range probes {
			if ok, how := probe(name, auth); ok != want {
				t.Errorf("%s with %s: passed=%v, want %v (%s)", name, state, ok, want, how)
			}
		}
	}

	each(false, password, "no Redis listening")

	// A data set that takes long to load: 256 values of 4 KiB in an RDB,
	// loaded with a delay per key, and loading events processed every
	// KiB so that Redis answers LOADING meanwhile.
	seed := exec.Command(server, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--dir", dir,
		"--requirepass", password, "--save", "", "--appendonly", "no", "--rdbcompression", "no")
	startLocalRedis(t, seed, dir, port, password, "the seeding server")
	value := strings.Repeat("v", 4096)
	for i := 0; i < 256; i++ {
		if got := redisCLI(port, "default", password, "SET", fmt.Sprint("k", i), value); got != "OK" {
			t.Fatalf("SET: %s", got)
		}
	}
	if got := redisCLI(port, "default", password, "SAVE"); got != "OK" {
		t.Fatalf("SAVE: %s", got)
	}

	each(true, password, "Redis serving and the right password")
	each(false, "not-"+password, "a wrong password (NOAUTH)")

	_ = seed.Process.Kill()
	_ = seed.Wait()

	loading := exec.Command(server, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--dir", dir,
		"--requirepass", password, "--save", "", "--appendonly", "no",
		"--key-load-delay", "1000000", "--loading-process-events-interval-bytes", "1024")
	if err := loading.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = loading.Process.Kill(); _ = loading.Wait() })
	// Wait (bounded) until it answers, which it does with LOADING: the
	// 256 keys take over four minutes to load.
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := redisCLI(port, "default", password, "PING")
		if strings.HasPrefix(got, "LOADING") {
			break
		}
		if got == "PONG" {
			t.Fatal("redis-server finished loading before the probes ran; the test's data set loads too fast")
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server never answered LOADING: %q", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	each(false, password, "Redis loading its data (LOADING)")
}

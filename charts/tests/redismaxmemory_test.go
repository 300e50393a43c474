package tests

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBundledRedisRefusesWritesAtItsMemoryLimit starts a real redis-server
// with the bundled Redis's rendered redis.conf for an 8Mi memory limit and
// fills it: past the maxmemory the chart derives from the limit (70%), a
// write is refused with Redis's OOM error while reads go on — the
// noeviction the chart sets takes effect only with a maxmemory, and
// without one Redis grows until the kernel kills it at the limit.
func TestBundledRedisRefusesWritesAtItsMemoryLimit(t *testing.T) {
	server := lookRedis(t)
	values := filepath.Join(t.TempDir(), "values.yaml")
	writeFile(t, values, []byte("redis:\n  bundled:\n    resources:\n      limits: {memory: 8Mi}\n"))
	out, err := render(t, filepath.Join(chartDir(t), "ci", "minimal-values.yaml"), values)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	var conf string
	for _, d := range splitDocs(t, out) {
		if d["kind"] == "ConfigMap" {
			if c := str(d, "data", "redis.conf"); c != "" {
				conf = c
			}
		}
	}
	if !strings.Contains(conf, "\nmaxmemory 5872025\n") {
		t.Fatalf("redis.conf for an 8Mi limit has no maxmemory 5872025 (70%%):\n%s", conf)
	}

	dir := t.TempDir()
	port := freePort(t)
	confFile := localRedisConf(t, conf, dir, port)
	const password = "test-redis-password"
	writeFile(t, filepath.Join(dir, "run", "auth.conf"), []byte("requirepass "+password+"\n"))
	cmd := exec.Command(server, confFile)
	startLocalRedis(t, cmd, dir, port, password, "the rendered redis.conf")
	cli := func(args ...string) string { return redisCLI(port, "default", password, args...) }
	if got := cli("CONFIG", "GET", "maxmemory"); !strings.HasSuffix(got, "5872025") {
		t.Fatalf("CONFIG GET maxmemory: %q", got)
	}

	// 1 MiB values: the ninth cannot fit under 5.6 MiB.
	refused := ""
	for i := 0; i < 9 && refused == ""; i++ {
		if got := cli("SETRANGE", fmt.Sprintf("tollgate:fill:%d", i), "1048575", "x"); !strings.HasPrefix(got, "(integer)") && got != "1048576" {
			refused = got
		}
	}
	if !strings.HasPrefix(refused, "OOM command not allowed") {
		t.Fatalf("writes past maxmemory: want Redis's OOM refusal, got %q", refused)
	}
	if got := cli("STRLEN", "tollgate:fill:0"); got != "1048576" {
		t.Errorf("a read at maxmemory: STRLEN %q, want 1048576", got)
	}
}

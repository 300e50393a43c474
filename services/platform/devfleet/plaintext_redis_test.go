package devfleet

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/testharness"
)

// TestProductionServiceRefusesPlaintextRedisPassword starts the real
// capability-core binary in production with a password over plain
// redis:// to a server not on loopback (192.0.2.1, TEST-NET-1: never
// reached): it exits 1 naming REDIS_URL and both ways out, never showing the
// password. With REDIS_ALLOW_PLAINTEXT_PASSWORD=true it starts (a Redis
// down at start-up is not an error) and logs the warning. `make dev`
// (development) is TestExternalRedis's and the fleet tests' business.
func TestProductionServiceRefusesPlaintextRedisPassword(t *testing.T) {
	root := repoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "capability-core")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./services/capability-core/cmd/capability-core")
	build.Dir = root
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	env := []string{
		"PATH=/usr/bin:/bin", "TOLLGATE_ENV=production", "GRPC_ADDR=127.0.0.1:0", "ADMIN_ADDR=127.0.0.1:0",
		"AUTH_GRPC_ADDR=127.0.0.1:1", "MCP_RESOURCE_URL=https://mcp.example.com/mcp", "ACTIONS_AUDIENCE=https://actions.example.com",
		"REDIS_URL=redis://:hunter2@192.0.2.1:6379/0",
	}

	refused := exec.CommandContext(ctx, bin)
	refused.Env = env
	out, err := refused.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("production start with a plaintext Redis password: %v, want exit status 1\n%s", err, out)
	}
	for _, want := range []string{"REDIS_URL: a password over plain redis:// is readable on the network", "rediss://", "REDIS_ALLOW_PLAINTEXT_PASSWORD=true"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("refusal lacks %q:\n%s", want, out)
		}
	}
	if bytes.Contains(out, []byte("hunter2")) {
		t.Errorf("the refusal shows the password:\n%s", out)
	}

	allowed := exec.CommandContext(ctx, bin)
	allowed.Env = append(env, "REDIS_ALLOW_PLAINTEXT_PASSWORD=true")
	var buf testharness.SyncBuffer
	allowed.Stdout, allowed.Stderr = &buf, &buf
	if err := allowed.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- allowed.Wait() }()
	deadline := time.After(time.Minute)
	for !strings.Contains(buf.String(), `"msg":"listening"`) {
		select {
		case err := <-done:
			t.Fatalf("with REDIS_ALLOW_PLAINTEXT_PASSWORD=true it exited: %v\n%s", err, buf.String())
		case <-deadline:
			t.Fatalf("not listening after a minute:\n%s", buf.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	_ = allowed.Process.Signal(syscall.SIGTERM)
	<-done
	if got := buf.String(); !strings.Contains(got, "Redis password sent over plain redis:// (allowed by REDIS_ALLOW_PLAINTEXT_PASSWORD)") || !strings.Contains(got, `"level":"WARN"`) {
		t.Errorf("no warning logged for the opt-out:\n%s", got)
	}
	if strings.Contains(buf.String(), "hunter2") {
		t.Errorf("the log shows the password:\n%s", buf.String())
	}
}

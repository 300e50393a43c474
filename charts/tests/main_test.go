// Package tests checks the Helm chart, the container images and the Tiltfile
// with the pinned tools that charts/tools/build.sh compiles.
//
// The tools are found in $TOOLS_BIN (default: <repo>/.cache/tools/bin). A test
// whose tool is missing fails when CI or CHARTS_STRICT is set and is skipped,
// loudly, otherwise; `make kube-tools` builds them all.
package tests

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// repoRoot is the repository root (this package lives in charts/tests).
func repoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(filepath.Dir(wd))
}

func chartDir(t testing.TB) string { return filepath.Join(repoRoot(t), "charts", "tollgate") }

// tool returns the path of a pinned tool binary.
func tool(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("TOOLS_BIN")
	if dir == "" {
		dir = filepath.Join(repoRoot(t), ".cache", "tools", "bin")
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		msg := fmt.Sprintf("%s is not built (%v); run `make kube-tools` first", name, err)
		if strict() {
			t.Fatal(msg)
		}
		t.Skip("SKIPPED: " + msg)
	}
	return p
}

// strict reports whether a missing tool or image must fail rather than skip:
// in CI, and under `make test-charts`, which builds them first.
func strict() bool { return os.Getenv("CI") != "" || os.Getenv("CHARTS_STRICT") != "" }

// helmEnv keeps helm's caches and config out of the user's home.
func helmEnv(t testing.TB) []string {
	t.Helper()
	d := t.TempDir()
	return append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(d, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(d, "config"),
		"HELM_DATA_HOME="+filepath.Join(d, "data"),
	)
}

// runIn is run with a working directory.
func runIn(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env, cmd.Dir = env, dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.String(), nil
}

// run executes a command and returns its stdout; stderr is included in the error.
func run(ctx context.Context, env []string, name string, args ...string) (string, error) {
	return runIn(ctx, "", env, name, args...)
}

func timeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// valuesCases are the example values files under charts/tollgate/ci, by name.
func valuesCases(t testing.TB) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir(t), "ci", "*-values.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no values cases in charts/tollgate/ci (%v)", err)
	}
	cases := map[string]string{}
	for _, f := range files {
		cases[strings.TrimSuffix(filepath.Base(f), "-values.yaml")] = f
	}
	return cases
}

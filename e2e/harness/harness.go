// Package harness builds and starts the whole fleet the way `make dev`
// does (devfleet), on free ports and a throw-away state directory, so the
// e2e tests are black-box tests of the real binaries behind the real local
// ingress.
package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/tollgate/tollgate/services/platform/devfleet"
)

// Fleet is a running fleet for tests.
type Fleet struct {
	*devfleet.Fleet
	VarDir string
	Creds  devfleet.DevCredentials
	Logs   *Log
	// Ports are the fleet's listeners (tests reach capability-core's gRPC
	// port directly).
	Ports devfleet.Ports
}

// Log keeps the fleet's output for failure reports and for tests that
// read what a component logged.
type Log struct {
	mu  sync.Mutex
	buf []byte
	// flush is the running fleet's Flush (nil before it starts).
	flush func()
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	return len(p), nil
}

// String returns everything logged so far: each component writes its log
// file itself, and the fleet's copy of the lines to the Log is flushed
// first (devfleet.Fleet.Flush), so a line a component logged before it
// answered a request is there as soon as the answer arrived.
func (l *Log) String() string {
	l.mu.Lock()
	flush := l.flush
	l.mu.Unlock()
	if flush != nil {
		flush() // writes to l
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}

// RepoRoot is the repository root (this file is e2e/harness/harness.go).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Options change how Start runs the fleet.
type Options struct {
	// Env adds or overrides environment variables of every service (for
	// example DCR_ENABLED=true), on top of the `make dev` settings.
	Env map[string]string
	// Setup, if set, runs after the build, once the free ports and so the
	// public origin (http://localhost:<port>) are chosen, right before the
	// services start; the variables it returns are added to Env. A test
	// that needs the origin in its settings (a client registry for
	// CLIENTS_FILE, say) writes them here: ports chosen before the build
	// could be taken by another process during it.
	Setup func(origin string) (map[string]string, error)
	// ExternalRedis, when it holds REDIS_URL (and REDIS_MODE…), runs the
	// fleet on that Redis instead of its own redis-server
	// (devfleet.Options.ExternalRedis).
	ExternalRedis map[string]string
	// PublicURL and AllowedOrigins are make dev's PUBLIC_URL and
	// DEV_ALLOWED_ORIGINS (devfleet.Settings); AllowedOrigins nil is
	// make dev's default, the MCP Inspector's origin.
	PublicURL      string
	AllowedOrigins []string
	// ExampleBackend starts the example backend beside the fleet and adds
	// it to CAPABILITY_BACKENDS, as EXAMPLE_BACKEND=1 does under make dev
	// (devfleet.Options.ExampleBackend).
	ExampleBackend bool
	// Backends are more capability backends ("NAME=HOST:PORT", a gRPC
	// server the test runs) listed in CAPABILITY_BACKENDS after
	// capability-core, whose port is chosen here.
	Backends []string
}

// Start builds the binaries and starts the fleet with the `make dev`
// settings. The caller must Stop it.
func Start(ctx context.Context) (*Fleet, error) { return StartWith(ctx, Options{}) }

// StartWith is Start with options. The caller must Stop the fleet.
func StartWith(ctx context.Context, o Options) (*Fleet, error) {
	varDir, err := os.MkdirTemp("", "tollgate-e2e-")
	if err != nil {
		return nil, err
	}
	logs := &Log{}
	out := io.Writer(logs)
	if os.Getenv("E2E_VERBOSE") != "" {
		out = io.MultiWriter(logs, os.Stderr)
	}
	begin := time.Now()
	if err := devfleet.Build(ctx, RepoRoot(), varDir, out); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, logs)
	}
	ports, listeners, err := devfleet.ListenFreePorts()
	if err != nil {
		return nil, err
	}
	// Every test here shares one busy CI machine and -race builds: a
	// healthy Redis can miss the production 80 ms command timeout there.
	env := map[string]string{"REDIS_COMMAND_TIMEOUT": "1s", "REDIS_DIAL_TIMEOUT": "1s"} // as testharness.RedisCommandTimeout, RedisDialTimeout
	maps.Copy(env, o.Env)
	if len(o.Backends) > 0 {
		env["CAPABILITY_BACKENDS"] = strings.Join(append([]string{fmt.Sprintf("capability-core=127.0.0.1:%d", ports.CoreGRPC)}, o.Backends...), ",")
	}
	if o.Setup != nil {
		more, err := o.Setup(fmt.Sprintf("http://localhost:%d", ports.Ingress))
		if err != nil {
			for _, ln := range listeners {
				ln.Close()
			}
			return nil, err
		}
		maps.Copy(env, more)
	}
	origins := o.AllowedOrigins
	if origins == nil {
		origins = []string{devfleet.InspectorOrigin}
	}
	f, err := devfleet.Start(ctx, devfleet.Options{Root: RepoRoot(), VarDir: varDir, Ports: ports, Listeners: listeners, Out: out, Env: env,
		ExternalRedis: o.ExternalRedis, PublicURL: o.PublicURL, AllowedOrigins: origins, ExampleBackend: o.ExampleBackend})
	if err != nil {
		return nil, fmt.Errorf("%w\nfleet log:\n%s", err, logs)
	}
	logs.mu.Lock()
	logs.flush = f.Flush
	logs.mu.Unlock()
	fl := &Fleet{Fleet: f, VarDir: varDir, Logs: logs, Ports: ports}
	b, err := os.ReadFile(filepath.Join(varDir, "dev", "clients.json"))
	if err != nil {
		f.Stop()
		return nil, err
	}
	if err := json.Unmarshal(b, &fl.Creds); err != nil {
		f.Stop()
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "e2e: fleet built and ready at %s in %s\n", f.Origin, time.Since(begin).Round(100*time.Millisecond))
	return fl, nil
}

// Stop stops the fleet and removes its state.
func (f *Fleet) Stop() {
	f.Fleet.Stop()
	_ = os.RemoveAll(f.VarDir)
}

// Client returns the dev client with id.
func (f *Fleet) Client(id string) (devfleet.DevClient, bool) {
	for _, c := range f.Creds.Clients {
		if c.ClientID == id {
			return c, true
		}
	}
	return devfleet.DevClient{}, false
}

// Package devfleet runs the whole fleet on one machine without Kubernetes:
// a redis-server, the dev upstream IdP, the four services and a local
// ingress that routes by the chart's path table. `make dev` and the e2e
// harness both use it, so the tests start the fleet the way developers do.
package devfleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tollgate/tollgate/services/platform/routes"
)

// Ports are the fleet's listening ports on 127.0.0.1.
type Ports struct {
	Ingress                       int
	Redis                         int
	AuthHTTP, AuthGRPC, AuthAdmin int
	CoreGRPC, CoreAdmin           int
	GatewayHTTP, GatewayAdmin     int
	ActionsHTTP, ActionsAdmin     int
	IdPHTTP, IdPAdmin             int
	// ExampleGRPC and ExampleAdmin are the example backend's listeners
	// (used when Options.ExampleBackend is set).
	ExampleGRPC, ExampleAdmin int
}

// DefaultPorts is the layout `make dev` uses; the public origin is
// http://localhost:4000.
func DefaultPorts() Ports {
	return Ports{
		Ingress: 4000, Redis: 4379,
		AuthHTTP: 4100, AuthGRPC: 4101, AuthAdmin: 4102,
		CoreGRPC: 4201, CoreAdmin: 4202,
		GatewayHTTP: 4300, GatewayAdmin: 4302,
		ActionsHTTP: 4400, ActionsAdmin: 4402,
		IdPHTTP: 4500, IdPAdmin: 4502,
		ExampleGRPC: 4601, ExampleAdmin: 4602,
	}
}

// Busy returns the listeners of p that something else already holds on
// 127.0.0.1, as "4000 (local ingress)", in a fixed order. withRedis and
// withExample say whether the fleet starts its own Redis and the example
// backend.
func (p Ports) Busy(withRedis, withExample bool) []string {
	held, busy := p.Hold(withRedis, withExample)
	for _, ln := range held {
		ln.Close()
	}
	return busy
}

// Hold binds every listener of p on 127.0.0.1 and returns them, to pass
// as Options.Listeners; when something else holds any, it binds none and
// names the busy ones as Busy does. `make dev` holds its ports from
// before it builds until the fleet takes them: a check that only tried
// the ports let a second make dev, started while the first was building
// (minutes cold), pass the check too, build again and half start beside
// the first — whose readiness its own components' checks then answered.
func (p Ports) Hold(withRedis, withExample bool) (map[int]net.Listener, []string) {
	type listener struct {
		port int
		name string
	}
	all := []listener{{p.Ingress, "local ingress"}, {p.AuthHTTP, "auth-server HTTP"}, {p.AuthGRPC, "auth-server gRPC"},
		{p.AuthAdmin, "auth-server admin"}, {p.CoreGRPC, "capability-core gRPC"}, {p.CoreAdmin, "capability-core admin"},
		{p.GatewayHTTP, "mcp-gateway HTTP"}, {p.GatewayAdmin, "mcp-gateway admin"}, {p.ActionsHTTP, "actions-api HTTP"},
		{p.ActionsAdmin, "actions-api admin"}, {p.IdPHTTP, "dev-idp HTTP"}, {p.IdPAdmin, "dev-idp admin"}}
	if withRedis {
		all = append(all, listener{p.Redis, "redis-server"})
	}
	if withExample {
		all = append(all, listener{p.ExampleGRPC, "example backend gRPC"}, listener{p.ExampleAdmin, "example backend admin"})
	}
	held := map[int]net.Listener{}
	var busy []string
	for _, l := range all {
		ln, err := net.Listen("tcp", addr(l.port))
		if err != nil {
			busy = append(busy, fmt.Sprintf("%d (%s)", l.port, l.name))
			continue
		}
		held[l.port] = ln
	}
	if len(busy) > 0 {
		for _, ln := range held {
			ln.Close()
		}
		return nil, busy
	}
	return held, nil
}

// ListenFreePorts binds a free loopback port for every listener of the
// fleet (tests) and returns the ports with the bound listeners, to pass as
// Options.Listeners: Start hands each to the process that serves on it, so
// no other process can take a port between this choice and the fleet's
// start (picking ports and closing them left that window open, and a
// loaded CI machine's other tests took ports in it). Start closes them.
func ListenFreePorts() (Ports, map[int]net.Listener, error) {
	var p Ports
	fields := []*int{&p.Ingress, &p.Redis, &p.AuthHTTP, &p.AuthGRPC, &p.AuthAdmin, &p.CoreGRPC, &p.CoreAdmin,
		&p.GatewayHTTP, &p.GatewayAdmin, &p.ActionsHTTP, &p.ActionsAdmin, &p.IdPHTTP, &p.IdPAdmin,
		&p.ExampleGRPC, &p.ExampleAdmin}
	lns := map[int]net.Listener{}
	for _, f := range fields {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return p, nil, err
		}
		*f = ln.Addr().(*net.TCPAddr).Port
		lns[*f] = ln
	}
	return p, lns, nil
}

// Options configure a fleet.
type Options struct {
	// Root is the repository root (holds go.work and charts/).
	Root string
	// VarDir holds local state: binaries, Redis data, dev keys and credentials.
	VarDir string
	Ports  Ports
	// Out receives the prefixed logs and the banner. Each component
	// writes its output (stdout and stderr) to VarDir/logs/<name>.log
	// itself, and the fleet copies each line, prefixed with the
	// component's name, to Out as the file grows (within ~tailInterval);
	// Fleet.Flush copies every line written so far at once.
	Out io.Writer
	// InstallRedis lets the fleet apt-get install redis-server when missing
	// (only as root on Debian/Ubuntu).
	InstallRedis bool
	// PublicURL and AllowedOrigins are make dev's settings (Settings).
	PublicURL      string
	AllowedOrigins []string
	// Env adds or overrides variables for every service.
	Env map[string]string
	// ExampleBackend starts the example backend (services/example-backend)
	// after capability-core and adds it to CAPABILITY_BACKENDS
	// (EXAMPLE_BACKEND=1 under make dev).
	ExampleBackend bool
	// Listeners are listeners already bound on ports of Ports
	// (ListenFreePorts). A service gets its own as an inherited socket
	// ("HTTP_ADDR=fd:3", app.Listen), the local ingress takes its one, and
	// redis-server's, which it cannot take, is closed right before
	// redis-server starts. Start closes those no component used. A
	// component restarted after StopComponent binds its address again.
	Listeners map[int]net.Listener
	// ExternalRedis, when it holds REDIS_URL, is an external Redis (any
	// REDIS_MODE) every service uses instead of a redis-server the fleet
	// starts: the REDIS_* variables of `make dev`'s environment
	// (ExternalRedisEnv).
	ExternalRedis map[string]string
}

// externalRedisVars are the variables ExternalRedisEnv passes on.
var externalRedisVars = []string{
	"REDIS_MODE", "REDIS_URL", "REDIS_URL_FILE", "REDIS_PASSWORD", "REDIS_PASSWORD_FILE",
	"REDIS_SENTINEL_PASSWORD", "REDIS_SENTINEL_PASSWORD_FILE", "REDIS_TLS_CA_FILE", "REDIS_KEY_PREFIX",
}

// ExternalRedisEnv reads the external Redis settings from getenv: nil when
// neither REDIS_URL nor REDIS_URL_FILE is set (the fleet starts its own
// redis-server), an error when other REDIS_* settings are set without one.
// The services validate the values themselves (config.Redis.Validate).
func ExternalRedisEnv(getenv func(string) string) (map[string]string, error) {
	env := map[string]string{}
	for _, k := range externalRedisVars {
		if v := getenv(k); v != "" {
			env[k] = v
		}
	}
	if env["REDIS_URL"] == "" && env["REDIS_URL_FILE"] == "" {
		if len(env) > 0 {
			return nil, fmt.Errorf("REDIS_* settings without REDIS_URL: set REDIS_URL to use an external Redis, or unset them")
		}
		return nil, nil
	}
	return env, nil
}

// DCR is DCR_ENABLED of the auth-server: Env's, the environment's, or true.
func (o Options) DCR() string { return o.setting("DCR_ENABLED", "true") }

// CIMD is CIMD_ENABLED of the auth-server, like DCR.
func (o Options) CIMD() string { return o.setting("CIMD_ENABLED", "true") }

// DevRedisCommandTimeout is REDIS_COMMAND_TIMEOUT under `make dev`, where
// the production default (80ms, config.DefaultRedisCommandTimeout) gave a
// loaded laptop occasional 503s: on a 2-core machine at load 16–19, 9 of
// 264,212 round trips to a local redis-server took over 80 ms (max 93 ms,
// none over 160 ms), and a request makes several, each failing it with
// 503 (docs/development.md). 200ms is twice the slowest seen.
const DevRedisCommandTimeout = "200ms"

// RedisCommandTimeout is REDIS_COMMAND_TIMEOUT of every service: Env's,
// the environment's, or DevRedisCommandTimeout.
func (o Options) RedisCommandTimeout() string {
	return o.setting("REDIS_COMMAND_TIMEOUT", DevRedisCommandTimeout)
}

func (o Options) setting(key, def string) string {
	if v, ok := o.Env[key]; ok {
		return v
	}
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

// ExampleBackendName is the example backend's component name and its
// name in CAPABILITY_BACKENDS.
const ExampleBackendName = "example-backend"

// CapabilityBackends is CAPABILITY_BACKENDS of the connectors and the
// auth-server: Env's or the environment's value ("" leaves the services'
// default, capability-core at CORE_GRPC_ADDR), with the example backend
// appended when it runs. Listing capability-core first keeps its
// capabilities when the two ever conflict (the earlier backend wins).
func (o Options) CapabilityBackends() string {
	v := strings.TrimSpace(o.setting("CAPABILITY_BACKENDS", ""))
	if !o.ExampleBackend || strings.Contains(v, ExampleBackendName+"=") {
		return v
	}
	if v == "" {
		v = "capability-core=" + addr(o.Ports.CoreGRPC)
	}
	return v + "," + ExampleBackendName + "=" + addr(o.Ports.ExampleGRPC)
}

// LocalOrigin is the local ingress's origin, http://localhost:<port>.
func (o Options) LocalOrigin() string { return fmt.Sprintf("http://localhost:%d", o.Ports.Ingress) }

// PublicOrigin is the origin clients use: PublicURL, or the local one.
func (o Options) PublicOrigin() string {
	if o.PublicURL != "" {
		return o.PublicURL
	}
	return o.LocalOrigin()
}

// Component is one process of the fleet.
type Component struct {
	Name      string
	Cmd       string // binary name under VarDir/bin, or "redis-server"
	Args      []string
	Env       map[string]string
	AdminPort int // 0: readiness is a TCP check on ReadyAddr
	ReadyAddr string
	// After names the components that must be ready before this one
	// starts (Waves); names the fleet does not run (redis with an
	// external Redis, the example backend when it is off) are ignored.
	After []string
	// ReadyDeps are dependencies of its /healthz/ready report that must
	// be "ok" too before it counts as ready (the report's dependencies
	// never fail the service's own readiness: admin.Readiness).
	ReadyDeps []string
}

// Waves groups cs into start waves, keeping their order: a wave is every
// component not started yet whose After are all in earlier waves. Start
// starts a wave's components at once and waits until all are ready
// before the next wave. A component whose After can never be met (a
// cycle) ends up in a last wave of its own.
func Waves(cs []Component) [][]Component {
	present := map[string]bool{}
	for _, c := range cs {
		present[c.Name] = true
	}
	ready := map[string]bool{}
	var waves [][]Component
	left := cs
	for len(left) > 0 {
		var wave, rest []Component
		for _, c := range left {
			ok := true
			for _, a := range c.After {
				ok = ok && (ready[a] || !present[a])
			}
			if ok {
				wave = append(wave, c)
			} else {
				rest = append(rest, c)
			}
		}
		if len(wave) == 0 { // a cycle: start the rest in order, one by one
			for _, c := range rest {
				waves = append(waves, []Component{c})
			}
			break
		}
		for _, c := range wave {
			ready[c.Name] = true
		}
		waves = append(waves, wave)
		left = rest
	}
	return waves
}

// Fleet is a running fleet.
type Fleet struct {
	o       Options
	Origin  string // public origin: PUBLIC_URL, or http://localhost:<ingress>
	Local   string // the local ingress, http://localhost:<ingress>
	Clients json.RawMessage
	mu      sync.Mutex // guards procs and logged
	procs   []*proc
	// logged names the components whose log file this fleet has
	// started (a restart appends to it, a fleet's first start empties it).
	logged  map[string]bool
	ingress *http.Server
	exited  chan string
}

type proc struct {
	c    Component
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	// stopping is set by StopComponent: its exit is not reported.
	stopping atomic.Bool
	tail     *logTail
}

// Services are the Go binaries of the fleet, in start order (Start starts
// some at once: Waves).
var Services = []string{"dev-idp", "auth-server", "capability-core", "mcp-gateway", "actions-api"}

// Binaries are the Go binaries Build compiles: the fleet's services and
// the example backend, which runs only when asked for
// (Options.ExampleBackend) but is always built, so `make dev` and the e2e
// tests can start it.
var Binaries = append(append([]string{}, Services...), ExampleBackendName)

// Build compiles every binary (Binaries) into VarDir/bin with the workspace.
func Build(ctx context.Context, root, varDir string, out io.Writer) error {
	bin := filepath.Join(varDir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	var pkgs []string
	for _, s := range Binaries {
		pkgs = append(pkgs, "./services/"+s+"/cmd/"+s)
	}
	version := os.Getenv("VERSION")
	if version == "" {
		version = "dev"
	}
	ldflags := "-X github.com/tollgate/tollgate/services/platform/buildinfo.Version=" + version
	args := append([]string{"build", "-ldflags", ldflags, "-o", bin + string(os.PathSeparator)}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = out, out
	fmt.Fprintf(out, "building %s (go build; a first build downloads the Go modules and can take many minutes)\n", strings.Join(Binaries, ", "))
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	return nil
}

// EnsureRedis finds redis-server, installing it with apt-get when allowed.
func EnsureRedis(out io.Writer, install bool) (string, error) {
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	const how = "redis-server is not installed. Install it with: sudo apt-get install -y redis-server (Debian/Ubuntu) or brew install redis (macOS)"
	_, aptErr := exec.LookPath("apt-get")
	if !install || os.Geteuid() != 0 || aptErr != nil || runtime.GOOS != "linux" {
		return "", errors.New(how)
	}
	fmt.Fprintln(out, "redis-server is missing; installing it with apt-get (running as root)")
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "redis-server"}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("apt-get %s: %w; %s", args[0], err, how)
		}
	}
	return exec.LookPath("redis-server")
}

// Start brings the fleet up and waits until every component is ready.
// Stop it with Stop; Wait reports a component that exits on its own.
func Start(ctx context.Context, o Options) (*Fleet, error) {
	var redisBin string
	if o.ExternalRedis == nil {
		var err error
		if redisBin, err = EnsureRedis(o.Out, o.InstallRedis); err != nil {
			return nil, err
		}
	}
	table, err := routes.Load(filepath.Join(o.Root, routes.RelPath))
	if err != nil {
		return nil, err
	}
	rules, err := table.Merged()
	if err != nil {
		return nil, err
	}
	devDir := filepath.Join(o.VarDir, "dev")
	for _, d := range []string{devDir, filepath.Join(o.VarDir, "redis")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	p := o.Ports
	f := &Fleet{o: o, Origin: o.PublicOrigin(), Local: o.LocalOrigin(), exited: make(chan string, 16)}

	// The auth-server prepares dev keys, clients and users on first start.
	initCmd := exec.CommandContext(ctx, filepath.Join(o.VarDir, "bin", "auth-server"), "dev-init", "-dir", devDir, "-origin", f.Origin)
	initCmd.Stdout, initCmd.Stderr = o.Out, o.Out
	if err := initCmd.Run(); err != nil {
		return nil, fmt.Errorf("auth-server dev-init: %w", err)
	}
	if b, err := os.ReadFile(filepath.Join(devDir, "clients.json")); err == nil {
		f.Clients = b
	}

	// Each wave starts at once, when the one before it is ready: a
	// component starts only after those it needs at start-up (After), and
	// never before one it waits for during its own start-up — the
	// auth-server's capability discovery waits for capability-core (up to
	// registry.DefaultDiscoveryTimeout), so the two start together.
	for _, wave := range Waves(Components(o, devDir, redisBin)) {
		var started []*proc
		for _, c := range wave {
			pr, err := f.spawn(ctx, c)
			if err != nil {
				f.Stop()
				return nil, err
			}
			started = append(started, pr)
		}
		for _, pr := range started {
			if err := f.waitReady(ctx, pr, 60*time.Second); err != nil {
				f.Stop()
				return nil, err
			}
		}
	}

	backends := map[string]*url.URL{
		"auth-server": {Scheme: "http", Host: addr(p.AuthHTTP)},
		"mcp-gateway": {Scheme: "http", Host: addr(p.GatewayHTTP)},
		"actions-api": {Scheme: "http", Host: addr(p.ActionsHTTP)},
	}
	h, err := routes.Proxy(rules, backends)
	if err != nil {
		f.Stop()
		return nil, err
	}
	ln, err := f.listener(p.Ingress)
	if err != nil {
		f.Stop()
		return nil, fmt.Errorf("local ingress: %w", err)
	}
	f.ingress = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = f.ingress.Serve(ln) }()
	f.closeListeners()
	return f, nil
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// Components lists the processes of the fleet with their environment.
func Components(o Options, devDir, redisBin string) []Component {
	p := o.Ports
	origin := o.PublicOrigin()
	idp := fmt.Sprintf("http://localhost:%d", p.IdPHTTP)
	common := map[string]string{
		"TOLLGATE_ENV":       "development",
		"LOG_FORMAT":         "text",
		"REDIS_URL":          "redis://" + addr(p.Redis) + "/0",
		"PUBLIC_ISSUER_URL":  origin,
		"MCP_RESOURCE_URL":   origin + "/mcp",
		"ACTIONS_AUDIENCE":   origin + "/actions",
		"ACTIONS_PUBLIC_URL": origin,
		"ALLOWED_ORIGINS":    strings.Join(allowedOrigins(origin, o.LocalOrigin(), o.AllowedOrigins), ","),
		"AUTH_GRPC_ADDR":     addr(p.AuthGRPC),
		"CORE_GRPC_ADDR":     addr(p.CoreGRPC),
		// More than net/http's 5 s grace for connections that never sent a
		// request (see testharness.ShutdownTimeout), so a clean stop is clean.
		"SHUTDOWN_TIMEOUT": "15s",
		// The local ingress (routes.Proxy) is on loopback: trust it as the
		// chart's trustedProxies trusts the cluster ingress.
		"TRUSTED_PROXIES": "127.0.0.1/32,::1/128",
		// Longer than production's default: a laptop is shared with
		// builds and browsers (DevRedisCommandTimeout).
		"REDIS_COMMAND_TIMEOUT": o.RedisCommandTimeout(),
	}
	with := func(extra map[string]string) map[string]string {
		env := map[string]string{}
		for k, v := range common {
			env[k] = v
		}
		for k, v := range extra {
			env[k] = v
		}
		if o.ExternalRedis != nil {
			delete(env, "REDIS_URL")
			for k, v := range o.ExternalRedis {
				env[k] = v
			}
		}
		for k, v := range o.Env {
			env[k] = v
		}
		if v, ok := extra["CAPABILITY_BACKENDS"]; ok {
			env["CAPABILITY_BACKENDS"] = v // Env's value with the example appended
		}
		return env
	}
	// The connectors and the auth-server read CAPABILITY_BACKENDS; unset,
	// they use capability-core at CORE_GRPC_ADDR.
	backends := map[string]string{}
	if v := o.CapabilityBackends(); v != "" {
		backends["CAPABILITY_BACKENDS"] = v
	}
	also := func(a, b map[string]string) map[string]string {
		out := maps.Clone(a)
		maps.Copy(out, b)
		return out
	}
	// Start order (Waves): Redis, which every service opens at start-up;
	// then at once the dev IdP, the auth-server, capability-core and the
	// example backend — the auth-server's start-up waits for the
	// capability backends' reflection (registry.Start), and they fetch
	// its signing keys in the background (so they count as ready only
	// once they have them: ReadyDeps); the dev IdP is asked only at a
	// sign-in. Then the connectors, which discover the auth-server and
	// the backends at start-up.
	onRedis := []string{"redis"}
	connectorAfter := []string{"redis", "dev-idp", "auth-server", "capability-core", ExampleBackendName}
	keys := []string{"signing-keys"}
	var cs []Component
	if o.ExternalRedis == nil {
		cs = append(cs, Component{Name: "redis", Cmd: redisBin, ReadyAddr: addr(p.Redis), Args: []string{
			"--port", strconv.Itoa(p.Redis), "--bind", "127.0.0.1", "--dir", filepath.Join(o.VarDir, "redis"),
			"--appendonly", "yes", "--save", "", "--daemonize", "no", "--loglevel", "warning",
		}})
	}
	cs = append(cs, []Component{
		{Name: "dev-idp", Cmd: "dev-idp", AdminPort: p.IdPAdmin, After: onRedis, Env: with(map[string]string{
			"HTTP_ADDR": addr(p.IdPHTTP), "ADMIN_ADDR": addr(p.IdPAdmin),
			"DEVIDP_ISSUER_URL": idp, "DEVIDP_DIR": devDir,
		})},
		{Name: "auth-server", Cmd: "auth-server", AdminPort: p.AuthAdmin, After: onRedis, Env: with(also(backends, map[string]string{
			"HTTP_ADDR": addr(p.AuthHTTP), "GRPC_ADDR": addr(p.AuthGRPC), "ADMIN_ADDR": addr(p.AuthAdmin),
			"SIGNING_KEYS_DIR": filepath.Join(devDir, "keys"), "CLIENTS_FILE": filepath.Join(devDir, "clients.yaml"),
			"UPSTREAM_ISSUER_URL": idp, "UPSTREAM_CLIENT_ID": "tollgate",
			"UPSTREAM_CLIENT_SECRET_FILE": filepath.Join(devDir, "upstream-client-secret"),
			// Clients that register themselves (the MCP Inspector, the
			// MCP SDKs, ChatGPT) work out of the box in development: RFC
			// 7591 registration and Client ID Metadata Documents are on
			// unless the environment says otherwise.
			"DCR_ENABLED": o.DCR(), "CIMD_ENABLED": o.CIMD(),
		}))},
		{Name: "capability-core", Cmd: "capability-core", AdminPort: p.CoreAdmin, After: onRedis, ReadyDeps: keys, Env: with(map[string]string{
			"GRPC_ADDR": addr(p.CoreGRPC), "ADMIN_ADDR": addr(p.CoreAdmin),
		})},
	}...)
	if o.ExampleBackend {
		// Verifies callers as capability-core does (the same AUTH_GRPC_ADDR,
		// audiences and Redis for revoked grants).
		cs = append(cs, Component{Name: ExampleBackendName, Cmd: ExampleBackendName, AdminPort: p.ExampleAdmin, After: onRedis, ReadyDeps: keys, Env: with(map[string]string{
			"GRPC_ADDR": addr(p.ExampleGRPC), "ADMIN_ADDR": addr(p.ExampleAdmin),
		})})
	}
	return append(cs, []Component{
		{Name: "mcp-gateway", Cmd: "mcp-gateway", AdminPort: p.GatewayAdmin, After: connectorAfter, ReadyDeps: keys, Env: with(also(backends, map[string]string{
			"HTTP_ADDR": addr(p.GatewayHTTP), "ADMIN_ADDR": addr(p.GatewayAdmin),
		}))},
		{Name: "actions-api", Cmd: "actions-api", AdminPort: p.ActionsAdmin, After: connectorAfter, ReadyDeps: keys, Env: with(also(backends, map[string]string{
			"HTTP_ADDR": addr(p.ActionsHTTP), "ADMIN_ADDR": addr(p.ActionsAdmin),
		}))},
	}...)
}

// listenVars are the variables a service reads its own listen addresses from.
var listenVars = []string{"HTTP_ADDR", "GRPC_ADDR", "ADMIN_ADDR"}

// listener takes the held listener of port (Options.Listeners), or binds it.
func (f *Fleet) listener(port int) (net.Listener, error) {
	f.mu.Lock()
	ln, ok := f.o.Listeners[port]
	delete(f.o.Listeners, port)
	f.mu.Unlock()
	if ok {
		return ln, nil
	}
	return net.Listen("tcp", addr(port))
}

// closeListeners closes the held listeners no component took.
func (f *Fleet) closeListeners() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for port, ln := range f.o.Listeners {
		_ = ln.Close()
		delete(f.o.Listeners, port)
	}
}

// handOver gives cmd the held listeners of c's listen addresses as
// inherited sockets (fd:3, …) and, for redis-server, closes its held one
// right before it binds the port itself. The caller closes the files once
// cmd started.
func (f *Fleet) handOver(c Component, cmd *exec.Cmd) ([]*os.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.Name == "redis" {
		if ln, ok := f.o.Listeners[f.o.Ports.Redis]; ok {
			_ = ln.Close()
			delete(f.o.Listeners, f.o.Ports.Redis)
		}
		return nil, nil
	}
	var files []*os.File
	for _, k := range listenVars {
		_, p, err := net.SplitHostPort(c.Env[k])
		if err != nil {
			continue
		}
		port, _ := strconv.Atoi(p)
		ln, ok := f.o.Listeners[port]
		if !ok {
			continue
		}
		file, err := ln.(*net.TCPListener).File()
		if err != nil {
			return files, err
		}
		_ = ln.Close() // the child owns the socket now
		delete(f.o.Listeners, port)
		files = append(files, file)
		cmd.Env = append(cmd.Env, fmt.Sprintf("%s=fd:%d", k, 2+len(files))) // app.Listen takes it; ExtraFiles[i] is fd 3+i
	}
	cmd.ExtraFiles = files
	return files, nil
}

func (f *Fleet) spawn(ctx context.Context, c Component) (*proc, error) {
	bin := c.Cmd
	if !filepath.IsAbs(bin) {
		bin = filepath.Join(f.o.VarDir, "bin", c.Cmd)
	}
	cmd := exec.Command(bin, c.Args...)
	cmd.Env = os.Environ()
	for k, v := range c.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	files, err := f.handOver(c, cmd)
	defer func() {
		for _, file := range files {
			_ = file.Close()
		}
	}()
	if err != nil {
		return nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setProcAttr(cmd.SysProcAttr)
	// The child writes its log file itself (an *os.File: no pipe for a
	// goroutine to copy), so a line it wrote before answering a request
	// is in the file when the answer arrives (Flush).
	w, tail, err := f.openLog(c.Name)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Start()
	_ = w.Close() // the child has its own
	if err != nil {
		tail.close()
		return nil, fmt.Errorf("start %s: %w", c.Name, err)
	}
	pr := &proc{c: c, cmd: cmd, done: make(chan struct{}), tail: tail}
	f.mu.Lock()
	f.procs = append(f.procs, pr)
	f.mu.Unlock()
	exited := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tail.follow(exited)
	}()
	go func() {
		pr.err = cmd.Wait()
		close(exited)
		wg.Wait() // every line it wrote is in Out
		close(pr.done)
		if pr.stopping.Load() {
			return
		}
		select {
		case f.exited <- fmt.Sprintf("%s exited unexpectedly (%v)", c.Name, exitText(pr.err)):
		default:
		}
	}()
	return pr, nil
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// outMu keeps a batch of one component's lines together in Out.
var outMu sync.Mutex

// tailInterval is how often a running component's log file is looked at
// for new lines to copy to Out (the terminal of `make dev`).
const tailInterval = 50 * time.Millisecond

// maxLogLine is the longest line copied to Out as one: a longer one is cut
// into lines of this many bytes.
const maxLogLine = 1 << 20

// LogPath is the file component name of a fleet whose state is in varDir
// writes its output (stdout and stderr) to: emptied when a fleet starts
// it, appended to when RestartComponent starts it again.
func LogPath(varDir, name string) string {
	return filepath.Join(varDir, "logs", name+".log")
}

// openLog opens component name's log file for the child to write (w,
// appending) and a logTail that copies what it writes from now on to Out.
func (f *Fleet) openLog(name string) (w *os.File, t *logTail, err error) {
	path := LogPath(f.o.VarDir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, nil, err
	}
	f.mu.Lock()
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if !f.logged[name] {
		flags |= os.O_TRUNC
	}
	if f.logged == nil {
		f.logged = map[string]bool{}
	}
	f.logged[name] = true
	f.mu.Unlock()
	if w, err = os.OpenFile(path, flags, 0o600); err != nil {
		return nil, nil, err
	}
	r, err := os.Open(path)
	if err != nil {
		_ = w.Close()
		return nil, nil, err
	}
	st, err := r.Stat()
	if err != nil {
		_ = w.Close()
		_ = r.Close()
		return nil, nil, err
	}
	return w, &logTail{r: r, off: st.Size(), out: f.o.Out, tag: fmt.Sprintf("%-16s| ", name)}, nil
}

// logTail copies the lines a component writes to its log file to Out,
// each prefixed with the component's name, a whole line at a time.
type logTail struct {
	mu   sync.Mutex
	r    *os.File // nil once closed
	off  int64    // in r, of the first byte not read
	part []byte   // the last line read, not ended yet
	out  io.Writer
	tag  string
}

// follow copies new lines every tailInterval until exited is closed, then
// copies the rest, an unfinished last line included, and closes the file.
func (t *logTail) follow(exited <-chan struct{}) {
	tick := time.NewTicker(tailInterval)
	defer tick.Stop()
	for {
		select {
		case <-exited:
			t.copy(true)
			t.close()
			return
		case <-tick.C:
			t.copy(false)
		}
	}
}

// copy writes to Out every whole line in the file not copied yet (and an
// unfinished last line too when final).
func (t *logTail) copy(final bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.r == nil {
		return
	}
	var out bytes.Buffer
	line := func(b []byte) {
		out.WriteString(t.tag)
		out.Write(bytes.TrimSuffix(b, []byte("\r")))
		out.WriteByte('\n')
	}
	buf := make([]byte, 32*1024)
	for {
		n, err := t.r.ReadAt(buf, t.off)
		t.off += int64(n)
		t.part = append(t.part, buf[:n]...)
		for {
			i := bytes.IndexByte(t.part, '\n')
			if i < 0 {
				if len(t.part) >= maxLogLine {
					line(t.part[:maxLogLine])
					t.part = t.part[maxLogLine:]
					continue
				}
				break
			}
			line(t.part[:i])
			t.part = t.part[i+1:]
		}
		if err != nil || n == 0 {
			break
		}
	}
	if final && len(t.part) > 0 {
		line(t.part)
	}
	if final || len(t.part) == 0 {
		t.part = nil
	} else {
		t.part = append([]byte(nil), t.part...)
	}
	if out.Len() > 0 {
		outMu.Lock()
		_, _ = t.out.Write(out.Bytes())
		outMu.Unlock()
	}
}

func (t *logTail) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.r != nil {
		_ = t.r.Close()
		t.r = nil
	}
}

// Flush copies to Out, now, every whole line each component has written
// so far (the fleet copies them within tailInterval anyway): a line a
// component logged before it answered a request is in Out once Flush
// returns after the answer. A test reading the fleet's output right after
// an answer calls it first (e2e/harness's Log.String does).
func (f *Fleet) Flush() {
	f.mu.Lock()
	procs := slices.Clone(f.procs)
	f.mu.Unlock()
	for _, pr := range procs {
		pr.tail.copy(false)
	}
}

func (f *Fleet) waitReady(ctx context.Context, pr *proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-pr.done:
			return fmt.Errorf("%s exited during start-up (%v); see its log lines above", pr.c.Name, exitText(pr.err))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if pr.c.AdminPort != 0 {
			resp, err := client.Get(fmt.Sprintf("http://%s/healthz/ready", addr(pr.c.AdminPort)))
			if err == nil {
				var rep readyReport
				err = json.NewDecoder(resp.Body).Decode(&rep)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK && (len(pr.c.ReadyDeps) == 0 || err == nil && rep.depsOK(pr.c.ReadyDeps)) {
					return nil
				}
			}
		} else if c, err := net.DialTimeout("tcp", pr.c.ReadyAddr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			if len(pr.c.ReadyDeps) > 0 {
				return fmt.Errorf("%s not ready after %s (ready, with its dependencies %s ok in /healthz/ready)", pr.c.Name, timeout, strings.Join(pr.c.ReadyDeps, ", "))
			}
			return fmt.Errorf("%s not ready after %s", pr.c.Name, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readyReport is the part of /healthz/ready's body (admin.Report) that
// waitReady reads.
type readyReport struct {
	Dependencies []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
	} `json:"dependencies"`
}

// depsOK reports whether every dependency of names is in the report and "ok".
func (r readyReport) depsOK(names []string) bool {
	for _, n := range names {
		ok := false
		for _, d := range r.Dependencies {
			ok = ok || d.Name == n && d.Status == "ok"
		}
		if !ok {
			return false
		}
	}
	return true
}

// Exited delivers a message when a component exits on its own.
func (f *Fleet) Exited() <-chan string { return f.exited }

// Stop sends SIGTERM to every component (in reverse start order), waits up
// to 10s each, then kills what is left.
func (f *Fleet) Stop() {
	f.closeListeners()
	if f.ingress != nil {
		_ = f.ingress.Close()
	}
	for i := len(f.procs) - 1; i >= 0; i-- {
		pr := f.procs[i]
		select {
		case <-pr.done:
			continue
		default:
		}
		pr.terminate()
	}
}

// terminate sends SIGTERM, waits up to 10s, then kills.
func (pr *proc) terminate() {
	_ = syscall.Kill(-pr.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-pr.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pr.cmd.Process.Pid, syscall.SIGKILL)
		<-pr.done
	}
}

// running returns the live process of the component called name.
func (f *Fleet) running(name string) *proc {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.procs) - 1; i >= 0; i-- {
		if f.procs[i].c.Name == name {
			return f.procs[i]
		}
	}
	return nil
}

// StopComponent stops one component as Stop does (SIGTERM, then SIGKILL
// after 10s); its exit is not reported on Exited. Tests use it to take a
// backend away while the rest of the fleet runs.
func (f *Fleet) StopComponent(name string) error {
	pr := f.running(name)
	if pr == nil {
		return fmt.Errorf("no component %q", name)
	}
	pr.stopping.Store(true)
	pr.terminate()
	return nil
}

// RestartComponent starts a component stopped by StopComponent again,
// with the same command and environment, and waits until it is ready.
func (f *Fleet) RestartComponent(ctx context.Context, name string) error {
	pr := f.running(name)
	if pr == nil {
		return fmt.Errorf("no component %q", name)
	}
	select {
	case <-pr.done:
	default:
		return fmt.Errorf("%s is running", name)
	}
	next, err := f.spawn(ctx, pr.c)
	if err != nil {
		return err
	}
	return f.waitReady(ctx, next, 60*time.Second)
}

// AdminURL is the admin base URL of a component by name.
func (f *Fleet) AdminURL(name string) string {
	for _, pr := range f.procs {
		if pr.c.Name == name && pr.c.AdminPort != 0 {
			return "http://" + addr(pr.c.AdminPort)
		}
	}
	return ""
}

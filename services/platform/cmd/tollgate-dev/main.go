// Command tollgate-dev is `make dev`: it builds the services and runs the
// whole fleet in the foreground on http://localhost:4000. Ctrl-C (or
// SIGTERM, or closing its terminal) stops every component (exit status 0;
// during the build or the start-up: "tollgate-dev: stopped", exit status
// 128 + the signal: 130 for Ctrl-C); if one crashes, the fleet stops and
// says which. -free-ports runs it on free loopback ports instead (a second
// fleet next to make dev, with its own -var directory).
//
// Settings come from the environment (devfleet.Settings): PUBLIC_URL (an
// HTTPS tunnel's origin; issuer, resource URLs and allowed hosts and
// origins follow it) and DEV_ALLOWED_ORIGINS (extra browser origins;
// default: the MCP Inspector's http://localhost:6274); EXAMPLE_BACKEND=1
// also starts the example backend (services/example-backend) and adds it to
// CAPABILITY_BACKENDS, which is passed to the connectors and the
// auth-server.
//
// `tollgate-dev token [--client local-test] [--resource mcp|actions|URL]
// [--scope "openid profile email"] [--no-pkce] [--origin URL] [--json]`
// signs in to the running fleet headlessly as the dev user, through the
// real flow, and prints the access token (--json: the whole token
// response). Without --resource it sends none, as a GPT Action does: the
// token's audience is the client's first resource. --origin signs in at
// another fleet than the one that wrote <var>/dev/clients.json.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tollgate/tollgate/services/platform/devfleet"
)

func main() {
	ctx, stop := interruptContext()
	defer stop()
	args := os.Args[1:]
	runner := run
	if len(args) > 0 && args[0] == "token" {
		args, runner = args[1:], token
	}
	if code := exitCode(runner(ctx, args, os.Stdout), context.Cause(ctx), os.Stderr); code != 0 {
		os.Exit(code)
	}
}

// interruptedBy is the cause of the context interruptContext cancels: the
// signal that arrived.
type interruptedBy struct{ sig os.Signal }

func (i interruptedBy) Error() string { return "interrupted by " + i.sig.String() }

// interruptContext returns a context cancelled, with interruptedBy as its
// cause, by the first SIGINT (Ctrl-C), SIGTERM (kill) or SIGHUP (a closed
// terminal stops the fleet as Ctrl-C does). Until stop is called later
// signals are caught too, as with signal.NotifyContext; stop may be
// called more than once.
func interruptContext() (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			cancel(interruptedBy{s})
		case <-done:
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			signal.Stop(sigs)
			close(done)
			cancel(context.Canceled)
		})
	}
}

// errInterrupted is run's answer to Ctrl-C (or SIGTERM, SIGHUP) before
// the fleet is up: the build or the start was cut short on purpose, and
// whatever it started is stopped.
var errInterrupted = errors.New("interrupted")

// exitCode reports err on stderr and returns the exit status: 0 without
// an error; 128 + the signal's number (130 for SIGINT, 143 for SIGTERM,
// 129 for SIGHUP: what a shell reports for a command the signal ended, and
// how `go` and tilt exit on Ctrl-C) with one line "tollgate-dev: stopped"
// when a signal (cause, from interruptContext) interrupted the start-up;
// 1 for any other error.
func exitCode(err, cause error, stderr io.Writer) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errInterrupted):
		fmt.Fprintln(stderr, "tollgate-dev: stopped")
		var by interruptedBy
		if errors.As(cause, &by) {
			if n, ok := by.sig.(syscall.Signal); ok {
				return 128 + int(n)
			}
		}
		return 128 + int(syscall.SIGINT)
	default:
		fmt.Fprintln(stderr, "tollgate-dev:", err)
		return 1
	}
}

// defaultPorts is make dev's port layout (tests use free ports).
var defaultPorts = devfleet.DefaultPorts

// localOriginFile, under the fleet's var directory, holds the running
// fleet's local ingress origin (http://localhost:<port>) while it runs.
const localOriginFile = "dev/local-origin"

// holdPorts binds the fleet's listeners: make dev's fixed ports (busy
// names those another process holds; Redis's only when the fleet runs its
// own, the example backend's only when it is started), or with free a
// free loopback port for each. Start takes the listeners over.
func holdPorts(free, ownRedis, exampleBackend bool) (devfleet.Ports, map[int]net.Listener, []string, error) {
	if !free {
		ports := defaultPorts()
		held, busy := ports.Hold(ownRedis, exampleBackend)
		return ports, held, busy, nil
	}
	ports, held, err := devfleet.ListenFreePorts()
	if err != nil {
		return ports, nil, nil, fmt.Errorf("binding free ports: %w", err)
	}
	drop := func(port int) {
		if ln, ok := held[port]; ok {
			ln.Close()
			delete(held, port)
		}
	}
	if !ownRedis {
		drop(ports.Redis)
	}
	if !exampleBackend {
		drop(ports.ExampleGRPC)
		drop(ports.ExampleAdmin)
	}
	return ports, held, nil, nil
}

// localOrigin is the ingress origin of the fleet running with state in
// varDir: the one it wrote at start, else make dev's.
func localOrigin(varDir string) string {
	if b, err := os.ReadFile(filepath.Join(varDir, localOriginFile)); err == nil {
		if o := strings.TrimSpace(string(b)); strings.HasPrefix(o, "http://") {
			return o
		}
	}
	return fmt.Sprintf("http://localhost:%d", defaultPorts().Ingress)
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("tollgate-dev", flag.ContinueOnError)
	root := fs.String("root", ".", "repository root")
	varDir := fs.String("var", devfleet.DefaultVarDir, "directory for local state (relative to root)")
	noBuild := fs.Bool("no-build", false, "use the binaries already in <var>/bin")
	freePorts := fs.Bool("free-ports", false, "bind a free loopback port for every listener instead of make dev's fixed ones "+
		"(a second fleet next to make dev; give it its own -var); the ingress is printed, and `tollgate-dev token` with the same -var finds it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (tollgate-dev [-free-ports] [-var dir] [-no-build] [-root dir], or tollgate-dev token …)", fs.Arg(0))
	}
	// Every setting, REDIS_URL (and REDIS_MODE…: an external Redis)
	// included, checked at once and, like the ports, before the build,
	// which takes minutes cold.
	settings, err := devfleet.SettingsFromEnv(os.LookupEnv)
	if err != nil {
		return err
	}
	extRedis := settings.ExternalRedis
	// The ports are held from here until the fleet's components take them,
	// so a second make dev started during the build is refused too.
	ports, held, busy, err := holdPorts(*freePorts, extRedis == nil, settings.ExampleBackend)
	if err != nil {
		return err
	}
	if len(busy) > 0 {
		return fmt.Errorf("make dev's ports are in use: %s — is another `make dev` running (in this or another clone), or `tilt up`, whose port-forwards use the same ports? Stop it (Ctrl-C in its terminal) and run make dev again", strings.Join(busy, ", "))
	}
	defer func() {
		for _, ln := range held {
			_ = ln.Close() // those Start did not take (it failed, or the build did)
		}
	}()
	absRoot, err := filepath.Abs(*root)
	if err != nil {
		return err
	}
	vd := *varDir
	if !filepath.IsAbs(vd) {
		vd = filepath.Join(absRoot, vd)
	}
	if !*noBuild {
		if err := devfleet.Build(ctx, absRoot, vd, out); err != nil {
			if ctx.Err() != nil {
				return errInterrupted // go build was killed: not a build failure
			}
			return err
		}
	}
	f, err := devfleet.Start(ctx, devfleet.Options{
		Root: absRoot, VarDir: vd, Ports: ports, Listeners: held, Out: out, InstallRedis: true,
		ExternalRedis: extRedis,
		PublicURL:     settings.PublicURL, AllowedOrigins: settings.AllowedOrigins,
		ExampleBackend: settings.ExampleBackend,
	})
	if err != nil {
		if ctx.Err() != nil {
			return errInterrupted // Start has stopped what it started
		}
		return err
	}
	defer f.Stop()
	// Where `tollgate-dev token` finds this fleet (its ports may be free
	// ones); removed when the fleet stops.
	originFile := filepath.Join(vd, localOriginFile)
	if err := os.WriteFile(originFile, []byte(f.Local+"\n"), 0o644); err != nil {
		return err
	}
	defer os.Remove(originFile)
	devfleet.Banner(out, f, *root, vd, *varDir)
	select {
	case <-ctx.Done():
		fmt.Fprintln(out, "stopping the fleet")
		return nil
	case msg := <-f.Exited():
		return fmt.Errorf("%s; stopped the fleet", msg)
	}
}

// token signs in to the running fleet and prints an access token.
func token(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("tollgate-dev token", flag.ContinueOnError)
	root := fs.String("root", ".", "repository root")
	varDir := fs.String("var", devfleet.DefaultVarDir, "directory of the fleet's local state (relative to root)")
	client := fs.String("client", "local-test", "dev client to sign in with (var/dev/clients.json)")
	resource := fs.String("resource", "", "mcp, actions, or a resource URL (RFC 8707): the token's audience; none sent by default, "+
		"as a GPT Action does: the client's first resource (local-test: mcp, gpt-actions: actions)")
	origin := fs.String("origin", "", "the fleet's origin, http(s)://host[:port] (default: the origin in <var>/dev/clients.json)")
	scope := fs.String("scope", "openid profile email", "space-separated scopes")
	noPKCE := fs.Bool("no-pkce", false, "send no code_challenge, as a GPT Action does (only clients that do not require PKCE)")
	asJSON := fs.Bool("json", false, "print the whole token response as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("token: unexpected argument %q", fs.Arg(0))
	}
	vd := *varDir
	if !filepath.IsAbs(vd) {
		vd = filepath.Join(*root, vd)
	}
	creds, err := devfleet.LoadCredentials(vd)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tr, err := devfleet.SignIn(ctx, devfleet.SignInOptions{
		Creds: creds, ClientID: *client, Resource: *resource, Scope: *scope, NoPKCE: *noPKCE,
		Origin: *origin, LocalOrigin: localOrigin(vd),
	})
	if err != nil {
		return fmt.Errorf("token: %w", err) // unreachable: SignIn says what to check
	}
	if *asJSON {
		_, err = fmt.Fprintf(out, "%s\n", bytes.TrimSpace(tr.Raw))
		return err
	}
	_, err = fmt.Fprintln(out, tr.AccessToken)
	return err
}

// Command tollgate-dev is `make dev`: it builds the services and runs the
// whole fleet in the foreground on http://localhost:4000. Ctrl-C stops
// every component; if one crashes, the fleet stops and says which.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/tollgate/tollgate/services/platform/devfleet"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tollgate-dev:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("tollgate-dev", flag.ContinueOnError)
	root := fs.String("root", ".", "repository root")
	varDir := fs.String("var", "var", "directory for local state (relative to root)")
	noBuild := fs.Bool("no-build", false, "use the binaries already in <var>/bin")
	if err := fs.Parse(args); err != nil {
		return err
	}
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
			return err
		}
	}
	// REDIS_URL (and REDIS_MODE…) in the environment: an external Redis.
	extRedis, err := devfleet.ExternalRedisEnv(os.Getenv)
	if err != nil {
		return err
	}
	f, err := devfleet.Start(ctx, devfleet.Options{
		Root: absRoot, VarDir: vd, Ports: devfleet.DefaultPorts(), Out: out, InstallRedis: true,
		ExternalRedis: extRedis,
	})
	if err != nil {
		return err
	}
	defer f.Stop()
	devfleet.Banner(out, f, vd)
	select {
	case <-ctx.Done():
		fmt.Fprintln(out, "stopping the fleet")
		return nil
	case msg := <-f.Exited():
		return fmt.Errorf("%s; stopped the fleet", msg)
	}
}

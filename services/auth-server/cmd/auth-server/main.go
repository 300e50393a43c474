// Command auth-server is Tollgate's OAuth 2.1 / OpenID Connect provider.
//
//	auth-server                       serve (configuration from the environment)
//	auth-server dev-init -dir var/dev prepare dev keys and clients for `make dev`
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/tollgate/tollgate/services/auth-server/internal/devinit"
	"github.com/tollgate/tollgate/services/auth-server/internal/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "dev-init" {
		err = devinit.Main(os.Args[2:], os.Stdout)
	} else {
		err = server.Run(ctx, os.Getenv, os.Stderr, nil)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "auth-server:", err)
		os.Exit(1)
	}
}

// Command auth-server is Tollgate's OAuth 2.1 / OpenID Connect provider.
//
//	auth-server                       serve (configuration from the environment)
//	auth-server dev-init -dir var/dev prepare dev keys and clients for `make dev`
//	auth-server hash-client-secret    a new client secret and its $hmac-sha256$ hash
//	                                  under CLIENT_SECRET_HMAC_KEY(_FILE) (-stdin: hash one)
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/tollgate/tollgate/services/auth-server/internal/devinit"
	"github.com/tollgate/tollgate/services/auth-server/internal/secrethash"
	"github.com/tollgate/tollgate/services/auth-server/internal/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	cmd := ""
	if len(os.Args) > 1 {
		cmd = os.Args[1]
	}
	switch cmd {
	case "dev-init":
		err = devinit.Main(os.Args[2:], os.Stdout)
	case "hash-client-secret":
		err = secrethash.Main(os.Args[2:], os.Getenv, os.Stdin, os.Stdout)
	default:
		err = server.Run(ctx, os.Getenv, os.Stderr, nil)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "auth-server:", err)
		os.Exit(1)
	}
}

// Command example-backend serves the worked example of a backend of your
// own: a notes list per signed-in user over gRPC, discovered by Tollgate's
// connectors through server reflection when it is listed in
// CAPABILITY_BACKENDS (docs/guides/bring-your-own-backend.md).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/tollgate/tollgate/services/example-backend/internal/backend"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := backend.Run(ctx, os.Getenv, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "example-backend:", err)
		os.Exit(1)
	}
}

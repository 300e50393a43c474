// Command actions-api serves the GPT Actions REST API and its OpenAPI document.
//
//	actions-api                                    serve (configuration from the environment)
//	actions-api openapi -base-url URL [-out FILE]  write the OpenAPI document and exit
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/tollgate/tollgate/services/actions-api/internal/api"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "openapi" {
		if err := api.Export(os.Args[2:], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "actions-api openapi:", err)
			os.Exit(2)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := api.Run(ctx, os.Getenv, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "actions-api:", err)
		os.Exit(1)
	}
}

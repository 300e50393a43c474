// Package idp is the dev upstream OpenID Provider, runnable in-process by
// other services' tests.
package idp

import (
	"context"
	"errors"
	"io"

	"github.com/tollgate/tollgate/services/platform/app"
)

// Run starts the dev IdP and blocks until ctx ends.
func Run(ctx context.Context, getenv func(string) string, stderr io.Writer, onListen app.Listening) error {
	return errors.New("not implemented yet")
}

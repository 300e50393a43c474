//go:build tools

// Package traefik records the ingress controller the cluster end-to-end test
// runs in front of the chart's two Ingresses, so that `go mod tidy` keeps its
// dependencies.
package traefik

import _ "github.com/traefik/traefik/v3/cmd/traefik"

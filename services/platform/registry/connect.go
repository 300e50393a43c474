package registry

import (
	"context"
	"errors"
	"log/slog"

	prom "github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/grpcx"
	"github.com/tollgate/tollgate/services/platform/telemetry"
)

// Fleet is what a service needs to discover its configured backends.
type Fleet struct {
	// Backends are CAPABILITY_BACKENDS with their TLS settings.
	Backends config.Backends
	// First are backends that come before the configured ones, with their
	// own connection or services: the connectors' auth-server (at
	// AUTH_GRPC_ADDR), the auth-server's own GrantsService.
	First []Backend
	// Reuse are connections already dialed, by target: a plaintext
	// backend at one of them uses it (capability-core at CORE_GRPC_ADDR).
	Reuse map[string]*grpc.ClientConn
	// ReservedPaths are the paths the service serves itself, where no
	// backend's operation may be (DiscoveryOptions.ReservedPaths).
	ReservedPaths []string
	// UnderscoreToolNames: the service publishes tool names with "_" for
	// "." (DiscoveryOptions.UnderscoreToolNames).
	UnderscoreToolNames bool

	Log       *slog.Logger
	Metrics   prom.Registerer
	Telemetry *telemetry.Telemetry
}

// Start dials every configured backend (grpcx.Dial: lazy, so a backend
// that is down fails nothing here), reads them all once, and refreshes
// them every Backends.RefreshInterval until ctx ends. The returned close
// releases the connections it dialed.
func Start(ctx context.Context, f Fleet) (*Discovery, func(), error) {
	var (
		list   = append([]Backend(nil), f.First...)
		dialed []*grpc.ClientConn
	)
	closeAll := func() {
		for _, c := range dialed {
			_ = c.Close()
		}
	}
	for _, b := range f.Backends.List {
		// A plaintext backend at a reused target shares that connection
		// and its keepalive (the fleet's: capability-core at CORE_GRPC_ADDR).
		if c, ok := f.Reuse[b.Target]; ok && b.TLS == nil && b.Keepalive == nil {
			list = append(list, Backend{Name: b.Name, Target: b.Target, Conn: c})
			continue
		}
		o := grpcx.ClientOptions{Registry: f.Metrics, Name: b.Name, Telemetry: f.Telemetry, TLS: b.TLS, Keepalive: b.Keepalive, Logger: f.Log}
		c, err := grpcx.Dial(b.Target, o)
		if are := (prom.AlreadyRegisteredError{}); errors.As(err, &are) {
			// The service already counts calls to a peer of this name
			// (its capability-core connection, when this backend is
			// another capability-core target): no second set of series.
			o.Registry = nil
			c, err = grpcx.Dial(b.Target, o)
		}
		if err != nil {
			closeAll()
			return nil, nil, errors.Join(errors.New("capability backend "+b.Name), err)
		}
		dialed = append(dialed, c)
		list = append(list, Backend{Name: b.Name, Target: b.Target, Conn: c})
	}
	d, err := NewDiscovery(DiscoveryOptions{Backends: list, Log: f.Log, Metrics: f.Metrics, ReservedPaths: f.ReservedPaths, UnderscoreToolNames: f.UnderscoreToolNames})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	d.Refresh(ctx)
	interval := f.Backends.RefreshInterval
	if interval <= 0 {
		interval = config.DefaultBackendRefresh
	}
	go d.Run(ctx, interval)
	return d, closeAll, nil
}

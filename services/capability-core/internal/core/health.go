package core

import (
	"context"
	"sync"

	"google.golang.org/protobuf/types/known/timestamppb"

	capabilityv1 "github.com/tollgate/tollgate/proto/gen/tollgate/capability/v1"
	"github.com/tollgate/tollgate/services/platform/buildinfo"
)

// Dependency is something capability-core needs to serve.
type Dependency struct {
	Name  string
	Check func(context.Context) error
}

// Health implements the Health capability.
type Health struct {
	capabilityv1.UnimplementedHealthServiceServer
	Service string
	Deps    []Dependency
}

// GetHealth checks every dependency concurrently. Status is ok when all
// pass and degraded otherwise; details never include internal error text.
func (h *Health) GetHealth(ctx context.Context, _ *capabilityv1.GetHealthRequest) (*capabilityv1.GetHealthResponse, error) {
	checks := make([]*capabilityv1.DependencyCheck, len(h.Deps))
	var wg sync.WaitGroup
	for i, d := range h.Deps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &capabilityv1.DependencyCheck{Name: d.Name, Status: "ok"}
			if err := d.Check(ctx); err != nil {
				c.Status, c.Detail = "down", "unreachable"
			}
			checks[i] = c
		}()
	}
	wg.Wait()
	status := "ok"
	for _, c := range checks {
		if c.Status != "ok" {
			status = "degraded"
		}
	}
	return &capabilityv1.GetHealthResponse{
		Service:   h.Service,
		Version:   buildinfo.Version,
		Status:    status,
		Timestamp: timestamppb.Now(),
		Checks:    checks,
	}, nil
}

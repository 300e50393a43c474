package grpcx

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func healthRegister(s *grpc.Server, hs *health.Server) { healthpb.RegisterHealthServer(s, hs) }

// HealthCheck returns a readiness check that asks a peer's grpc.health.v1
// service whether service (empty: the whole server) is SERVING.
func HealthCheck(conn grpc.ClientConnInterface, service string) func(ctx context.Context) error {
	client := healthpb.NewHealthClient(conn)
	return func(ctx context.Context) error {
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			return err
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("status %s", resp.GetStatus())
		}
		return nil
	}
}

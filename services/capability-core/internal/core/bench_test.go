package core_test

import (
	"context"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	capabilityv1 "github.com/tollgate/tollgate/proto/gen/tollgate/capability/v1"
	"github.com/tollgate/tollgate/services/platform/tokens"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// BenchmarkGetProfile is identity.profile as the mcp-gateway calls it: a
// real capability-core (in-process, GRPC_ADDR on 127.0.0.1) answering
// GetProfile over TCP on one HTTP/2 connection, the caller's token in the
// authorization metadata, 32 calls in flight (the side-by-side run's
// connections). Sub-benchmarks: GRPC_STREAM_WORKERS=0 (a new goroutine per
// call, whose stack grows during the call) and the default 64 (calls on
// reused goroutines). cpu-µs/op is this process's CPU time (user + system,
// client and server: getrusage) per call; allocs/op counts both sides too.
//
//	go test -run '^$' -bench BenchmarkGetProfile -benchmem -count 4 ./internal/core/
func BenchmarkGetProfile(b *testing.B) {
	for _, workers := range []string{"0", "64"} {
		f := start(b, "GRPC_STREAM_WORKERS", workers)
		raw := f.iss.Mint(b, tokentest.Token{
			Subject: "alice", Audience: mcpAud, ClientID: "bench", Scope: "openid profile email",
			Profile: tokens.Profile{Name: "Alice Example", GivenName: "Alice", FamilyName: "Example", PreferredUsername: "alice", Email: "alice@example.com", EmailVerified: true},
		})
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+raw)
		id := capabilityv1.NewIdentityServiceClient(f.conn)
		// The first call waits for the signing keys.
		for {
			if _, err := id.GetProfile(ctx, &capabilityv1.GetProfileRequest{}); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		b.Run(fmt.Sprintf("workers=%s", workers), func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0))) // goroutines = this × GOMAXPROCS
			cpu0 := cpuTime()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req := &capabilityv1.GetProfileRequest{}
				for pb.Next() {
					p, err := id.GetProfile(ctx, req)
					if err != nil || p.GetSub() != "alice" {
						b.Errorf("GetProfile = %v, %v", p, err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

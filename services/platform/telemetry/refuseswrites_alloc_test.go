package telemetry

import (
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestRefusesWritesOnAMissAllocatesNothing: every Redis reply goes through
// refusesWrites (the hook, and each command of a pipeline), and a miss
// (redis.Nil) is the commonest error reply: it is neither OOM nor READONLY
// and costs no allocation (it cost 3 since the READONLY check, review46).
func TestRefusesWritesOnAMissAllocatesNothing(t *testing.T) {
	if n := testing.AllocsPerRun(1000, func() { _ = refusesWrites(redis.Nil) }); n != 0 {
		t.Errorf("refusesWrites(redis.Nil): %v allocations per reply, want 0", n)
	}
	if refusesWrites(redis.Nil) {
		t.Error("a miss counted as a refused write")
	}
}

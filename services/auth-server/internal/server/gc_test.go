package server

import (
	"runtime/debug"
	"testing"

	pconfig "github.com/tollgate/tollgate/services/platform/config"
)

// GC_PERCENT sets the collector's target, unless GOGC is in the
// environment: the runtime has applied the operator's GOGC, which stands.
func TestGCPercent(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	if !gcPercent(pconfig.MapEnv(map[string]string{}), 250) {
		t.Fatal("GC_PERCENT not applied without GOGC")
	}
	if got := debug.SetGCPercent(100); got != 250 {
		t.Fatalf("GC percent %d after GC_PERCENT=250, want 250", got)
	}
	if gcPercent(pconfig.MapEnv(map[string]string{"GOGC": "100"}), 250) {
		t.Fatal("GC_PERCENT applied over GOGC")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC percent %d with GOGC=100 set, want 100 (left as the runtime set it)", got)
	}
}

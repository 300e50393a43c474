package server

import (
	"errors"
	"math"
	"runtime/debug"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"

	pconfig "github.com/tollgate/tollgate/services/platform/config"
)

// keepGCSettings restores the process's GC target and memory limit after a
// test that sets them.
func keepGCSettings(t *testing.T) {
	pct, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(pct)
		debug.SetMemoryLimit(limit)
	})
}

func gcNow() (int, int64) {
	pct := debug.SetGCPercent(100)
	debug.SetGCPercent(pct)
	return pct, debug.SetMemoryLimit(-1)
}

// GC_PERCENT sets the collector's target, unless GOGC is in the
// environment: the runtime has applied the operator's GOGC, which stands.
// The soft memory limit is 90 % of the container's, unless GOMEMLIMIT is
// in the environment; without a container limit none is set.
func TestGCPolicy(t *testing.T) {
	const container = 256 << 20 // the chart's authServer.resources.limits.memory
	noLimit := func() (uint64, error) { return 0, memlimit.ErrNoLimit }
	for _, tc := range []struct {
		name      string
		env       map[string]string
		limit     func() (uint64, error)
		wantPct   int   // GC percent afterwards
		wantLimit int64 // memory limit afterwards
		applied   gcSetting
		wantErr   bool
	}{
		{name: "container limit", env: map[string]string{}, limit: memlimit.Limit(container),
			wantPct: 800, wantLimit: container * 9 / 10, applied: gcSetting{percent: 800, limit: container * 9 / 10, container: container}},
		{name: "no container limit", env: map[string]string{}, limit: noLimit,
			wantPct: 800, wantLimit: math.MaxInt64, applied: gcSetting{percent: 800}},
		{name: "not in a cgroup", env: map[string]string{}, limit: func() (uint64, error) { return 0, memlimit.ErrNoCgroup },
			wantPct: 800, wantLimit: math.MaxInt64, applied: gcSetting{percent: 800}},
		{name: "unreadable limit", env: map[string]string{}, limit: func() (uint64, error) { return 0, errors.New("permission denied") },
			wantPct: 800, wantLimit: math.MaxInt64, applied: gcSetting{percent: 800}, wantErr: true},
		{name: "operator's GOGC", env: map[string]string{"GOGC": "100"}, limit: memlimit.Limit(container),
			wantPct: 100, wantLimit: container * 9 / 10, applied: gcSetting{limit: container * 9 / 10, container: container}},
		{name: "operator's GOMEMLIMIT", env: map[string]string{"GOMEMLIMIT": "100MiB"}, limit: func() (uint64, error) {
			t.Error("container limit read although GOMEMLIMIT is set")
			return container, nil
		}, wantPct: 800, wantLimit: math.MaxInt64, applied: gcSetting{percent: 800}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keepGCSettings(t)
			debug.SetMemoryLimit(math.MaxInt64)
			got := gcPolicy(pconfig.MapEnv(tc.env), 800, tc.limit)
			if (got.err != nil) != tc.wantErr {
				t.Fatalf("err %v, want an error: %v", got.err, tc.wantErr)
			}
			got.err = nil
			if got != tc.applied {
				t.Errorf("applied %+v, want %+v", got, tc.applied)
			}
			if pct, limit := gcNow(); pct != tc.wantPct || limit != tc.wantLimit {
				t.Errorf("GC percent %d, memory limit %d; want %d, %d", pct, limit, tc.wantPct, tc.wantLimit)
			}
		})
	}
}

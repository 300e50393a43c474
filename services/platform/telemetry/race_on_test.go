//go:build race

package telemetry_test

// raceEnabled: the race detector's instrumentation changes what allocates
// (sync.Pool drops some of what it is given), so allocation counts are
// checked only without it.
const raceEnabled = true

//go:build race

package oauth

// raceEnabled: the race detector's instrumentation allocates where the
// build without it does not, so allocation counts are checked without it.
const raceEnabled = true

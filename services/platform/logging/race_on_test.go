//go:build race

package logging

// raceEnabled: the race detector's instrumentation changes what allocates
// (crypto/rand.Text allocates once more under it), so allocation counts
// are checked only without it.
const raceEnabled = true

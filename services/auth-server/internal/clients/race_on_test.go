//go:build race

package clients

// raceEnabled: under the race detector sync.Pool drops items at random
// and allocation counts mean nothing; they are checked only without it.
const raceEnabled = true

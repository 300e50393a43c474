//go:build race

package gateway

// raceEnabled: the race detector's sync.Pool drops items at random, so
// code that reuses pooled buffers (encoding/json's scanner) allocates
// now and then; allocation counts are checked only without it.
const raceEnabled = true

package testharness

import (
	"testing"
	"time"
)

// Eventually polls cond every 10 ms until it reports true, and fails the
// test with what and cond's last detail once within has passed. The
// deadline bounds the loop; it asserts that a state is reached, not how
// fast (speed belongs in benchmarks).
func Eventually(t testing.TB, within time.Duration, what string, cond func() (ok bool, detail string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s (last: %s)", what, within, detail)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

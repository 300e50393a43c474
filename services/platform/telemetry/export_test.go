package telemetry

import "time"

// SetOOMHold sets oomHold until the returned function restores it.
func SetOOMHold(d time.Duration) (restore func()) {
	old := oomHold
	oomHold = d
	return func() { oomHold = old }
}

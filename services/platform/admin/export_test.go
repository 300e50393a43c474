package admin

import "time"

// SetRepeatEvery shortens how often a warning repeats while a check stays down.
func SetRepeatEvery(r *Readiness, d time.Duration) { r.repeatEvery = d }

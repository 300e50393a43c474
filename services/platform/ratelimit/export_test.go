package ratelimit

// WaitAhead waits until p's leases taken ahead of time are in: a test
// steps through the leases in order, without timing.
func WaitAhead(p *Leasing) { p.ahead.Wait() }

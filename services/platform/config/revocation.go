package config

import "time"

// Revocation is how a token verifier follows revoked grants
// (services/platform/revocation).
type Revocation struct {
	// ReconcileInterval is how often every revoked grant is reloaded from
	// Redis (REVOCATION_RECONCILE_INTERVAL, default 15s): the bound on how
	// long a replica that missed an announcement accepts a revoked grant.
	ReconcileInterval time.Duration
}

// Bounds of REVOCATION_RECONCILE_INTERVAL: often enough to bound a missed
// announcement, rarely enough that a full reload per replica stays cheap.
const (
	MinReconcileInterval = time.Second
	MaxReconcileInterval = 5 * time.Minute
)

// LoadRevocation reads REVOCATION_RECONCILE_INTERVAL.
func LoadRevocation(s *Source) Revocation {
	return Revocation{ReconcileInterval: s.Duration("REVOCATION_RECONCILE_INTERVAL", 15*time.Second)}
}

// Validate adds Revocation problems to p.
func (r Revocation) Validate(p *Problems) {
	if r.ReconcileInterval < MinReconcileInterval || r.ReconcileInterval > MaxReconcileInterval {
		p.Addf("REVOCATION_RECONCILE_INTERVAL: %s is outside [%s, %s]", r.ReconcileInterval, MinReconcileInterval, MaxReconcileInterval)
	}
}

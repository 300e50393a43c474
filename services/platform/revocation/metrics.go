package revocation

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are optional: a nil *metrics records nothing.
type metrics struct {
	lastSync      prometheus.Gauge
	syncFailures  prometheus.Counter
	announcements prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, s *Set) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tollgate_revocation_last_sync_timestamp_seconds",
			Help: "Unix time of the last successful full load of the revoked grants and removed clients from Redis.",
		}),
		syncFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_revocation_sync_failures_total",
			Help: "Full loads of the revoked grants or removed clients that failed (Redis unavailable); the last known state stays in use.",
		}),
		announcements: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_revocation_announcements_total",
			Help: "Revocation announcements received over Redis pub/sub.",
		}),
	}
	grants := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tollgate_revocation_grants",
		Help: "Revoked grants held in memory (bounded by the grants revoked within one access-token lifetime).",
	}, func() float64 { return float64(s.Len()) })
	removed := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tollgate_revocation_removed_clients",
		Help: "Clients removed from the auth-server's clients file held in memory (records last one access-token lifetime).",
	}, func() float64 { return float64(s.RemovedClients()) })
	for _, c := range []prometheus.Collector{m.lastSync, m.syncFailures, m.announcements, grants, removed} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) reloaded(now time.Time) {
	if m != nil {
		m.lastSync.Set(float64(now.UnixNano()) / 1e9)
	}
}

func (m *metrics) reloadFailed() {
	if m != nil {
		m.syncFailures.Inc()
	}
}

func (m *metrics) announced() {
	if m != nil {
		m.announcements.Inc()
	}
}

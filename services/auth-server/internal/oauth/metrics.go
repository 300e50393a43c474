package oauth

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/services/platform/ratelimit"
	"github.com/tollgate/tollgate/services/platform/telemetry"
)

type metrics struct {
	grants *prometheus.CounterVec
	// grantSeries are grants' series by label set, looked up once per
	// set (telemetry.SeriesCache): a granted token's count is a map read,
	// not a hash of its labels into the vector (okGrant).
	grantSeries *telemetry.SeriesCache[grantLabels, prometheus.Counter]
	errors      *prometheus.CounterVec
	upstream    *prometheus.HistogramVec
	rateLimited *prometheus.CounterVec
	signing     *signingMeter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		grants: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_auth_grants_total",
			Help: "Authorization requests and token grants by grant type, client and result (ok or the OAuth error code).",
		}, []string{"grant_type", "client", "result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_auth_errors_total",
			Help: "OAuth error responses by endpoint and error code.",
		}, []string{"endpoint", "error"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tollgate_auth_upstream_request_duration_seconds",
			Help:    "Latency of calls to the upstream IdP by operation (discovery, token, userinfo) and result.",
			Buckets: prometheus.DefBuckets,
		}, []string{"operation", "result"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_auth_rate_limit_rejections_total",
			Help: "Requests refused with 429 by endpoint.",
		}, []string{"endpoint"}),
		signing: newSigningMeter(),
	}
	m.grantSeries = &telemetry.SeriesCache[grantLabels, prometheus.Counter]{Make: func(l grantLabels) prometheus.Counter {
		return m.grants.WithLabelValues(l.grantType, l.client, "ok")
	}}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.grants, m.errors, m.upstream, m.rateLimited, m.signing.cpu, m.signing.count} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
		// Zero series from the start, so that the rate-limit alert and the
		// dashboard see every guarded endpoint before its first rejection.
		for _, e := range guardedEndpoints {
			m.rateLimited.WithLabelValues(e)
		}
	}
	return m, nil
}

// registerLeaseMetrics exports how the leased rate-limit buckets served
// requests (ratelimit.LeaseStats): how many waited for a lease from Redis
// and how many leases were taken ahead of time.
func registerLeaseMetrics(reg prometheus.Registerer, l *ratelimit.Leasing) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tollgate_auth_rate_limit_lease_waits_total",
			Help: "Requests on a leased rate-limit bucket (address, client) that waited for a lease from Redis.",
		}, func() float64 { return float64(l.Stats().Waited) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tollgate_auth_rate_limit_leases_ahead_total",
			Help: "Leases of rate-limit tokens taken ahead of time, in the background.",
		}, func() float64 { return float64(l.Stats().Ahead) }),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// guardedEndpoints are the endpoint labels of guard (Handler).
var guardedEndpoints = []string{"authorize", "callback", "consent", "consent_revoke", "token", "userinfo", "revoke", "introspect", "register"}

func (m *metrics) observeUpstream(op string, start time.Time, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.upstream.WithLabelValues(op, result).Observe(time.Since(start).Seconds())
}

// grantLabels are the grant type and client labels of a granted token
// (clientLabel bounds the client's).
type grantLabels struct{ grantType, client string }

// okGrant counts a token granted (tollgate_auth_grants_total, result
// "ok").
func (m *metrics) okGrant(grantType, client string) {
	m.grantSeries.Get(grantLabels{grantType, client}).Inc()
}

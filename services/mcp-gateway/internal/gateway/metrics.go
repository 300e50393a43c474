package gateway

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/services/platform/logging"
	"github.com/tollgate/tollgate/services/platform/telemetry"
)

// metrics are the gateway's Prometheus series (see docs/reference/mcp.md).
type metrics struct {
	requests    *prometheus.CounterVec
	toolCalls   *prometheus.CounterVec
	coreLatency *prometheus.HistogramVec
	sessions    *prometheus.CounterVec
	streams     *prometheus.GaugeVec
	streamEnds  *prometheus.CounterVec
	registered  prometheus.Gauge
	tokenCache  *prometheus.CounterVec
	relayed     *prometheus.CounterVec
	recordCache *prometheus.CounterVec
	scopeForms  *prometheus.CounterVec
	// sessionless counts POST /mcp requests without a session by the HTTP
	// status answered (sessionlessAnswered).
	sessionless *prometheus.CounterVec
	// refusals counts the "access token refused" lines not written
	// (logging.RefusalLog, auth.go's refused).
	refusals *logging.RefusalMetrics

	// Series every call touches, resolved once rather than by hashing
	// their labels on each request (issue 12's call path).
	byRequest           telemetry.SeriesCache[requestLabels, prometheus.Counter]
	tokenHit, tokenMiss prometheus.Counter
}

// requestLabels are tollgate_mcp_requests_total's labels; status, when
// result is "", is the result as an HTTP status (made a string once).
type requestLabels struct {
	transport, method, result string
	status                    int
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_mcp_requests_total",
			Help: "MCP HTTP requests by transport, method (JSON-RPC method for POSTs, else the HTTP method) and result (the HTTP status answered, or the name of a refusal); requests without a session are counted as the others, and in tollgate_mcp_sessionless_requests_total too.",
		}, []string{"transport", "method", "result"}),
		sessionless: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_mcp_sessionless_requests_total",
			Help: "POST /mcp requests without Mcp-Session-Id of a version with sessions (2025-03-26 to 2025-11-25, initialize excepted), served or refused without a session once authenticated, by method (JSON-RPC method) and code (the HTTP status answered).",
		}, []string{"method", "code"}),
		toolCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_mcp_tool_calls_total",
			Help: "Tool calls by tool and result (ok, insufficient_scope, invalid_arguments, and fault.AnswerFor's labels: failed_precondition, unauthenticated, forbidden, not_found, conflict, rate_limited, unavailable, error).",
		}, []string{"tool", "result"}),
		coreLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tollgate_mcp_capability_call_seconds",
			Help:    "Latency of the capability-core call behind each tool.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"tool"}),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_mcp_sessions_total",
			Help: "Sessions created and ended on this replica, by transport and event (created; deleted: its record removed from Redis; delete_failed: Redis refused to remove it — a legacy stream ended, and a later message to the session removes it, or a DELETE /mcp failed; evicted: ended by the gateway to make room for a new session of the same subject and client at SESSION_LIMIT_PER_SUBJECT, idle for SESSION_EVICT_IDLE_AFTER).",
		}, []string{"transport", "event"}),
		streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tollgate_mcp_open_streams",
			Help: "Server-to-client streams open on this replica, by transport (GET /mcp, GET /sse).",
		}, []string{"transport"}),
		streamEnds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_mcp_streams_ended_total",
			Help: "Server-to-client streams (GET /mcp, GET /sse) this replica ended because the access token they were opened with is no longer accepted, by transport and reason (revoked: its grant was revoked; expired: its exp plus the verifier's clock leeway passed; key_removed: its signing key left the key set).",
		}, []string{"transport", "reason"}),
		registered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tollgate_mcp_active_sessions",
			Help: "Sessions this replica currently holds state for.",
		}),
		tokenCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_mcp_token_verifications_total",
			Help: "Access-token verifications by cache result (hit: no RSA verification needed).",
		}, []string{"cache"}),
		relayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_mcp_relayed_messages_total",
			Help: "Legacy /messages POSTs relayed between replicas through Redis, by direction (sent, received, dropped).",
		}, []string{"direction"}),
		recordCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_mcp_session_cache_total",
			Help: "Session checks of requests in a session, by result: memory (record and liveness known to this replica; no Redis command), hit (record known to this replica; liveness or renewal asked of Redis) or miss (record read from Redis).",
		}, []string{"result"}),
		scopeForms: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_mcp_scope_challenges_total",
			Help: "Tool calls refused for their tool's scopes, by transport and the form of the refusal chosen (SCOPE_CHALLENGE): http_403 or tool_result.",
		}, []string{"transport", "form"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.toolCalls, m.coreLatency, m.sessions, m.streams, m.streamEnds, m.registered, m.tokenCache, m.relayed, m.recordCache, m.scopeForms, m.sessionless} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	var err error
	if m.refusals, err = logging.NewRefusalMetrics(reg); err != nil {
		return nil, err
	}
	// Zero series from the start for the bounded label sets alerts use.
	for _, t := range []string{transportStreamable, transportSSE} {
		m.streams.WithLabelValues(t)
		m.streamEnds.WithLabelValues(t, endRevoked)
		m.streamEnds.WithLabelValues(t, endExpired)
		m.requests.WithLabelValues(t, "POST", "rate_limited")
		m.scopeForms.WithLabelValues(t, formHTTP403)
		m.scopeForms.WithLabelValues(t, formToolResult)
	}
	m.recordCache.WithLabelValues("memory")
	m.recordCache.WithLabelValues("hit")
	m.recordCache.WithLabelValues("miss")
	m.byRequest.Make = func(l requestLabels) prometheus.Counter {
		if l.result == "" {
			l.result = strconv.Itoa(l.status)
		}
		return m.requests.WithLabelValues(l.transport, l.method, l.result)
	}
	m.tokenHit, m.tokenMiss = m.tokenCache.WithLabelValues("hit"), m.tokenCache.WithLabelValues("miss")
	return m, nil
}

// request counts a request by transport, method (methodLabel's) and
// result, one of a fixed set.
func (m *metrics) request(transport, method, result string) {
	m.byRequest.Get(requestLabels{transport: transport, method: method, result: result}).Inc()
}

// requestStatus counts a request whose result is its HTTP status.
func (m *metrics) requestStatus(transport, method string, status int) {
	m.byRequest.Get(requestLabels{transport: transport, method: method, status: status}).Inc()
}

// sessionlessAnswered counts a POST /mcp without a session (method:
// methodLabel's) answered with HTTP status code.
func (m *metrics) sessionlessAnswered(method string, code int) {
	m.sessionless.WithLabelValues(method, strconv.Itoa(code)).Inc()
}

// streamEnded counts a stream ended for reason (endRevoked, endExpired).
func (m *metrics) streamEnded(transport, reason string) {
	m.streamEnds.WithLabelValues(transport, reason).Inc()
}

func (m *metrics) toolCall(tool, result string) { m.toolCalls.WithLabelValues(tool, result).Inc() }

// scopeChallenge counts a scope refusal by transport and form (formHTTP403,
// formToolResult).
func (m *metrics) scopeChallenge(transport, form string) {
	m.scopeForms.WithLabelValues(transport, form).Inc()
}

func (m *metrics) cache(hit bool) {
	if hit {
		m.tokenHit.Inc()
	} else {
		m.tokenMiss.Inc()
	}
}

// knownMethods bounds the method label.
var knownMethods = map[string]bool{
	"initialize": true, "notifications/initialized": true, "ping": true, "tools/list": true, "tools/call": true,
	"resources/list": true, "resources/read": true, "resources/templates/list": true, "prompts/list": true,
	"logging/setLevel": true, "server/discover": true, "subscriptions/listen": true, "notifications/cancelled": true,
	"GET": true, "POST": true, "DELETE": true, "HEAD": true, "OPTIONS": true,
}

func methodLabel(m string) string {
	if knownMethods[m] {
		return m
	}
	return "other"
}

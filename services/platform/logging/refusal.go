package logging

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Sampled bounds how many lines of one kind a process writes: a token
// bucket (golang.org/x/time/rate) that holds burst lines and refills at
// perSecond lines a second. A line that finds the bucket empty is not
// written but counted, and the next line written reports the count as
// "suppressed": how many lines of this kind were dropped since the
// previous one written (0 when none). So a flood writes at most burst
// lines at once and perSecond a second after that, and the lines written
// still tell how large the flood was. The zero value is not usable; make
// one with NewSampled. Safe for concurrent use.
type Sampled struct {
	limiter    *rate.Limiter
	suppressed atomic.Uint64
	// dropped, when set, counts each line not written as it is dropped
	// (RefusalMetrics): the count of a flood's last lines is known before
	// a next line reports it, or when none comes.
	dropped prometheus.Counter
	// now is the clock the bucket reads (time.Now; tests fix it).
	now func() time.Time
}

// NewSampled returns a Sampled that writes at most burst lines at once
// and perSecond lines a second on average (perSecond > 0, burst >= 1).
func NewSampled(perSecond float64, burst int) *Sampled {
	return &Sampled{limiter: rate.NewLimiter(rate.Limit(perSecond), burst), now: time.Now}
}

// Log writes msg with args and "suppressed" (the count described on
// Sampled) to l at level when the bucket holds a line, and reports
// whether it did; otherwise it counts the line and writes nothing. A line
// l would not write at level (slog.Logger.Enabled) neither spends the
// bucket nor is counted.
func (s *Sampled) Log(ctx context.Context, l *slog.Logger, level slog.Level, msg string, args ...any) bool {
	if !l.Enabled(ctx, level) {
		return false
	}
	if !s.limiter.AllowN(s.now(), 1) {
		s.suppressed.Add(1)
		if s.dropped != nil {
			s.dropped.Inc()
		}
		return false
	}
	// args[:len(args):len(args)]: never write into the caller's array.
	l.Log(ctx, level, msg, append(args[:len(args):len(args)], "suppressed", s.suppressed.Swap(0))...)
	return true
}

// Access token refusal lines: a resource server writes at most
// RefusalBurst at once and RefusalLinesPerSecond a second on average
// (per replica) of each of two kinds — refusals of tokens whose signature
// verified (they name a grant and client) and all others — so an
// anonymous flood of bad tokens cannot fill the logs, nor crowd out the
// lines of tokens this fleet signed (a revoked token's replay); the
// refusals beyond are counted ("suppressed") and every refusal still
// counts in the service's request metrics.
const (
	RefusalLinesPerSecond = 10
	RefusalBurst          = 10
)

// RefusalMessage is the message of the line RefusalLog writes.
const RefusalMessage = "access token refused"

// RefusalMetrics are a process's RefusalLog series: the counter
// tollgate_refusal_log_suppressed_total of the refusal lines a RefusalLog
// dropped, by bucket — "verified" (refusals that name a grant or client)
// and "unverified" (all others). A line's "suppressed" reports the same
// drops only when a next line of its kind is written; the counter has
// them at once, a flood's last ones included
// (docs/operations/monitoring.md). Make them once per process, where the
// service registers its metrics, with NewRefusalMetrics.
type RefusalMetrics struct {
	verified, unverified prometheus.Counter
}

// NewRefusalMetrics registers tollgate_refusal_log_suppressed_total, both
// buckets at 0, with reg; the error is reg's (a second registration in one
// registry is refused).
func NewRefusalMetrics(reg prometheus.Registerer) (*RefusalMetrics, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_refusal_log_suppressed_total",
		Help: "\"access token refused\" lines not written (token bucket empty), by bucket: verified (the token's signature verified and its claims name a grant or client) or unverified.",
	}, []string{"bucket"})
	if err := reg.Register(c); err != nil {
		return nil, err
	}
	return &RefusalMetrics{verified: c.WithLabelValues("verified"), unverified: c.WithLabelValues("unverified")}, nil
}

// Refusal describes one refused access token (RFC 6750 §3.1
// invalid_token or insufficient_scope) for RefusalLog. Nothing in it is
// the token or any part of it.
type Refusal struct {
	// Reason is one code of a fixed vocabulary (platform/tokens: the
	// Reason* constants, e.g. "expired", "bad_signature"), never free text.
	Reason string
	// ClientAddress is the client's address by the fleet's trusted-proxy
	// rule (platform/clientip).
	ClientAddress string
	// Method and Path are the request's.
	Method, Path string
	// GrantID and ClientID are the grant_id and client_id claims of a
	// token whose signature verified with a published key (refused after
	// that: expired, wrong audience, revoked, insufficient scope…), and
	// empty otherwise: an unverified token's claims are whatever its
	// sender wrote.
	GrantID, ClientID string
}

// RefusalLog writes one WARN line RefusalMessage per refused access
// token, bounded by two Sampled of RefusalLinesPerSecond and
// RefusalBurst: one for refusals that name a grant or client (the
// token's signature verified, so only tokens this fleet signed spend it),
// one for every other refusal (anyone can send those). A line's
// "suppressed" counts the refusals of its own kind dropped since the
// previous line of that kind. The line's members: reason,
// client_address, method, path, grant_id and client_id (when known),
// suppressed, and the request_id the logger's handler adds from ctx.
// docs/operations/monitoring.md describes it.
type RefusalLog struct {
	log *slog.Logger
	// verified bounds the lines of refusals that carry GrantID or
	// ClientID; unverified all others.
	verified, unverified *Sampled
}

// NewRefusalLog returns a RefusalLog writing to l and counting the lines
// it drops in m (nil: counted only in the lines' "suppressed"). A process
// makes one and keeps it: its bound is per RefusalLog.
func NewRefusalLog(l *slog.Logger, m *RefusalMetrics) *RefusalLog {
	r := &RefusalLog{log: l,
		verified:   NewSampled(RefusalLinesPerSecond, RefusalBurst),
		unverified: NewSampled(RefusalLinesPerSecond, RefusalBurst)}
	if m != nil {
		r.verified.dropped, r.unverified.dropped = m.verified, m.unverified
	}
	return r
}

// Log writes r's line if the bound allows it, and reports whether it did.
// A Refusal without a Reason refuses no token (tokens.RefusalCode's "" for
// an outage, ErrKeysUnavailable): it writes nothing, spends no bucket and
// is not counted as suppressed.
func (l *RefusalLog) Log(ctx context.Context, r Refusal) bool {
	if r.Reason == "" {
		return false
	}
	args := make([]any, 0, 14)
	args = append(args, "reason", r.Reason, "client_address", r.ClientAddress, "method", r.Method, "path", r.Path)
	if r.GrantID != "" {
		args = append(args, "grant_id", r.GrantID)
	}
	if r.ClientID != "" {
		args = append(args, "client_id", r.ClientID)
	}
	s := l.unverified
	if r.GrantID != "" || r.ClientID != "" {
		s = l.verified
	}
	return s.Log(ctx, l.log, slog.LevelWarn, RefusalMessage, args...)
}

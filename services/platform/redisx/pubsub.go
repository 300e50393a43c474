package redisx

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// PubSubPingEvery is how long a subscription may receive nothing before
// Listen sends a PING on it; PubSubPongWithin is how long it then waits
// for the PONG (or any other reply). A subscription silent for both is
// closed and made again: a connection that goes silent without being
// closed — a proxy or sidecar that keeps ACKing but forwards nothing, a
// node gone behind a NAT — is replaced within PubSubPingEvery +
// PubSubPongWithin (6 s) of its last reply. TCP keep-alive does not
// notice it (the proxy answers the probes; the kernel's own would take
// minutes), nor does go-redis: its Receive waits without a bound, and
// the health check of PubSub.Channel only reconnects when its PING
// cannot be written, which a silent connection always accepts.
const (
	PubSubPingEvery  = 3 * time.Second
	PubSubPongWithin = 3 * time.Second
)

// PubSubRetryWait bounds Listen's wait between two attempts to subscribe
// (from 100 ms, doubling), so a Redis back after an outage of any length
// is subscribed to within about this long. While Redis is still down an
// attempt costs one refused or timed-out dial (REDIS_DIAL_TIMEOUT).
const PubSubRetryWait = 500 * time.Millisecond

// errSilent is a subscription that did not answer its PING in time.
var errSilent = errors.New("subscription silent: no reply to PING")

// PubSubHandler is what Listen calls, each on Listen's goroutine, in
// order: a slow call holds up the messages after it (and the PING that
// checks the subscription meanwhile).
type PubSubHandler struct {
	// Kind names the subscription in
	// tollgate_redis_pubsub_resubscribes_total{kind} ("revocation", "mcp").
	Kind string
	// Message is called with each message received.
	Message func(ctx context.Context, m *redis.Message)
	// Subscribed, when set, is called each time Redis has confirmed the
	// subscription of every channel: the first time, and after each
	// resubscription. What was published while no subscription was
	// confirmed is lost (pub/sub keeps nothing): a caller that must not
	// miss a message reads the state it stands for again here.
	Subscribed func(ctx context.Context)
	// Lost, when set, is called when a subscription Subscribed announced
	// is found silent (no reply to a PING within PubSubPongWithin) or
	// broken (its connection failed), before it is replaced: messages
	// may have been missed from some time before this call.
	Lost func(err error)
}

// Listen subscribes to channels and calls h until ctx ends. The
// subscription is checked with a PING on it after PubSubPingEvery without
// a message (go-redis's PubSub.Ping, answered on the subscription) and
// must then reply within PubSubPongWithin; a subscription that does not,
// or whose connection fails, is closed and made again on a new connection
// (the waits between attempts grow from 100 ms to 500 ms while Redis
// cannot be reached). tollgate_redis_pubsub_resubscribes_total{kind}
// counts the subscriptions replaced: one Subscribed had announced and that
// was then lost, or one that stayed silent. go-redis's own reconnection
// (PubSub.Channel) is not used: it notices a connection that fails but
// not one that goes silent, and tells no one what it may have missed.
//
// A subscription is a connection of its own, outside the pool and the
// circuit breaker.
func (c *Client) Listen(ctx context.Context, channels []string, h PubSubHandler) {
	resubscribed := c.resubscribes(h.Kind)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		ps := c.UniversalClient.Subscribe(ctx, channels...)
		confirmed, err := listen(ctx, ps, channels, h)
		_ = ps.Close()
		if ctx.Err() != nil {
			return
		}
		if confirmed || errors.Is(err, errSilent) {
			resubscribed.Inc()
			if c.log != nil {
				c.log.Warn("redis subscription lost; subscribing again", "kind", h.Kind, "err", err)
			}
		}
		if confirmed {
			backoff = 100 * time.Millisecond
			if h.Lost != nil {
				h.Lost(err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, PubSubRetryWait)
	}
}

// listen serves ps until it is found silent or broken, or ctx ends, and
// reports whether Subscribed was called for it.
func listen(ctx context.Context, ps *redis.PubSub, channels []string, h PubSubHandler) (confirmed bool, err error) {
	pending := make(map[string]bool, len(channels))
	for _, ch := range channels {
		pending[ch] = true
	}
	var pinged bool
	quietUntil := time.Now().Add(PubSubPingEvery)
	for {
		wait := time.Until(quietUntil)
		if wait <= 0 {
			// ReceiveTimeout reads without a deadline when given none.
			wait = time.Millisecond
		}
		msg, err := ps.ReceiveTimeout(ctx, wait)
		if ctx.Err() != nil {
			return confirmed, ctx.Err()
		}
		if err != nil {
			var ne interface{ Timeout() bool }
			if !errors.As(err, &ne) || !ne.Timeout() {
				return confirmed, err
			}
			if pinged {
				return confirmed, errSilent
			}
			// Written on the subscription's connection: a silent one
			// takes it, and only the missing reply tells.
			if err := ps.Ping(ctx); err != nil {
				return confirmed, fmt.Errorf("ping: %w", err)
			}
			pinged, quietUntil = true, time.Now().Add(PubSubPongWithin)
			continue
		}
		// Any reply shows the connection alive.
		pinged, quietUntil = false, time.Now().Add(PubSubPingEvery)
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" || confirmed {
				continue
			}
			delete(pending, m.Channel)
			if len(pending) == 0 {
				confirmed = true
				if h.Subscribed != nil {
					h.Subscribed(ctx)
				}
			}
		case *redis.Message:
			if h.Message != nil {
				h.Message(ctx, m)
			}
		}
	}
}

// resubscribes is the counter of Listen's replaced subscriptions of kind
// (a counter that counts nothing without WithMetrics).
func (c *Client) resubscribes(kind string) prometheus.Counter {
	if c.pubsubResubscribes == nil {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "unregistered"})
	}
	return c.pubsubResubscribes.WithLabelValues(kind)
}

package redisx_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// listened records what Listen told its handler.
type listened struct {
	mu         sync.Mutex
	messages   []string
	subscribed int
	lost       []error
}

func (l *listened) handler(kind string) redisx.PubSubHandler {
	return redisx.PubSubHandler{
		Kind: kind,
		Message: func(_ context.Context, m *redis.Message) {
			l.mu.Lock()
			l.messages = append(l.messages, m.Payload)
			l.mu.Unlock()
		},
		Subscribed: func(context.Context) {
			l.mu.Lock()
			l.subscribed++
			l.mu.Unlock()
		},
		Lost: func(err error) {
			l.mu.Lock()
			l.lost = append(l.lost, err)
			l.mu.Unlock()
		},
	}
}

func (l *listened) state() (messages []string, subscribed int, lost []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.messages...), l.subscribed, append([]error(nil), l.lost...)
}

func (l *listened) got(payload string) bool {
	msgs, _, _ := l.state()
	for _, m := range msgs {
		if m == payload {
			return true
		}
	}
	return false
}

// resubscribes reads tollgate_redis_pubsub_resubscribes_total{kind} from reg.
func resubscribes(t *testing.T, reg *prometheus.Registry, kind string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "tollgate_redis_pubsub_resubscribes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no tollgate_redis_pubsub_resubscribes_total{kind=%q}", kind)
	return 0
}

// publishUntilReceived publishes numbered payloads on channel through pub
// until l has received one: a message published while the subscription is
// being replaced is lost (pub/sub keeps nothing), so one is sent per poll.
func publishUntilReceived(t *testing.T, pub *redisx.Client, channel string, l *listened, what string) {
	t.Helper()
	n := 0
	testharness.Eventually(t, 30*time.Second, what, func() (bool, string) {
		n++
		payload := what + " " + strconv.Itoa(n)
		if err := pub.Publish(context.Background(), channel, payload).Err(); err != nil {
			return false, err.Error()
		}
		// Delivered in order: the next poll finds it.
		for i := 1; i < n; i++ {
			if l.got(what + " " + strconv.Itoa(i)) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d published, none received", n)
	})
}

// TestListenReplacesASilentSubscription: the connection of a subscription
// goes silent without being closed (the proxy in front of Redis forwards
// nothing on it any more, in either direction, and keeps it open; new
// connections are forwarded). Listen notices the missing PONG, closes the
// subscription, tells Lost, subscribes again on a new connection, tells
// Subscribed, and receives what is published after that; the metric
// counts one replacement. A healthy idle subscription, PINGed and
// answering, is not replaced.
func TestListenReplacesASilentSubscription(t *testing.T) {
	r := testharness.StartRedis(t)
	proxy := testharness.StartHungProxy(t, r.Addr())
	reg := prometheus.NewRegistry()
	cfg := r.Config()
	cfg.URL = "redis://" + proxy.Addr() + "/0"
	sub, err := redisx.New(cfg, redisx.WithMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	pub := r.Client()
	channel := pub.Key("test", "pubsub")

	var l listened
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sub.Listen(ctx, []string{channel, pub.Key("test", "other")}, l.handler("test"))
	}()
	t.Cleanup(func() { cancel(); <-done })

	publishUntilReceived(t, pub, channel, &l, "before")
	if _, subscribed, _ := l.state(); subscribed != 1 {
		t.Fatalf("Subscribed called %d times for one subscription of two channels; want once, after both are confirmed", subscribed)
	}
	// Idle past a PING and its PONG's bound: answered, so kept.
	time.Sleep(redisx.PubSubPingEvery + redisx.PubSubPongWithin + time.Second)
	if n := resubscribes(t, reg, "test"); n != 0 {
		t.Fatalf("a healthy idle subscription was replaced %v times", n)
	}
	publishUntilReceived(t, pub, channel, &l, "idle")

	proxy.SilenceHeld()
	publishUntilReceived(t, pub, channel, &l, "after")
	_, subscribed, lost := l.state()
	if subscribed != 2 || len(lost) != 1 {
		t.Errorf("Subscribed %d times, Lost %d times (%v); want 2 and 1", subscribed, len(lost), lost)
	}
	if n := resubscribes(t, reg, "test"); n != 1 {
		t.Errorf("tollgate_redis_pubsub_resubscribes_total{kind=test} = %v, want 1", n)
	}
}

// TestListenResubscribesAfterRedisRestart: a subscription whose
// connection breaks (Redis killed) is made again once Redis answers; the
// attempts that fail meanwhile are not counted as replacements.
func TestListenResubscribesAfterRedisRestart(t *testing.T) {
	r := testharness.StartRedis(t)
	reg := prometheus.NewRegistry()
	sub, err := redisx.New(r.Config(), redisx.WithMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	channel := sub.Key("test", "pubsub")

	var l listened
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sub.Listen(ctx, []string{channel}, l.handler("test"))
	}()
	t.Cleanup(func() { cancel(); <-done })

	pub := r.Client()
	publishUntilReceived(t, pub, channel, &l, "before")
	r.Stop()
	time.Sleep(time.Second) // a few failed attempts
	r.Start()
	publishUntilReceived(t, pub, channel, &l, "after")
	if _, subscribed, lost := l.state(); subscribed != 2 || len(lost) != 1 {
		t.Errorf("Subscribed %d times, Lost %d times (%v); want 2 and 1", subscribed, len(lost), lost)
	}
	if n := resubscribes(t, reg, "test"); n != 1 {
		t.Errorf("tollgate_redis_pubsub_resubscribes_total{kind=test} = %v, want 1", n)
	}
}

package revocation_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/revocation"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// TestSilentSubscriptionIsReplaced: the connection of a verifier's
// subscription goes silent without being closed (a proxy in front of Redis
// that keeps it open and forwards nothing more on it, nor on the pooled
// connections it held; new connections are forwarded). The verifier
// notices the missing PONG, subscribes again and reloads every record, so
// a grant revoked while its subscription was silent — whose announcement
// it never received — is refused without waiting for the reconcile tick
// (an hour here); the reload is retried until it succeeds (its first
// attempts may take a pooled connection that is silent too).
func TestSilentSubscriptionIsReplaced(t *testing.T) {
	r := testharness.StartRedis(t)
	proxy := testharness.StartHungProxy(t, r.Addr())
	cfg := r.Config()
	cfg.URL = "redis://" + proxy.Addr() + "/0"
	reg := prometheus.NewRegistry()
	rdb, err := redisx.New(cfg, redisx.WithMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	s := newSet(t, rdb, revocation.Options{ReconcileInterval: time.Hour, Metrics: reg})
	rev := revocation.NewRevoker(r.Client(), time.Hour, nil)
	// Revoked once Redis holds the verifier's subscription, so that its
	// announcement is delivered: counted exactly once, and nothing else is
	// in flight when the count is taken. (Revoked before that, the grant
	// would be refused by the reload after subscribing, and an announcement
	// published just as the subscription came could be counted after the
	// count was taken.)
	eventually(t, 30*time.Second, "the verifier subscribed", func() bool {
		chans, err := r.Client().PubSubChannels(context.Background(), "*").Result()
		return err == nil && len(chans) > 0
	})
	if err := rev.Revoke(context.Background(), "grant-before"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "grant-before announced", func() bool {
		return counterValue(t, reg, "tollgate_revocation_announcements_total") == 1
	})
	if !s.Revoked("grant-before") {
		t.Fatal("grant-before announced but not refused")
	}
	announced := counterValue(t, reg, "tollgate_revocation_announcements_total")

	proxy.SilenceHeld()
	if err := rev.Revoke(context.Background(), "grant-silent"); err != nil {
		t.Fatal(err)
	}
	// The deadline bounds the wait; the replacement comes within about
	// redisx.PubSubPingEvery + PubSubPongWithin.
	eventually(t, 30*time.Second, "grant-silent refused", func() bool { return s.Revoked("grant-silent") })
	if n := counterValue(t, reg, "tollgate_redis_pubsub_resubscribes_total"); n != 1 {
		t.Errorf("tollgate_redis_pubsub_resubscribes_total{kind=revocation} = %v, want 1", n)
	}
	if n := counterValue(t, reg, "tollgate_revocation_announcements_total"); n != announced {
		t.Errorf("announcements went from %v to %v: grant-silent's cannot have been received", announced, n)
	}
	// And the new subscription receives announcements.
	if err := rev.Revoke(context.Background(), "grant-after"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "grant-after refused", func() bool { return s.Revoked("grant-after") })
}

package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/tollgate/tollgate/services/auth-server/internal/oauth"
	"github.com/tollgate/tollgate/services/auth-server/internal/store"
)

// Two auth-server replicas on one Redis, one clock 70 s ahead (brk50c
// 02). A code issued by the on-time replica (lifetime 1 min, as fosite
// sets it) was dropped from its subject's code index when the replica
// ahead issued the user another code 50 s later (indexCode's sweep by the
// process clock, margin the minute ttlFor adds), though the code was
// still valid for 10 s: the user's disconnect did not end it, and it
// redeemed into a new grant. The sweep now keeps an entry AUTH_CODE_TTL
// past its score, and EndCodes reads every entry.
func TestEndCodesWithSkewedReplicas(t *testing.T) {
	ctx := context.Background()
	setup := setups[0]
	clk := newClock()
	ahead := func() time.Time { return clk.now().Add(70 * time.Second) }
	onTime, _ := newStore(t, setup, 0, store.WithClock(clk.now))
	skewed, _ := newStore(t, setup, 0, store.WithClock(ahead))
	sub := fmt.Sprintf("skew-user-%d", time.Now().UnixNano())
	issue := func(s *store.Store, now time.Time, id string) (*fosite.Request, string) {
		t.Helper()
		req := request(t, s, id)
		req.Session.(*oauth.Session).Subject = sub
		req.Session.SetExpiresAt(fosite.AuthorizeCode, now.Add(time.Minute)) // fosite: AUTH_CODE_TTL from the issuer's clock
		if err := s.CreateAuthorizeCodeSession(ctx, id+".c", req); err != nil {
			t.Fatal(err)
		}
		return req, id + ".c"
	}
	base := fmt.Sprintf("skew-%d", time.Now().UnixNano())
	req, sig := issue(onTime, clk.now(), base+"-a")
	clk.add(50 * time.Second)
	issue(skewed, ahead(), base+"-b") // another authorization of the user, on the replica ahead

	rctx := readCode(t, ctx, onTime, sig) // the token request read it before the disconnect
	if n, _, err := onTime.EndCodes(ctx, sub, "c1"); err != nil || n != 2 {
		t.Errorf("the disconnect ended %d codes (%v), want 2: the 50 s old code, valid 10 s more, is not among them", n, err)
	}
	if err := redeem(rctx, onTime, sig, req, base+"-a.rt1"); !errors.Is(err, store.ErrCodeEnded) {
		t.Fatalf("redeeming the code issued before the disconnect: %v, want ErrCodeEnded", err)
	}
}

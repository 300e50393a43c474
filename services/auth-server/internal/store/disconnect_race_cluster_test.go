package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/auth-server/internal/oauth"
	"github.com/tollgate/tollgate/services/auth-server/internal/store"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// holdListing holds, on a cluster node client, the pipeline leg that
// lists a grant under its subject (a ZADD on key) until release closes.
type holdListing struct {
	key     string
	held    chan struct{}
	release chan struct{}
}

func (h *holdListing) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *holdListing) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *holdListing) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if slices.ContainsFunc(cmds, func(c redis.Cmder) bool {
			a := c.Args()
			return c.Name() == "zadd" && len(a) > 1 && a[1] == h.key
		}) {
			close(h.held)
			<-h.release
		}
		return next(ctx, cmds)
	}
}

// A redemption in flight while the user disconnects the app, on a Redis
// Cluster: the redemption script (the code's node) has marked the code
// used and written the grant, and its listing under the subject (another
// node, the same pipeline) has not arrived yet. The disconnect's Grants
// does not list the new grant, so EndCodes must name it (the redeemed
// code's grant id), and the disconnect revokes it by id
// (oauth.Server.Disconnect's steps after the consent). Without it
// (brk50c 01) the grant survived the disconnect's answer with a working
// refresh token; connected-apps.md: "A code the app redeemed before is a
// grant, revoked with the others".
func TestClusterRedemptionInFlightSurvivesDisconnect(t *testing.T) {
	ctx := context.Background()
	var cluster *testharness.RedisCluster
	for _, s := range setups {
		if c, ok := s.(*testharness.RedisCluster); ok {
			cluster = c
		}
	}
	if cluster == nil {
		t.Fatal("no Redis Cluster among the shared setups (TestMain)")
	}
	sub := fmt.Sprintf("race-user-%d", time.Now().UnixNano())
	rdb, err := redisx.New(cluster.Config(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	index := rdb.Key("as", "subject-grants", redisx.Hash(sub))
	h := &holdListing{key: index, held: make(chan struct{}), release: make(chan struct{})}
	released := false
	release := func() {
		if !released {
			released = true
			close(h.release)
		}
	}
	t.Cleanup(release)
	rdb.UniversalClient.(*redis.ClusterClient).OnNewNode(func(n *redis.Client) { n.AddHook(h) })
	redeemer := newStoreOn(t, rdb, 0) // the replica answering the token request

	other, ordb := newStore(t, cluster, 0) // the replica answering the disconnect
	indexNode, err := cluster.MasterOf(index)
	if err != nil {
		t.Fatal(err)
	}
	id := ""
	for i := range 200 {
		cand := fmt.Sprintf("race-%d-%d", time.Now().UnixNano(), i)
		if a, err := cluster.MasterOf(redisx.Tag(cand)); err == nil && a != indexNode {
			id = cand
			break
		}
	}
	if id == "" {
		t.Fatal("no grant id on another master than the subject's index")
	}
	// Warm: redeemScript in the code master's script cache, as on a server
	// that has redeemed a code before (else the EVALSHA answers NOSCRIPT).
	codeNode, _ := cluster.MasterOf(redisx.Tag(id))
	for i := range 200 {
		warm := fmt.Sprintf("%s-warm-%d", id, i)
		if a, err := cluster.MasterOf(redisx.Tag(warm)); err != nil || a != codeNode {
			continue
		}
		wreq := request(t, other, warm)
		wreq.Session.(*oauth.Session).Subject = "warm-" + sub
		if err := other.CreateAuthorizeCodeSession(ctx, warm+".c", wreq); err != nil {
			t.Fatal(err)
		}
		if err := redeem(ctx, redeemer, warm+".c", wreq, warm+".rt1"); err != nil {
			t.Fatal(err)
		}
		break
	}
	req := request(t, other, id)
	req.Session.(*oauth.Session).Subject = sub
	if err := other.CreateAuthorizeCodeSession(ctx, id+".c", req); err != nil {
		t.Fatal(err)
	}
	rctx := readCode(t, ctx, redeemer, id+".c")
	done := make(chan error, 1)
	go func() { done <- redeem(rctx, redeemer, id+".c", req, id+".rt1") }()
	<-h.held
	codeKey := rdb.Key("as", "code", redisx.Tag(id), "c")
	testharness.Eventually(t, 5*time.Second, "the redemption script ran", func() (bool, string) {
		v, _ := ordb.HGet(ctx, codeKey, "used").Result()
		return v != "", ""
	})

	// The disconnect (oauth.Server.Disconnect's steps after the consent).
	n, redeemed, err := other.EndCodes(ctx, sub, "c1")
	if err != nil || n != 0 || !slices.Equal(redeemed, []string{id}) {
		t.Fatalf("EndCodes: %d, %q, %v; want 0 ended and the redeemed code's grant %s", n, redeemed, err, id)
	}
	grants, err := other.Grants(ctx, sub, func() fosite.Session { return oauth.NewSession() })
	if err != nil {
		t.Fatal(err)
	}
	listed := slices.ContainsFunc(grants, func(g store.Grant) bool { return g.ID == id })
	for _, g := range grants {
		if g.ClientID == "c1" {
			if _, err := other.RevokeSubjectGrant(ctx, sub, g.ID, func() fosite.Session { return oauth.NewSession() }); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, gid := range redeemed { // revoked by id: it may not be listed yet
		if err := other.RevokeGrant(ctx, gid); err != nil {
			t.Fatal(err)
		}
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("the redemption: %v", err)
	}
	t.Logf("the new grant listed when the disconnect read the grants: %v", listed)
	if _, err := other.GetRefreshTokenSession(ctx, id+".rt1", oauth.NewSession()); err == nil {
		t.Fatalf("the disconnect answered with the redeemed code's grant %s unrevoked: its refresh token still works", id)
	}
}

package store_test

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ory/fosite"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/auth-server/internal/oauth"
	"github.com/tollgate/tollgate/services/auth-server/internal/store"
	"github.com/tollgate/tollgate/services/platform/redisx"
)

// mainRecord is a grant's hash as the previous format (main at 66691fc)
// wrote it, captured from that code's store: redeemed with the refresh
// token "<id>.rt1", rotated once to "<id>.rt2".
func mainRecord(t *testing.T) (id string, fields map[string]string) {
	t.Helper()
	b, err := os.ReadFile("testdata/grant-written-by-66691fc.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	var req struct{ ID string }
	if err := json.Unmarshal([]byte(fields["req"]), &req); err != nil {
		t.Fatal(err)
	}
	return req.ID, fields
}

// rotatedAt is the Unix ms of the record's last rotation.
func rotatedAt(t *testing.T, fields map[string]string) int64 {
	t.Helper()
	at, _, _ := strings.Cut(fields["rotated"], ":")
	n, err := strconv.ParseInt(at, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// intent is what the oauth package's refresh handler tells the store for
// a refresh by c1 (store_test.go's client) from the token with handle
// from to its successor to.
func intent(to string) store.RefreshIntent {
	return store.RefreshIntent{Successor: to, ClientID: "c1",
		ClientScopes: []string{"openid", "profile", "email", "offline_access"}, ClientAudiences: []string{"https://api.example/mcp"}}
}

// refreshAs is a refresh token request in fosite's order, as the oauth
// package composes it: the intent, the read (which rotates when it may),
// then the transaction fosite commits. It returns the grant as read.
func refreshAs(ctx context.Context, s *store.Store, _ fosite.Requester, from, to string, mod ...func(*store.RefreshIntent)) (fosite.Requester, error) {
	rctx := store.WithRequestScope(ctx)
	in := intent(to)
	for _, m := range mod {
		m(&in)
	}
	store.ExpectRefresh(rctx, from, in)
	got, err := s.GetRefreshTokenSession(rctx, from, oauth.NewSession())
	if err != nil {
		return got, err
	}
	return got, rotate(rctx, s, got, from, to)
}

func slicesEqual(a fosite.Arguments, b []string) bool { return slices.Equal([]string(a), b) }

// roundTrips counts a client's round trips to Redis: each command and each
// pipeline is one.
type roundTrips struct{ n atomic.Int32 }

func (c *roundTrips) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (c *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}

func (c *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n.Add(1); return next(ctx, cmds) }
}

// countRoundTrips starts counting rdb's round trips from now.
func countRoundTrips(rdb *redisx.Client) *roundTrips {
	c := &roundTrips{}
	rdb.AddHook(c)
	return c
}

// afterCommand runs fn after a command named name (lower case) on key has
// been answered, alone or in a pipeline: a deterministic point between two
// steps of the store's own sequence of round trips.
type afterCommand struct {
	name, key string
	fn        func()
}

func (a afterCommand) matches(cmd redis.Cmder) bool {
	args := cmd.Args()
	return cmd.Name() == a.name && len(args) > 1 && args[1] == a.key
}

func (a afterCommand) DialHook(next redis.DialHook) redis.DialHook { return next }

func (a afterCommand) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if a.matches(cmd) {
			a.fn()
		}
		return err
	}
}

func (a afterCommand) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if slices.ContainsFunc(cmds, a.matches) {
			a.fn()
		}
		return err
	}
}

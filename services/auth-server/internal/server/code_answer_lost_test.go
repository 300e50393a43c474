package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/auth-server/internal/store"
)

// A code redemption whose answer is lost: Redis runs the redemption (the
// code is marked used, its grant created) after the auth-server stopped
// waiting for it, so the client was answered 503 temporarily_unavailable
// with Retry-After and no tokens. Its retry of the same code is a second
// use of the code: denied with invalid_grant (RFC 6749 §4.1.2: "MUST deny
// the request") and the grant the lost redemption created is revoked
// ("SHOULD revoke … all tokens previously issued based on that
// authorization code"; OAuth 2.1 §4.1.3). None of that grant's tokens
// reached anyone — the auth-server answers nothing before the redemption's
// outcome is known — so the revocation takes nothing from the client, and
// a retry cannot be told from a replay: the client starts a new
// authorization, which is served (docs/reference/oauth.md, "Codes").
//
// How the outcome is lost, with a real redis-server: CLIENT PAUSE WRITE
// holds the redemption's pipeline (its first command, the subject index's
// ZADD) after the code's read went through; once it is held, one write
// unpauses Redis and keeps it busy in a script for longer than the
// auth-server's REDIS_COMMAND_TIMEOUT, so the held pipeline runs after the
// auth-server gave up on it.
func TestCodeRedemptionAnswerLost(t *testing.T) {
	f := startFleet(t, map[string]string{"REDIS_COMMAND_TIMEOUT": "2s"})
	c := f.Clients["local-test"]
	direct := unbufferedRedis(t, f)
	a, code, answer := holdRedemption(t, f, c, direct)
	id, _, _ := strings.Cut(store.CodeHandle(code), ".")
	// Unpaused and busy for 3.5 s in one write: Redis runs the script
	// before it gets back to the held pipeline (2 s command timeout).
	pipe := direct.Pipeline()
	pipe.Do(ctxT(t), "CLIENT", "UNPAUSE")
	pipe.Eval(ctxT(t), busyScript, nil, 3500000)
	if _, err := pipe.Exec(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	tr := <-answer
	if tr.Status != http.StatusServiceUnavailable || tr.Error != "temporarily_unavailable" || tr.Header.Get("Retry-After") == "" ||
		tr.AccessToken != "" || tr.IDToken != "" || tr.RefreshToken != "" {
		t.Fatalf("exchange whose redemption Redis ran late: %d %s %q: %s", tr.Status, tr.Error, tr.Header.Get("Retry-After"), tr.Description)
	}
	codeKeys := direct.Keys(ctxT(t), "*:as:code:{"+id+"}:*").Val()
	if len(codeKeys) != 1 || direct.HGet(ctxT(t), codeKeys[0], "used").Val() == "" || len(direct.Keys(ctxT(t), "*:as:grant2:{"+id+"}").Val()) != 1 {
		t.Fatalf("the held redemption did not run after the answer (code keys %v): the test did not lose an outcome", codeKeys)
	}

	// The client retries as Retry-After says: a second use of the code.
	r := f.exchange(c, a, code)
	if r.Status != http.StatusBadRequest || r.Error != "invalid_grant" || r.AccessToken != "" || r.IDToken != "" || r.RefreshToken != "" {
		t.Fatalf("retry after the lost answer: %d %s: %s (want 400 invalid_grant)", r.Status, r.Error, r.Description)
	}
	if k := direct.Keys(ctxT(t), "*:as:grant2:{"+id+"}").Val(); len(k) != 0 {
		t.Fatalf("the lost redemption's grant is still live after the retry: %v", k)
	}
	// And again: still denied, nothing issued.
	if r := f.exchange(c, a, code); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
		t.Fatalf("a third use: %d %s", r.Status, r.Error)
	}
	// The client's way on: a new authorization.
	f.fullFlow(c, newAuthRequest(c))
}

// busyScript keeps Redis busy for ARGV[1] microseconds: it runs no other
// command meanwhile (under busy-reply-threshold, 5 s, it does not even
// answer BUSY).
const busyScript = `
local t0 = redis.call('TIME')
while true do
  local t = redis.call('TIME')
  if (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) > tonumber(ARGV[1]) then return 1 end
end`

// unbufferedRedis is a client of the fleet's redis-server that waits as
// long as a command takes (the busy script) and never retries.
func unbufferedRedis(t *testing.T, f *fleet) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: f.Redis.Addr(), ReadTimeout: time.Minute, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// warmTokenLimiter sends refreshes until the token endpoint's rate-limit
// leases hold tokens ahead (ratelimit.Leasing): the next token request
// then takes its token without Redis, and what CLIENT PAUSE WRITE holds
// is the grant's own write, not the limiter's lease — if it comes within
// the leases' 250 ms (holdRedemption).
func warmTokenLimiter(f *fleet, c devClient) {
	f.t.Helper()
	rt := f.fullFlow(c, newAuthRequest(c)).RefreshToken
	for range 16 {
		tr := f.refresh(c, rt)
		if tr.Status != http.StatusOK {
			f.t.Fatalf("warming the limiter: %d %s", tr.Status, tr.Error)
		}
		rt = tr.RefreshToken
	}
}

// pauseWrites holds every write command sent to Redis (CLIENT PAUSE WRITE;
// reads go through) until CLIENT UNPAUSE, at most 30 s.
func pauseWrites(t *testing.T, rdb *redis.Client) {
	t.Helper()
	if err := rdb.Do(ctxT(t), "CLIENT", "PAUSE", "30000", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Do(context.Background(), "CLIENT", "UNPAUSE").Err() })
}

// holdAttempts bounds holdRedemption's attempts.
const holdAttempts = 10

// holdRedemption authorizes a new code for c, pauses Redis's writes
// (pauseWrites) and starts the code's exchange; it returns once the
// exchange's redemption pipeline is held (waitHeldRedemption), with the
// channel its answer will come on. Writes stay paused.
//
// The exchange takes its rate-limit tokens from the leases
// warmTokenLimiter took, which last 250 ms (ratelimit.Leasing's TTL). On
// a loaded machine the exchange may come later: it then needs a new lease,
// a write the pause holds instead of the redemption, and is answered 503
// by the limiter ("rate limiter unavailable") before its code is read.
// Such an attempt is void — no redemption was held, the code is unused —
// and is made again with a new code, at most holdAttempts times.
func holdRedemption(t *testing.T, f *fleet, c devClient, direct *redis.Client) (*authRequest, string, <-chan tokenResponse) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		a := newAuthRequest(c)
		code := f.authorize(a)
		warmTokenLimiter(f, c)
		pauseWrites(t, direct)
		answer := make(chan tokenResponse, 1)
		go func() { answer <- f.exchange(c, a, code) }()
		early := waitHeldRedemption(t, direct, answer)
		if early == nil {
			return a, code, answer
		}
		if err := direct.Do(ctxT(t), "CLIENT", "UNPAUSE").Err(); err != nil {
			t.Fatal(err)
		}
		id, _, _ := strings.Cut(store.CodeHandle(code), ".")
		codeKeys := direct.Keys(ctxT(t), "*:as:code:{"+id+"}:*").Val()
		if early.Status != http.StatusServiceUnavailable || len(codeKeys) != 1 || direct.HGet(ctxT(t), codeKeys[0], "used").Val() != "" {
			t.Fatalf("attempt %d: the exchange was answered before its redemption was held, and not as a void attempt (503, code unused): %d %s: %s (code keys %v)",
				attempt, early.Status, early.Error, early.Description, codeKeys)
		}
		if attempt == holdAttempts {
			t.Fatalf("in %d attempts no exchange got past the rate limiter with Redis's writes paused: each needed a new lease (503 %s: %s)",
				holdAttempts, early.Error, early.Description)
		}
		t.Logf("attempt %d void: the exchange needed a new rate-limit lease while writes were paused (503 %s: %s); again with a new code", attempt, early.Error, early.Description)
	}
}

// waitHeldRedemption waits until a code redemption's pipeline is held by
// CLIENT PAUSE WRITE: a client blocked (flags=b) at its first command, the
// subject index's ZADD (store.listGrant); it returns nil then. If the
// exchange is answered first (it never got to its redemption), it returns
// that answer. The deadline is generous (a loaded machine may take
// seconds to get the exchange there) and below the pause's 30 s, after
// which Redis would run the write on its own.
func waitHeldRedemption(t *testing.T, rdb *redis.Client, answer <-chan tokenResponse) *tokenResponse {
	t.Helper()
	held := func() bool {
		for _, l := range strings.Split(rdb.ClientList(ctxT(t)).Val(), "\n") {
			if strings.Contains(l, " flags=b ") && strings.Contains(l, " cmd=zadd ") {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(25 * time.Second)
	for {
		if held() {
			return nil
		}
		select {
		case tr := <-answer:
			return &tr
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no code redemption held by CLIENT PAUSE WRITE in 25s:\n%s", rdb.ClientList(ctxT(t)).Val())
		}
		time.Sleep(time.Millisecond)
	}
}

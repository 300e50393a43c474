package server_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/auth-server/internal/server"
	pconfig "github.com/tollgate/tollgate/services/platform/config"
)

// SIGNING_CONCURRENCY at its upper bound (256, config.Load's range 0–256)
// over real HTTP with a real redis-server: concurrent code and refresh
// grants, each of a grant of its own, are all served — every code
// exchange answers its three tokens, every refresh rotates — and a second
// round refreshes every rotated token, so no grant was lost or revoked on
// the way. (That the 256 turns all come back through the poller is checked
// where the gate is visible: TestSignGateHandoffUnderConcurrency's 256-turn
// case in the oauth package.)
func TestSigningConcurrencyAtItsBound(t *testing.T) {
	f := startFleet(t, map[string]string{"SIGNING_CONCURRENCY": "256"})
	c := f.Clients["local-test"]
	const n = 32
	reqs := make([]*authRequest, n)
	codes := make([]string, n)
	rts := make([]string, n)
	for i := range n {
		reqs[i] = newAuthRequest(c)
		codes[i] = f.authorize(reqs[i])
		rts[i] = f.fullFlow(c, newAuthRequest(c)).RefreshToken
	}
	out := make([]tokenResponse, 2*n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if i%2 == 0 {
				out[i] = f.exchange(c, reqs[i/2], codes[i/2])
			} else {
				out[i] = f.refresh(c, rts[i/2])
			}
		}()
	}
	close(start)
	wg.Wait()
	var next []string
	for i, tr := range out {
		if tr.Status != http.StatusOK || tr.AccessToken == "" || tr.RefreshToken == "" {
			t.Fatalf("request %d (%s): %d %s: %s", i, [2]string{"code", "refresh"}[i%2], tr.Status, tr.Error, tr.Description)
		}
		if i%2 == 0 && tr.IDToken == "" {
			t.Fatalf("code exchange %d: no ID token", i/2)
		}
		if i%2 == 1 {
			if tr.RefreshToken == rts[i/2] {
				t.Fatalf("refresh %d: the refresh token was not rotated", i/2)
			}
		}
		next = append(next, tr.RefreshToken)
	}
	// Every grant of the burst, the exchanged ones and the rotated ones,
	// refreshes once more, concurrently.
	again := make([]tokenResponse, len(next))
	for i := range next {
		wg.Add(1)
		go func() {
			defer wg.Done()
			again[i] = f.refresh(c, next[i])
		}()
	}
	wg.Wait()
	for i, tr := range again {
		if tr.Status != http.StatusOK || tr.AccessToken == "" {
			t.Fatalf("second refresh %d: %d %s: %s (a grant of the burst lost?)", i, tr.Status, tr.Error, tr.Description)
		}
	}
}

// SIGNING_CONCURRENCY and SIGNING_QUEUE_WAIT out of range stop the
// auth-server at start-up, before it listens, with an error naming the
// variable and its range (config.Load's bounds; the values themselves are
// checked one by one in the config package).
func TestSigningSettingsRefusedAtStartup(t *testing.T) {
	f := newFleet(t, nil, "", true)
	for _, tc := range []struct{ key, value, want string }{
		{"SIGNING_CONCURRENCY", "257", "SIGNING_CONCURRENCY: 257 is not 0 (one per CPU) to 256"},
		{"SIGNING_CONCURRENCY", "-1", "SIGNING_CONCURRENCY: -1 is not 0 (one per CPU) to 256"},
		{"SIGNING_CONCURRENCY", "many", `SIGNING_CONCURRENCY: "many" is not an integer`},
		{"SIGNING_QUEUE_WAIT", "0s", "SIGNING_QUEUE_WAIT: 0s is not 1ms to 1m"},
		{"SIGNING_QUEUE_WAIT", "2m", "SIGNING_QUEUE_WAIT: 2m0s is not 1ms to 1m"},
	} {
		env := map[string]string{}
		for k, v := range f.env {
			env[k] = v
		}
		env[tc.key] = tc.value
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		listened := false
		err := server.Run(ctx, pconfig.MapEnv(env), &strings.Builder{}, func(map[string]net.Addr) { listened = true })
		cancel()
		var ce *pconfig.Error
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) || listened {
			t.Errorf("%s=%s: Run returned %v (listened: %v), want a configuration error containing %q", tc.key, tc.value, err, listened, tc.want)
		}
	}
}

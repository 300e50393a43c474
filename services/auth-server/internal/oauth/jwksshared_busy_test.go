package oauth

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
	"github.com/tollgate/tollgate/services/auth-server/internal/fetchtest"
)

// TestSharedJWKSFetchIsNotRefusedForAnotherAddress (brk48): concurrent
// Resolves of one jwks_uri share one GET (singleflight), and that GET
// carries the client address of the request that started it. An
// attacker whose address holds its 4 anonymous fetch slots (its own slow
// documents) starts the fetch of a victim client's jwks_uri (a token
// request naming the victim with any assertion); the shared fetch waits
// for the attacker's address slot and is refused "too many fetches in
// flight for this client address" — and every request of the victim
// that joined it in the meantime gets that refusal too, although the
// victim's address has every slot free. The victim's assertion must be
// verified (its own fetch, or one not refused for another's address).
func TestSharedJWKSFetchIsNotRefusedForAnotherAddress(t *testing.T) {
	srv := fetchtest.New(t, fetchtest.PathPrefix("/hang/"), fetchtest.EmptyJWKS)
	// The shared fetch waits this long for the attacker's address slot:
	// long enough that the victim's Resolve joins it (it does so at once
	// once the flight is seen started below); not an assertion on time.
	mf := clients.NewMetadataFetcher(clients.FetchOptions{AllowPrivate: true, Timeout: time.Minute, QueueWait: 5 * time.Second})
	jf := newJWKSFetcher(mf.RetryableClient())
	var watch atomic.Bool
	nows := make(chan struct{}, 16)
	jf.now = func() time.Time {
		if watch.Load() {
			nows <- struct{}{}
		}
		return time.Now()
	}
	attacker := clients.WithFetchAddress(context.Background(), "203.0.113.7")
	victim := clients.WithFetchAddress(context.Background(), "198.51.100.9")

	var wg sync.WaitGroup
	for i := range clients.DefaultMaxFetchesPerAddress {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = jf.Resolve(attacker, fmt.Sprintf("%s/hang/%d", srv.URL, i), false)
		}()
	}
	srv.AwaitHeld(t, clients.DefaultMaxFetchesPerAddress)

	victimURI := srv.URL + "/victim/jwks.json"
	watch.Store(true)
	attackerErr := make(chan error, 1)
	go func() {
		_, err := jf.Resolve(attacker, victimURI, false)
		attackerErr <- err
	}()
	// The attacker's Resolve: its lookup, the flight's lookup, the
	// flight's start time — then its GET waits for the address slot.
	for range 3 {
		<-nows
	}
	watch.Store(false)

	set, err := jf.Resolve(victim, victimURI, false)
	if err != nil || set == nil {
		t.Errorf("the victim's Resolve of its own jwks_uri, its address with every fetch slot free: %v, want its set"+
			" (it joined a fetch refused for the attacker's address)", err)
	}
	// The refusal is the attacker's address's own answer: its bound holds.
	if err := <-attackerErr; !clients.AddressBusy(err) {
		t.Errorf("the attacker's Resolve, its address at its bound: %v, want its address's refusal", err)
	}
	srv.Release()
	wg.Wait()
}

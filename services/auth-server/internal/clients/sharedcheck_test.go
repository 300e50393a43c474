package clients

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// hooks counts what the hasher asked of one attempt.
type hooks struct {
	reserve, refund, failed, busy atomic.Int32
}

// attempt is an Attempt of client c1 at addr whose Reserve answers
// reserve (after counting the call).
func (k *hooks) attempt(addr string, reserve func() error) *Attempt {
	return &Attempt{
		ClientID: "c1", ClientAddress: addr,
		Reserve: func() error { k.reserve.Add(1); return reserve() },
		Refund:  func() { k.refund.Add(1) },
		Failed:  func() { k.failed.Add(1) },
		Busy:    func() { k.busy.Add(1) },
	}
}

// waitSharing waits until n goroutines wait for a check in flight
// (singleflight's Do, blocked in WaitGroup.Wait): the requests that share
// it have joined.
func waitSharing(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		buf := make([]byte, 1<<22)
		waiting := 0
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "sync.(*WaitGroup).Wait") && strings.Contains(g, "singleflight.(*Group).Do") {
				waiting++
			}
		}
		if waiting >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests wait for the check in flight after 20s", waiting, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// startShared starts a check of secret for leader, whose Reserve closes
// held (its flight is then under way) and waits, then one for each of
// followers; wait returns the leader's error and the followers'.
func startShared(h *SecretHasher, stored []byte, secret string, leader *Attempt, held chan struct{}, followers []*Attempt) (wait func() (error, []error)) {
	var leaderErr error
	errs := make([]error, len(followers))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		leaderErr = h.Compare(WithAttempt(context.Background(), leader), stored, []byte(secret))
	}()
	<-held
	for i, a := range followers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = h.Compare(WithAttempt(context.Background(), a), stored, []byte(secret))
		}()
	}
	return func() (error, []error) {
		wg.Wait()
		return leaderErr, errs
	}
}

// TestIdenticalChecksShareOneCheckAndToken: requests with the same secret
// from the same address while its bcrypt check runs take its outcome —
// one check, the leader's one token (given back when the secret verifies;
// kept, and nothing more spent, when it is wrong) — and call none of their
// own hooks.
func TestIdenticalChecksShareOneCheckAndToken(t *testing.T) {
	stored, _ := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	for _, tc := range []struct {
		secret string
		want   error
	}{{"right", nil}, {"wrong", ErrSecretMismatch}} {
		h := newHasher(t, SecretHasherOptions{Key: testKey, SlowChecks: 4})
		var lead, follow hooks
		held, release := make(chan struct{}), make(chan struct{})
		leader := lead.attempt("192.0.2.1", func() error { close(held); <-release; return nil })
		var followers []*Attempt
		for range 3 {
			followers = append(followers, follow.attempt("192.0.2.1", func() error { return nil }))
		}
		wait := startShared(h, stored, tc.secret, leader, held, followers)
		waitSharing(t, 3)
		close(release)
		leaderErr, errs := wait()
		for i, err := range append([]error{leaderErr}, errs...) {
			if !errors.Is(err, tc.want) {
				t.Errorf("%s secret, request %d: %v, want %v", tc.secret, i, err, tc.want)
			}
		}
		s := h.SlowCheckStats()
		if s.Run != 1 || s.Shared != 3 {
			t.Errorf("%s secret: %d checks run, %d shared; want 1 and 3", tc.secret, s.Run, s.Shared)
		}
		wantRefund := int32(0)
		if tc.want == nil {
			wantRefund = 1
		}
		if lead.reserve.Load() != 1 || lead.refund.Load() != wantRefund || lead.failed.Load() != 0 {
			t.Errorf("%s secret, the leader's hooks: Reserve %d Refund %d Failed %d; want 1, %d, 0", tc.secret, lead.reserve.Load(), lead.refund.Load(), lead.failed.Load(), wantRefund)
		}
		if n := follow.reserve.Load() + follow.refund.Load() + follow.failed.Load() + follow.busy.Load(); n != 0 {
			t.Errorf("%s secret: the followers' hooks were called %d times, want none", tc.secret, n)
		}
	}
}

// TestSharedCheckNotRunAsksEachItsOwn: when the check in flight was not run
// (its Reserve refused it), the requests that waited for it were not
// checked: each takes its own token (its own Reserve) and is answered as
// that goes — here each has a token and is checked.
func TestSharedCheckNotRunAsksEachItsOwn(t *testing.T) {
	stored, _ := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	h := newHasher(t, SecretHasherOptions{Key: testKey, SlowChecks: 4})
	var lead, follow hooks
	held, release := make(chan struct{}), make(chan struct{})
	leader := lead.attempt("192.0.2.1", func() error { close(held); <-release; return ErrFailureBudgetUnavailable })
	var followers []*Attempt
	for range 3 {
		followers = append(followers, follow.attempt("192.0.2.1", func() error { return nil }))
	}
	wait := startShared(h, stored, "right", leader, held, followers)
	waitSharing(t, 3)
	close(release)
	leaderErr, errs := wait()
	if !errors.Is(leaderErr, ErrFailureBudgetUnavailable) || leader.Outcome() != OutcomeUnavailable {
		t.Errorf("the leader: %v (%v), want ErrFailureBudgetUnavailable", leaderErr, leader.Outcome())
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("follower %d: %v, want its own check, verified", i, err)
		}
	}
	// Each follower reserved its own token, unless it shared the check of
	// another follower that did (the three ask at once).
	if r, f := follow.reserve.Load(), follow.refund.Load(); r < 1 || r != f {
		t.Errorf("followers' Reserve %d, Refund %d: want each token taken given back", r, f)
	}
	if s := h.SlowCheckStats(); s.Run < 1 || int64(follow.reserve.Load()) != s.Run {
		t.Errorf("checks run %d, followers' tokens %d: want one token per check", s.Run, follow.reserve.Load())
	}
}

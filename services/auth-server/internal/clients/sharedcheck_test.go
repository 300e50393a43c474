package clients

import (
	"context"
	"errors"
	"net/http"
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

// waitSharing waits until n Compares of h have joined the check in flight
// and wait for its outcome (slowCheckCounters.joined, counted when
// singleflight's DoChan has returned): the requests that share it are in.
func waitSharing(t *testing.T, h *SecretHasher, n int64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for h.stats.joined.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests wait for the check in flight after a minute", h.stats.joined.Load(), n)
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
		waitSharing(t, h, 4) // the leader and its 3 followers
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
// checked: each runs a check of its own, outside any flight (slowCheck,
// not sharedCheck: they do not share it among themselves), with its own
// token (its own Reserve) — here each has a token and is checked, so
// there are three checks and three tokens, each given back.
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
	waitSharing(t, h, 4) // the leader and its 3 followers
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
	// Each follower reserved its own token for its own check, and got it
	// back (verified); the leader's refused check did not run.
	if r, f := follow.reserve.Load(), follow.refund.Load(); r != 3 || f != 3 {
		t.Errorf("followers' Reserve %d, Refund %d: want 3 and 3, each its own token, given back", r, f)
	}
	if s := h.SlowCheckStats(); s.Run != 3 || s.Shared != 0 {
		t.Errorf("checks run %d, shared %d: want 3 (one per follower) and 0", s.Run, s.Shared)
	}
}

// TestSharedCheckPanicIsRaisedInTheRequest: a check that panics (here its
// Reserve hook) panics in the goroutine of the request that asked for it,
// where net/http recovers it for that request, not in the goroutine that
// singleflight's DoChan runs the check in, which would end the process.
// The value raised is the check's own, not an error wrapping it: a recover
// sees what was raised, and net/http's http.ErrAbortHandler (abort the
// response, log nothing) keeps its meaning.
func TestSharedCheckPanicIsRaisedInTheRequest(t *testing.T) {
	stored, _ := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	errBroke := errors.New("reserve broke")
	for _, value := range []any{"reserve broke", errBroke, http.ErrAbortHandler} {
		h := newHasher(t, SecretHasherOptions{Key: testKey, SlowChecks: 4})
		var k hooks
		a := k.attempt("192.0.2.1", func() error { panic(value) })
		recovered := func() (p any) {
			defer func() { p = recover() }()
			_ = h.Compare(WithAttempt(context.Background(), a), stored, []byte("right"))
			return nil
		}()
		if recovered != value {
			t.Errorf("Compare recovered %#v, want the check's own panic value %#v raised in the request's goroutine", recovered, value)
		}
		if n := h.stats.joined.Load(); n != 0 {
			t.Fatalf("%d Compares still count as waiting for a check after it panicked, want 0", n)
		}
	}
}

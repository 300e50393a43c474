package store

import (
	"errors"
	"fmt"
	"time"
)

// A write that reaches Redis after its caller gave up on it must not
// happen. When Redis hangs, the commands already written to its socket run
// when it resumes, after their callers have answered 503 with Retry-After;
// a refresh token rotated then, or a code redeemed then, turns the
// client's retry into a reuse (a rotated refresh token past the grace
// window, a code used twice) that revokes its grant. So the scripts that
// rotate a refresh token (refreshScript, migrateScript) or redeem a code
// (redeemScript) take a bound, the time (Unix ms) after which they refuse
// to write: they compare it with Redis's clock (TIME) and, past it, change
// nothing and answer {lateStatus, Redis's time}. A 503 then means that the
// write did not happen. boundedWrite is the one policy every such call
// follows (docs/reference/oauth.md, "Refresh token rotation" and "Codes").

// lateStatus is the status a bounded script answers, with Redis's time
// (Unix ms), when it ran past its bound: nothing changed.
const lateStatus = 6

// lateSkew is how far the Redis server's clock may run ahead of the
// auth-server's before a write is refused as late: NTP keeps two hosts
// within milliseconds, and a write refused only because of the clocks is
// asked for again at once (boundedWrite).
const lateSkew = time.Second

// lateBound is the time (Unix ms, the real clock) after which a write
// asked for at start is refused as late: the longest its caller waits
// (redisx.Client.GiveUpAfter) plus lateSkew. A Redis clock that runs
// behind the auth-server's widens the window by as much.
func (s *Store) lateBound(start time.Time) int64 {
	return start.Add(s.rdb.GiveUpAfter() + lateSkew).UnixMilli()
}

// boundedWrite runs a script call that writes, run(bound), with the late
// bound (lateBound, from now) and, when its refusal (lateStatus, with
// Redis's time) reaches this caller still waiting — Redis's clock is ahead
// of this one by more than lateSkew — once more, bounded by Redis's clock:
// the time the refusal carries plus what the caller waits for the new
// call. A write refused as late is ErrUnavailable wrapping errLate; run's
// own errors are returned as they are, and so is any other status.
func (s *Store) boundedWrite(errLate error, run func(bound any) (status, redisNow int64, err error)) (int64, error) {
	start := time.Now()
	status, redisNow, err := run(s.lateBound(start))
	if err != nil || status != lateStatus {
		return status, err
	}
	if time.Since(start) >= s.rdb.GiveUpAfter() || redisNow == 0 {
		return 0, unavailable(errLate)
	}
	if status, _, err = run(redisNow + s.rdb.GiveUpAfter().Milliseconds()); err == nil && status == lateStatus {
		return 0, unavailable(errLate)
	}
	return status, err
}

// boundedAnswer reads the answer of a bounded script that has no other
// fields to return (redeemScript, migrateScript): a status alone, or
// {lateStatus, Redis's time (Unix ms)}. Any other shape is an error naming
// script.
func boundedAnswer(script string, v any) (status, redisNow int64, err error) {
	switch x := v.(type) {
	case int64:
		return x, 0, nil
	case []any:
		if len(x) == 2 {
			status, _ = x[0].(int64)
			redisNow, _ = x[1].(int64)
			return status, redisNow, nil
		}
	}
	return 0, 0, fmt.Errorf("%s: unexpected answer %v", script, v)
}

// errLateRotation: a script refused a rotation that reached Redis after
// its caller's give-up time.
var errLateRotation = errors.New("the refresh token's rotation reached Redis after its caller gave up: not rotated")

// errLateRedemption: redeemScript refused a redemption that reached Redis
// after its caller's give-up time.
var errLateRedemption = errors.New("the code's redemption reached Redis after its caller gave up: not redeemed")

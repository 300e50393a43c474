package clients

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestCompareYieldingMatchesBcrypt: compareYielding gives x/crypto's
// answer for right and wrong secrets of lengths from 0 to 100 bytes
// (bcrypt reads 72), hashes with each prefix ($2a$, $2b$, $2y$, $2$) and
// costs 4–6, and refuses what x/crypto refuses (bad version, cost,
// length, salt).
func TestCompareYieldingMatchesBcrypt(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 3, 7, 16, 31, 32, 33, 55, 64, 71, 72, 73, 80, 100} {
		secret := make([]byte, n)
		for i := range secret {
			secret[i] = byte(r.IntN(256))
		}
		cost := 4 + n%3
		h, err := bcrypt.GenerateFromPassword(secret[:min(n, 72)], cost)
		if err != nil {
			t.Fatal(err)
		}
		for _, prefix := range []string{"$2a$", "$2b$", "$2y$", "$2$"} {
			stored := append([]byte(prefix), h[4:]...)
			wrong := append(bytes.Clone(secret), 'x')
			if n > 0 {
				wrong = bytes.Clone(secret)
				wrong[r.IntN(min(n, 72))] ^= 1 << r.IntN(8)
			}
			for _, s := range [][]byte{secret, wrong, secret[:n/2]} {
				want := bcrypt.CompareHashAndPassword(stored, s)
				got := compareYielding(stored, s)
				if (want == nil) != (got == nil) {
					t.Errorf("len %d %s cost %d: x/crypto %v, compareYielding %v", len(s), prefix, cost, want, got)
				}
			}
			if compareYielding(stored, secret) != nil {
				t.Errorf("len %d %s: right secret refused", n, prefix)
			}
		}
	}
	good, _ := bcrypt.GenerateFromPassword([]byte("right"), 4)
	for _, bad := range [][]byte{
		nil, []byte("$2a$04$"), good[:58], []byte("x" + string(good[1:])), []byte("$3a" + string(good[3:])),
		[]byte("$2a$03" + string(good[6:])), []byte("$2a$32" + string(good[6:])), []byte("$2a$0x" + string(good[6:])),
		append(bytes.Clone(good[:7]), append([]byte("!!!!!!!!!!!!!!!!!!!!!!"), good[29:]...)...),
	} {
		want := bcrypt.CompareHashAndPassword(bad, []byte("right"))
		got := compareYielding(bad, []byte("right"))
		if want == nil || got == nil {
			t.Errorf("%q: x/crypto %v, compareYielding %v; want both refused", bad, want, got)
		}
	}
	if err := compareYielding(good, []byte("wrong")); !errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
		t.Errorf("wrong secret: %v", err)
	}
}

// TestCompareYieldingGivesTurns: on one P, a goroutine that is always
// runnable gets a turn at each of a check's yields — at least one per
// yieldRounds rounds — where x/crypto's bcrypt gives it one only at each
// preemption (every 10 ms: one or two during a cost-8 check).
func TestCompareYieldingGivesTurns(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const cost = 8
	stored, _ := bcrypt.GenerateFromPassword([]byte("right"), cost)
	var done atomic.Bool
	var turns atomic.Int64
	spun := make(chan struct{})
	go func() {
		defer close(spun)
		for !done.Load() {
			turns.Add(1)
			runtime.Gosched()
		}
	}()
	runtime.Gosched() // the spinner starts
	before := turns.Load()
	err := compareYielding(stored, []byte("wrong"))
	during := turns.Load() - before
	done.Store(true)
	<-spun
	if !errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
		t.Errorf("wrong secret: %v", err)
	}
	if want := int64(1<<cost) / yieldRounds; during < want {
		t.Errorf("the other goroutine ran %d times during the check, want at least %d (one per yield)", during, want)
	}
}

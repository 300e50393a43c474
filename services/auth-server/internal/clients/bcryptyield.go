package clients

import (
	"crypto/subtle"
	"encoding/base64"
	"runtime"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/blowfish"
)

// SlowCheckYield makes bcrypt checks yield to the Go scheduler
// (compareYielding); false runs x/crypto's bcrypt.CompareHashAndPassword,
// which does not. For benchmarks (BenchmarkTokenEndpointFlood's A/B);
// set before the hasher is used.
var SlowCheckYield = true

// yieldRounds is how many of bcrypt's expensive key-schedule rounds run
// between two turns given to the Go scheduler: 8 rounds are ~0.5 ms at
// cost 10 on this project's development machine (~57 µs a round).
const yieldRounds = 8

// bcryptEncoding is bcrypt's base64 alphabet, without padding.
var bcryptEncoding = base64.NewEncoding("./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789").WithPadding(base64.NoPadding)

// compareYielding is bcrypt.CompareHashAndPassword with a turn given to
// the Go scheduler (runtime.Gosched) every yieldRounds rounds of the
// expensive key schedule. A bcrypt check never blocks: it holds its P
// for its whole 60–230 ms, and the runtime takes the P back only every
// 10 ms (asynchronous preemption); a request goroutine that became
// runnable meanwhile waits. A yielding check puts itself behind the
// goroutines already queued every ~0.5 ms (docs/reference/oauth.md, "Why
// half the CPUs"). It computes what x/crypto/bcrypt computes — hash
// parsing and validation are x/crypto's (bcrypt.Cost), the key schedule
// is its algorithm with blowfish's exported steps — and compares the
// whole hash in constant time; TestCompareYieldingMatchesBcrypt checks it
// against x/crypto on every prefix, costs and key lengths past 72 bytes.
func compareYielding(stored, secret []byte) error {
	cost, err := bcrypt.Cost(stored) // validates the version, the cost and the length
	if err != nil {
		return err
	}
	n := 6 // the salt's start: after "$2$" + 2 cost digits + "$", or "$2a$…"
	if stored[2] != '$' {
		n = 7
	}
	const saltLen, hashLen = 22, 31
	if len(stored) < n+saltLen+hashLen {
		return bcrypt.ErrMismatchedHashAndPassword
	}
	salt, err := bcryptEncoding.DecodeString(string(stored[n : n+saltLen]))
	if err != nil {
		return err
	}
	// As x/crypto and the C implementations: the key with its trailing NUL.
	key := append(secret[:len(secret):len(secret)], 0)
	c, err := blowfish.NewSaltedCipher(key, salt)
	if err != nil {
		return err
	}
	for i := uint64(1); i <= 1<<cost; i++ {
		blowfish.ExpandKey(key, c)
		blowfish.ExpandKey(salt, c)
		if i%yieldRounds == 0 {
			runtime.Gosched()
		}
	}
	// "OrpheanBeholderScryDoubt", encrypted 64 times.
	data := []byte("OrpheanBeholderScryDoubt")
	for i := 0; i < 24; i += 8 {
		for range 64 {
			c.Encrypt(data[i:i+8], data[i:i+8])
		}
	}
	// Only 23 of the 24 bytes are encoded (C bcrypt's behaviour).
	sum := bcryptEncoding.EncodeToString(data[:23])
	want := string(stored[:n+saltLen]) + sum
	if subtle.ConstantTimeCompare([]byte(want), stored[:n+saltLen+hashLen]) == 1 {
		return nil
	}
	return bcrypt.ErrMismatchedHashAndPassword
}

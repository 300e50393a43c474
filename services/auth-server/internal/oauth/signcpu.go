package oauth

import (
	"context"
	"maps"
	"runtime"
	"time"

	fjwt "github.com/ory/fosite/token/jwt"
	"github.com/prometheus/client_golang/prometheus"
)

// signingMeter counts the JWS signatures this process makes and the CPU
// time they take (tollgate_auth_signing_cpu_seconds_total): the thread CPU
// time of the goroutine signing, locked to its thread for the length of the
// signature (claims encoding and JWS). It is the signing budget's figure as
// the server pays it — under the same load, on the same cores, in the same
// process as everything else it does — which the token-endpoint benchmark
// divides by the process's CPU time (docs/benchmarks/auth-server.md). The
// measurement costs two clock_gettime calls per signature (~1 µs against
// ~1,000 µs of RS256); where the thread CPU clock is not available
// (threadCPU reports false) only signatures are counted.
type signingMeter struct {
	cpu   *prometheus.CounterVec
	count *prometheus.CounterVec
}

func newSigningMeter() *signingMeter {
	return &signingMeter{
		cpu: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_auth_signing_cpu_seconds_total",
			Help: "CPU time (thread CPU clock) spent making JWS signatures — access and ID tokens, claims encoding included — by algorithm and token.",
		}, []string{"alg", "token"}),
		count: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_auth_signatures_total",
			Help: "JWS signatures made, by algorithm and token (access_token, id_token).",
		}, []string{"alg", "token"}),
	}
}

// sign runs f, the making of one signature, and counts its CPU time.
func (m *signingMeter) sign(alg, token string, f func() error) error {
	if m == nil {
		return f()
	}
	cpu, ok, err := onOwnThread(f)
	if err != nil {
		return err
	}
	m.count.WithLabelValues(alg, token).Inc()
	if ok {
		m.cpu.WithLabelValues(alg, token).Add(cpu.Seconds())
	}
	return nil
}

// Locking and unlocking the goroutine's thread (a test counts them).
var lockThread, unlockThread = runtime.LockOSThread, runtime.UnlockOSThread

// onOwnThread runs f locked to its thread and reports the thread CPU time
// it took (ok false: no thread CPU clock). The thread is unlocked however
// f ends: a signer that panics (net/http recovers and serves on) would
// otherwise leave the connection's goroutine locked, and its thread is
// killed when that goroutine exits.
func onOwnThread(f func() error) (cpu time.Duration, ok bool, err error) {
	lockThread()
	defer unlockThread()
	t0, ok := threadCPU()
	err = f()
	t1, _ := threadCPU()
	return t1 - t0, ok, err
}

// timedSigner is fosite's ID-token signer, measured. With lifespan set,
// an ID token's exp is its iat plus lifespan (ID_TOKEN_TTL): fosite reads
// the clock once for exp and again for iat, and exp - iat was one second
// short when a second began between the two (OpenID Connect Core §2).
type timedSigner struct {
	fjwt.Signer
	m        *signingMeter
	alg      string
	gate     *signGate
	lifespan time.Duration
}

// noAuthTimeClaim marks (in the session's extra claims) an ID token whose
// upstream sign-in came without auth_time: fosite fills a missing auth_time
// with the time of signing, which would claim an authentication that did
// not happen then, so the signer drops auth_time and the marker. (A
// request with max_age or prompt=login never gets this far without an
// auth_time: Server.callback answers login_required.)
const noAuthTimeClaim = "tollgate_no_auth_time"

func (s timedSigner) Generate(ctx context.Context, claims fjwt.MapClaims, header fjwt.Mapper) (tok, sig string, err error) {
	if iat, ok := claims["iat"].(int64); ok && s.lifespan > 0 {
		claims["exp"] = iat + int64(s.lifespan/time.Second)
	}
	if v, ok := claims[noAuthTimeClaim]; ok {
		delete(claims, noAuthTimeClaim)
		if v == true {
			delete(claims, "auth_time")
		}
	}
	if err := s.gate.enter(ctx); err != nil {
		return "", "", err
	}
	defer s.gate.exit(ctx) // also when the signer panics (net/http recovers)
	err = s.m.sign(s.alg, "id_token", func() error {
		tok, sig, err = s.Signer.Generate(ctx, claims, signingKeyID{header})
		return err
	})
	return tok, sig, err
}

// signingKeyID is an ID token's header without a kid of its own, so that
// the header names the key that signs it (go-jose sets kid from the
// signing JSON Web Key). A session carries the header it was given at the
// authorization, and until this type the authorization put the kid active
// then in it; fosite's header values override the signer's, so after
// a key rotation (docs/operations/key-rotation.md, step 3) a refreshed ID
// token said kid=old while the new key signed it, and no relying party
// could verify it (RFC 7515 §4.1.4: kid names the key that secured the
// JWS).
type signingKeyID struct{ fjwt.Mapper }

func (h signingKeyID) ToMap() map[string]any {
	m := h.Mapper.ToMap()
	if _, ok := m["kid"]; ok {
		m = maps.Clone(m)
		delete(m, "kid")
	}
	return m
}

package server_test

import (
	"net/http"
	"testing"

	"github.com/tollgate/tollgate/services/platform/tokens"
)

// BenchmarkTokenAuthorizationCode measures the token endpoint redeeming a
// code (client_secret_basic, PKCE, ID token, Redis writes). The browser
// login that produces each code is outside the timer.
func BenchmarkTokenAuthorizationCode(b *testing.B) {
	f := startFleet(b, map[string]string{"LOG_LEVEL": "warn"})
	c := f.Clients["local-test"]
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		a := newAuthRequest(c)
		code := f.authorize(a)
		b.StartTimer()
		if tr := f.exchange(c, a, code); tr.Status != http.StatusOK {
			b.Fatalf("token: %d %s", tr.Status, tr.Error)
		}
	}
}

// BenchmarkTokenRefresh measures a refresh grant with rotation.
func BenchmarkTokenRefresh(b *testing.B) {
	f := startFleet(b, map[string]string{"LOG_LEVEL": "warn"})
	c := f.Clients["local-test"]
	rt := f.fullFlow(c, newAuthRequest(c)).RefreshToken
	b.ReportAllocs()
	for b.Loop() {
		tr := f.refresh(c, rt)
		if tr.Status != http.StatusOK {
			b.Fatalf("refresh: %d %s", tr.Status, tr.Error)
		}
		rt = tr.RefreshToken
	}
}

// BenchmarkVerifyAccessToken measures the fleet verifier on a real
// auth-server token: steady state (cached), and a verifier that has the
// key set but has not seen the token (signature and claims checked).
func BenchmarkVerifyAccessToken(b *testing.B) {
	f := startFleet(b, map[string]string{"LOG_LEVEL": "warn"})
	c := f.Clients["local-test"]
	at := f.fullFlow(c, newAuthRequest(c)).AccessToken
	b.Run("cached", func(b *testing.B) {
		v := f.Verifier(c.Audience)
		ctx := ctxT(b)
		if _, err := v.Verify(ctx, at); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, at); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uncached", func(b *testing.B) {
		src := f.KeySource()
		ctx := ctxT(b)
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			v := tokens.NewVerifier(tokens.VerifierOptions{Source: src, Audiences: []string{c.Audience}})
			if err := v.Ready(ctx); err != nil { // fetch the key set outside the timer
				b.Fatal(err)
			}
			b.StartTimer()
			if _, err := v.Verify(ctx, at); err != nil {
				b.Fatal(err)
			}
		}
	})
}

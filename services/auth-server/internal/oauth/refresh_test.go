package oauth

import (
	"context"
	"testing"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
)

// TestParsedRefreshMemo: within one token request the check of a refresh
// token is remembered for that exact token only — another token, forged
// or authentic, is checked on its own.
func TestParsedRefreshMemo(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	a := &accessStrategy{hmac: compose.NewOAuth2HMACStrategy(&fosite.Config{GlobalSecret: secret}), successorKey: []byte("successor")}
	copy(a.macKey[:], secret)
	req := fosite.NewRequest()
	req.ID = "grant-1"
	ctx := withParsedRefresh(context.Background())
	tok, sig, err := a.GenerateRefreshToken(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.RefreshTokenSignature(ctx, tok); got != sig {
		t.Fatalf("signature %q, want %q", got, sig)
	}
	forged := tok[:len(tok)-2] + "AA"
	if forged == tok {
		forged = tok[:len(tok)-2] + "BB"
	}
	for range 2 {
		if got := a.RefreshTokenSignature(ctx, forged); got != "" {
			t.Fatalf("forged token after an authentic one: %q", got)
		}
		if got := a.RefreshTokenSignature(ctx, tok); got != sig {
			t.Fatalf("authentic token after a forged one: %q", got)
		}
	}
	// Its successor within the same request is derived from it, and is
	// authentic itself.
	req.Form.Set("refresh_token", tok)
	next, nextSig, err := a.GenerateRefreshToken(ctx, req)
	if err != nil || next == tok {
		t.Fatalf("successor %q, %v", next, err)
	}
	if got := a.RefreshTokenSignature(context.Background(), next); got != nextSig {
		t.Fatalf("successor signature %q, want %q", got, nextSig)
	}
	again, _, _ := a.GenerateRefreshToken(withParsedRefresh(context.Background()), req)
	if again != next {
		t.Fatal("a refresh token has two successors")
	}
}

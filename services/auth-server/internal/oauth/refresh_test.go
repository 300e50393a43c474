package oauth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

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

// TestSuccessorMadeOnce: within one token request a refresh token's
// successor is made once — the store's intent and fosite's
// GenerateRefreshToken both ask for it, and each making is two HMACs —
// and every later ask answers the same token and handle (a request
// without the memo, and one for another token, get theirs made).
func TestSuccessorMadeOnce(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	a := &accessStrategy{hmac: compose.NewOAuth2HMACStrategy(&fosite.Config{GlobalSecret: secret}), successorKey: []byte("successor")}
	copy(a.macKey[:], secret)
	req := fosite.NewRequest()
	req.ID = "grant-1"
	first, _, err := a.GenerateRefreshToken(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	req.Form.Set("refresh_token", first)
	ctx := withParsedRefresh(context.Background())
	tok, handle, err := a.GenerateRefreshToken(ctx, req)
	if err != nil || tok == first {
		t.Fatalf("successor %q, %v", tok, err)
	}
	if allocs := testing.AllocsPerRun(20, func() {
		again, h, _ := a.GenerateRefreshToken(ctx, req)
		if again != tok || h != handle {
			t.Fatalf("successor %q %q, then %q %q", tok, handle, again, h)
		}
	}); allocs != 0 {
		t.Fatalf("the successor asked for again within the request: %.0f allocations, want 0 (made again)", allocs)
	}
	id, mac, ok := a.parseRefresh(ctx, first)
	if !ok {
		t.Fatal("the presented token does not parse")
	}
	if st, sh := a.successorOf(ctx, id, mac); st != tok || sh != handle {
		t.Fatalf("successorOf %q %q, GenerateRefreshToken %q %q", st, sh, tok, handle)
	}
	if st, sh := a.successor(id, mac); st != tok || sh != handle {
		t.Fatalf("made without the memo: %q %q, want %q %q", st, sh, tok, handle)
	}
	// Another token's successor in the same request is its own.
	req2 := fosite.NewRequest()
	req2.ID = "grant-1"
	req2.Form.Set("refresh_token", tok)
	next, _, err := a.GenerateRefreshToken(ctx, req2)
	if err != nil || next == tok || next == first {
		t.Fatalf("the successor's successor %q, %v", next, err)
	}
	if st, _ := a.successorOf(ctx, id, mac); st != tok {
		t.Fatalf("the first token's successor after another's: %q, want %q", st, tok)
	}
}

// TestCurrentMAC: the pooled check of a refresh token's MAC accepts
// exactly the tokens fosite's check under the current secret accepts, and
// a token under a rotated secret is still accepted (by fosite's check,
// which checkRefresh falls back to).
func TestCurrentMAC(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	old := []byte("fedcba9876543210fedcba9876543210")
	cfg := &fosite.Config{GlobalSecret: secret, RotatedGlobalSecrets: [][]byte{old}}
	a := &accessStrategy{hmac: compose.NewOAuth2HMACStrategy(cfg), successorKey: []byte("successor")}
	copy(a.macKey[:], secret)
	prev := &accessStrategy{hmac: compose.NewOAuth2HMACStrategy(&fosite.Config{GlobalSecret: old}), successorKey: []byte("successor")}
	copy(prev.macKey[:], old)
	req := fosite.NewRequest()
	req.ID = "grant-1"
	ctx := context.Background()
	tok, sig, err := a.GenerateRefreshToken(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	raw := tok[len(refreshPrefix):]
	fositeOK := func(raw string) bool {
		return (&accessStrategy{hmac: compose.NewOAuth2HMACStrategy(&fosite.Config{GlobalSecret: secret})}).hmac.Enigma.Validate(ctx, raw) == nil
	}
	k, m, _ := strings.Cut(raw, ".")
	variants := []string{raw, k + "." + m + "A", k + "." + m[:len(m)-1], k + "." + m[:len(m)-1] + "B", k + "." + m[:len(m)-1] + "x",
		k + ".", "." + m, k, k + "." + m + "." + m, "AA" + k + "." + m, k[:len(k)-1] + "." + m, k + "." + m + "==", k + "." + strings.Repeat("A", 86),
		strings.ToUpper(raw), "", "."}
	for i := range len(m) {
		b := []byte(raw)
		b[len(k)+1+i] ^= 1
		variants = append(variants, string(b))
	}
	for _, v := range variants {
		if got, want := a.currentMAC(v), fositeOK(v); got != want {
			t.Errorf("currentMAC(%q) = %v, fosite's check under the current secret %v", v, got, want)
		}
	}
	if !a.currentMAC(raw) {
		t.Fatal("an authentic token is not accepted")
	}
	if got := a.RefreshTokenSignature(ctx, tok); got != sig {
		t.Fatalf("signature %q, want %q", got, sig)
	}
	// A token made under the rotated secret: not this check's, still valid.
	oldTok, oldSig, err := prev.GenerateRefreshToken(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if a.currentMAC(oldTok[len(refreshPrefix):]) {
		t.Fatal("a token under the rotated secret passed the current secret's check")
	}
	if got := a.RefreshTokenSignature(ctx, oldTok); got != oldSig {
		t.Fatalf("token under the rotated secret: signature %q, want %q", got, oldSig)
	}
	// Without a key the check accepts nothing.
	if (&accessStrategy{}).currentMAC(raw) {
		t.Fatal("accepted without a key")
	}
}

// TestValidateRefreshToken: ValidateRefreshToken (the memoised check)
// accepts and refuses exactly what fosite's ValidateRefreshToken does —
// tokens under the current and the rotated secret, altered ones, another
// kind of token, an expired refresh token (fosite.ErrTokenExpired) —
// within one token request (withParsedRefresh) and without one.
func TestValidateRefreshToken(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	old := []byte("fedcba9876543210fedcba9876543210")
	a := &accessStrategy{hmac: compose.NewOAuth2HMACStrategy(&fosite.Config{GlobalSecret: secret, RotatedGlobalSecrets: [][]byte{old}}), successorKey: []byte("successor")}
	copy(a.macKey[:], secret)
	prev := &accessStrategy{hmac: compose.NewOAuth2HMACStrategy(&fosite.Config{GlobalSecret: old}), successorKey: []byte("successor")}
	copy(prev.macKey[:], old)
	req := fosite.NewRequest()
	req.ID = "grant-1"
	tok, _, err := a.GenerateRefreshToken(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	oldTok, _, err := prev.GenerateRefreshToken(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	code, _, err := a.GenerateAuthorizeCode(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	tokens := []string{tok, oldTok, tok[:len(tok)-1] + "A", tok[:len(tok)-1] + "B", tok + "A", strings.TrimPrefix(tok, refreshPrefix),
		"ory_at_" + strings.TrimPrefix(tok, refreshPrefix), code, refreshPrefix, "", "ory_rt_.", refreshPrefix + "x.y"}
	now := time.Now().UTC()
	for _, exp := range []time.Time{{}, now.Add(time.Hour), now.Add(-time.Second)} {
		r := fosite.NewRequest()
		r.Session = NewSession()
		if !exp.IsZero() {
			r.Session.SetExpiresAt(fosite.RefreshToken, exp)
		}
		for _, v := range tokens {
			want := a.hmac.ValidateRefreshToken(context.Background(), r, v)
			for _, ctx := range []context.Context{context.Background(), withParsedRefresh(context.Background())} {
				a.RefreshTokenSignature(ctx, v) // as fosite asks first
				got := a.ValidateRefreshToken(ctx, r, v)
				if (got == nil) != (want == nil) || errors.Is(got, fosite.ErrTokenExpired) != errors.Is(want, fosite.ErrTokenExpired) {
					t.Errorf("expiry %v, token %q: %v, fosite's check %v", exp, v, got, want)
				}
			}
		}
	}
	req.Session = NewSession()
	if err := a.ValidateRefreshToken(context.Background(), req, tok); err != nil {
		t.Fatalf("an authentic token: %v", err)
	}
}

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

// TestValidateAuthorizeCode: the code check answers as fosite's
// (HMACSHAStrategy.ValidateAuthorizeCode) for codes under the current and
// a rotated secret, altered and malformed codes and other kinds of token,
// with the code's expiry in the session (past, future) or not (then the
// request's time plus the code lifespan, recent or past).
func TestValidateAuthorizeCode(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	old := []byte("fedcba9876543210fedcba9876543210")
	cfg := &fosite.Config{GlobalSecret: secret, RotatedGlobalSecrets: [][]byte{old}, AuthorizeCodeLifespan: 10 * time.Minute}
	a := &accessStrategy{hmac: compose.NewOAuth2HMACStrategy(cfg)}
	copy(a.macKey[:], secret)
	prev := &accessStrategy{hmac: compose.NewOAuth2HMACStrategy(&fosite.Config{GlobalSecret: old})}
	copy(prev.macKey[:], old)
	unkeyed := &accessStrategy{hmac: compose.NewOAuth2HMACStrategy(cfg)} // no macKey: fosite's check only
	req := fosite.NewRequest()
	req.ID = "grant-1"
	code, _, err := a.GenerateAuthorizeCode(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	oldCode, _, err := prev.GenerateAuthorizeCode(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	refresh, _, err := a.GenerateRefreshToken(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	raw := strings.TrimPrefix(code, "ory_ac_")
	codes := []string{code, oldCode, code[:len(code)-1] + "A", code[:len(code)-1] + "B", code + "A", raw,
		"ory_rt_" + raw, refresh, "ory_ac_", "", "ory_ac_.", "ory_ac_x.y", "ory_ac_" + strings.Replace(raw, ".", "..", 1)}
	now := time.Now().UTC()
	accepted, expired := 0, 0
	for _, exp := range []time.Time{{}, now.Add(time.Hour), now.Add(-time.Second)} {
		for _, at := range []time.Time{now.Add(-time.Minute), now.Add(-time.Hour)} {
			r := fosite.NewRequest()
			r.RequestedAt = at
			r.Session = NewSession()
			if !exp.IsZero() {
				r.Session.SetExpiresAt(fosite.AuthorizeCode, exp)
			}
			for _, c := range codes {
				want := a.hmac.ValidateAuthorizeCode(context.Background(), r, c)
				for _, s := range []*accessStrategy{a, unkeyed} {
					got := s.ValidateAuthorizeCode(context.Background(), r, c)
					if (got == nil) != (want == nil) || errors.Is(got, fosite.ErrTokenExpired) != errors.Is(want, fosite.ErrTokenExpired) ||
						errors.Is(got, fosite.ErrTokenSignatureMismatch) != errors.Is(want, fosite.ErrTokenSignatureMismatch) {
						t.Errorf("expiry %v, requested %v, code %q: %v, fosite's check %v", exp, at, c, got, want)
					}
					if want != nil && got != nil && fosite.ErrorToRFC6749Error(got).HintField != fosite.ErrorToRFC6749Error(want).HintField {
						t.Errorf("expiry %v, code %q: hint %q, fosite's %q", exp, c, fosite.ErrorToRFC6749Error(got).HintField, fosite.ErrorToRFC6749Error(want).HintField)
					}
				}
				if want == nil {
					accepted++
				} else if errors.Is(want, fosite.ErrTokenExpired) {
					expired++
				}
			}
		}
	}
	if accepted == 0 || expired == 0 {
		t.Fatalf("the cases cover %d accepted and %d expired codes: both must occur", accepted, expired)
	}
}

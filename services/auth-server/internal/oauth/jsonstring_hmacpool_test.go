package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
)

// appendJSONString's one-lookup-per-byte table (jsonPlain) writes every
// byte value as encoding/json does: alone, between plain bytes, and as
// the string's first and last byte — the random alphabet of
// TestWriteAccessResponseAsFosite leaves most byte values out (invalid
// UTF-8 bytes, the apostrophe, '+', '/', '=', DEL, …).
func TestAppendJSONStringEveryByte(t *testing.T) {
	for b := range 256 {
		c := string([]byte{byte(b)})
		for _, s := range []string{c, "a" + c + "z", c + "token", "token" + c, strings.Repeat(c, 3)} {
			want, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			got, err := appendJSONString([]byte("x"), s)
			if err != nil || string(got) != "x"+string(want) {
				t.Fatalf("byte %#x in %q: %s (%v), encoding/json %s", b, s, got, err, want)
			}
		}
	}
}

// TestAppendJSONStringEveryLane: appendJSONString's check of eight bytes
// at a time finds every byte value encoding/json escapes in every lane of
// a word (and in the bytes after the last whole word), next to plain
// bytes and to bytes of every other value: a carry or borrow between
// lanes neither hides one nor invents one.
func TestAppendJSONStringEveryLane(t *testing.T) {
	plain := []byte("eyJhbGciOiJSUzI1NiIsImtpZCI6Ik") // base64url, as tokens are
	for b := range 256 {
		for pos := range 19 {
			for _, next := range []byte{'A', 0x00, 0x1f, 0x20, 0x7e, 0x7f, 0x80, 0xff} {
				s := append([]byte(nil), plain[:19]...)
				s[pos] = byte(b)
				if pos+1 < len(s) {
					s[pos+1] = next
				}
				want, err := json.Marshal(string(s))
				if err != nil {
					t.Fatal(err)
				}
				got, err := appendJSONString(nil, string(s))
				if err != nil || string(got) != string(want) {
					t.Fatalf("byte %#x at %d before %#x: %s (%v), encoding/json %s", b, pos, next, got, err, want)
				}
			}
		}
	}
}

// The pooled HMAC state (keyedMAC) shared by concurrent code checks, code
// issuance and refresh-token issuance: every answer is the one fosite's
// own check gives (current secret, rotated secret, altered MAC, altered
// nonce — the same store handle), run under -race with 16 goroutines.
func TestValidateAuthorizeCodeConcurrent(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	old := []byte("fedcba9876543210fedcba9876543210")
	cfg := &fosite.Config{GlobalSecret: secret, RotatedGlobalSecrets: [][]byte{old}, AuthorizeCodeLifespan: 10 * time.Minute}
	a := &accessStrategy{hmac: compose.NewOAuth2HMACStrategy(cfg), successorKey: []byte("successor-key")}
	copy(a.macKey[:], secret)
	prev := &accessStrategy{hmac: compose.NewOAuth2HMACStrategy(&fosite.Config{GlobalSecret: old})}
	copy(prev.macKey[:], old)
	ctx := context.Background()

	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A request per goroutine: fosite's session initialises its
			// expiries on read (DefaultSession.GetExpiresAt).
			r := fosite.NewRequest()
			r.RequestedAt = time.Now().UTC()
			r.Session = NewSession()
			for i := range 300 {
				req := fosite.NewRequest()
				req.ID = "grant-" + string(rune('a'+g))
				var code string
				var err error
				if i%3 == 0 {
					code, _, err = prev.GenerateAuthorizeCode(ctx, req)
				} else {
					code, _, err = a.GenerateAuthorizeCode(ctx, req)
				}
				if err != nil {
					t.Error(err)
					return
				}
				if _, _, err := a.GenerateRefreshToken(ctx, req); err != nil {
					t.Error(err)
					return
				}
				k, mac, _ := strings.Cut(strings.TrimPrefix(code, "ory_ac_"), ".")
				key, _ := b64.DecodeString(k)
				key[len(key)-1] ^= byte(1 + i%255)
				alteredNonce := "ory_ac_" + b64.EncodeToString(key) + "." + mac
				alteredMAC := code[:len(code)-2] + map[bool]string{true: "AA", false: "BA"}[strings.HasSuffix(code, "AA")]
				for _, c := range []string{code, alteredNonce, alteredMAC} {
					got := a.ValidateAuthorizeCode(ctx, r, c)
					want := a.hmac.ValidateAuthorizeCode(ctx, r, c)
					if (got == nil) != (want == nil) || errors.Is(got, fosite.ErrTokenSignatureMismatch) != errors.Is(want, fosite.ErrTokenSignatureMismatch) {
						t.Errorf("code %q: %v, fosite's check %v", c, got, want)
						return
					}
					if c == code && got != nil {
						t.Errorf("a genuine code refused: %v", got)
						return
					}
					if c != code && got == nil {
						t.Errorf("an altered code accepted: %q", c)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

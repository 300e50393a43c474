package store

import (
	"encoding/base64"
	"math/rand/v2"
	"strings"
	"testing"
)

// previousCodeHandle is CodeHandle as it was before it decoded on the
// stack (main at 7352a1e).
func previousCodeHandle(code string) string {
	raw, ok := strings.CutPrefix(code, CodePrefix)
	if !ok {
		return ""
	}
	k, mac, ok := strings.Cut(raw, ".")
	if !ok || mac == "" {
		return ""
	}
	key, err := base64.RawURLEncoding.DecodeString(k)
	if err != nil || len(key) < 1 || len(key) < 1+int(key[0]) {
		return ""
	}
	id := string(key[1 : 1+int(key[0])])
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return ""
		}
	}
	if id == "" || len(id) > 128 {
		return ""
	}
	return id + "." + mac
}

// TestCodeHandle: the same handles as before for codes of every grant id
// length (0–255, so keys past the stack buffer too), ids with bytes a
// grant id may not hold (non-ASCII, invalid UTF-8, braces), length bytes
// that overrun the key, altered base64 and missing parts.
func TestCodeHandle(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := "abcXYZ019-_{}.é\xff\x00 "
	codes := []string{"", CodePrefix, CodePrefix + ".", CodePrefix + "x.", CodePrefix + ".m", "ory_rt_AAAA.m", CodePrefix + "!!!!.m", CodePrefix + "AAAA.m"}
	for i := range 4000 {
		n := rng.IntN(256)
		id := make([]byte, n)
		for j := range id {
			if rng.IntN(20) == 0 {
				id[j] = alphabet[rng.IntN(len(alphabet))]
			} else {
				id[j] = "abcdef0123456789-"[rng.IntN(17)]
			}
		}
		l := byte(n)
		if i%10 == 0 {
			l = byte(rng.IntN(256)) // a length byte that may overrun the key
		}
		key := append(append([]byte{l}, id...), make([]byte, rng.IntN(40))...)
		k := base64.RawURLEncoding.EncodeToString(key)
		if i%7 == 0 && len(k) > 0 {
			p := rng.IntN(len(k))
			k = k[:p] + string("A+/=.!"[rng.IntN(6)]) + k[p+1:]
		}
		codes = append(codes, CodePrefix+k+".mac"+string(rune('a'+i%26)), CodePrefix+k, CodePrefix+k+".")
	}
	valid := 0
	for _, c := range codes {
		want, got := previousCodeHandle(c), CodeHandle(c)
		if got != want {
			t.Fatalf("CodeHandle(%q) = %q, before %q", c, got, want)
		}
		if got != "" {
			valid++
		}
	}
	if valid < 300 {
		t.Fatalf("only %d of %d codes had a handle: the cases do not cover valid codes", valid, len(codes))
	}
}

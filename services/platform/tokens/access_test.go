package tokens_test

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tollgate/tollgate/services/platform/tokens"
)

// randomString draws from characters the JSON encoder treats specially
// (quotes, backslashes, HTML characters, control bytes, U+2028/2029, bytes
// that are not UTF-8, a literal U+FFFD) and plain ones.
func randomString(rng *rand.Rand) string {
	parts := []string{"a", "Z", "0", " ", "\"", "\\", "<", ">", "&", "\n", "\r", "\t", "\x00", "\x1f", "\b", "\f",
		"\u2028", "\u2029", "\xff", "\xc3", "\xe2\x80", "\ufffd", "é", "日本", "😀", "/", "+", "=", ".", "-"}
	var b strings.Builder
	for range rng.IntN(12) {
		b.WriteString(parts[rng.IntN(len(parts))])
	}
	return b.String()
}

// fill sets every field of the struct v points to at random, each left at
// its zero value one time in four; a field of a type it does not know
// fails the test, so a claim of a new type is not silently left out.
func fill(t *testing.T, rng *rand.Rand, v reflect.Value) {
	t.Helper()
	for i := range v.NumField() {
		f, sf := v.Field(i), v.Type().Field(i)
		if sf.Anonymous && f.Kind() == reflect.Struct {
			fill(t, rng, f)
			continue
		}
		if rng.IntN(4) == 0 {
			continue
		}
		switch f.Interface().(type) {
		case string:
			f.SetString(randomString(rng))
		case bool:
			f.SetBool(true)
		case int64:
			f.SetInt(rng.Int64N(1<<40) - 1<<20)
		case jwt.Audience:
			aud := make(jwt.Audience, rng.IntN(4))
			for j := range aud {
				aud[j] = randomString(rng)
			}
			f.Set(reflect.ValueOf(aud))
		case *jwt.NumericDate:
			d := jwt.NumericDate(rng.Int64N(1 << 34))
			f.Set(reflect.ValueOf(&d))
		default:
			t.Fatalf("fill: field %s of type %s is not known here: add it to the test and to tokens.accessPayload", sf.Name, sf.Type)
		}
	}
}

// SignAccessToken writes the token SignWith writes: the same string for
// RS256 (deterministic signatures), the same header and payload for
// ES256, over 3,000 random claim sets with every field of jwt.Claims and
// AccessClaims (Profile included) set or left empty.
func TestSignAccessTokenAsSignWith(t *testing.T) {
	ring := ecRing(t, "key-a", "ec-1")
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		var std jwt.Claims
		var priv tokens.AccessClaims
		fill(t, rng, reflect.ValueOf(&std).Elem())
		fill(t, rng, reflect.ValueOf(&priv).Elem())
		alg := tokens.AccessTokenAlgorithms[i%len(tokens.AccessTokenAlgorithms)]
		want, err := ring.SignWith(alg, tokens.AccessTokenType, std, priv)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ring.SignAccessToken(alg, std, priv)
		if err != nil {
			t.Fatal(err)
		}
		if alg == jose.ES256 {
			want, got = want[:strings.LastIndexByte(want, '.')], got[:strings.LastIndexByte(got, '.')]
		}
		if got != want {
			t.Fatalf("%s, claims %+v %+v:\n got %s\nwant %s", alg, std, priv, got, want)
		}
	}
}

// SignAccessToken refuses an algorithm the ring has no key for, as SignWith does.
func TestSignAccessTokenUnknownAlgorithm(t *testing.T) {
	ring := ecRing(t, "key-a", "ec-1")
	if _, err := ring.SignAccessToken(jose.HS256, jwt.Claims{}, tokens.AccessClaims{}); err == nil {
		t.Fatal("HS256 signed")
	}
}

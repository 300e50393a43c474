package oauth

import (
	"context"
	"math/rand/v2"
	"net/http/httptest"
	"testing"

	"github.com/ory/fosite"
)

// TestWriteAccessResponseAsFosite: the token response is byte for byte
// what fosite's WriteAccessResponse writes (headers, status, body), for
// token responses as the token endpoint makes them and for members with
// characters encoding/json escapes and values of other types.
func TestWriteAccessResponseAsFosite(t *testing.T) {
	alphabet := []rune("abcXYZ019-_.~ \"\\<>&\x00\x1f\x7fé€\u2028\U0001F600")
	random := func(r *rand.Rand) string {
		n := r.IntN(12)
		out := make([]rune, n)
		for i := range out {
			out[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(out)
	}
	cases := []map[string]any{
		{"expires_in": int64(900), "scope": "openid profile email", "refresh_token": "rt.abc_DEF-123",
			"id_token": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"},
		{"expires_in": int64(-1), "scope": ""},
		{"expires_in": 7, "n": 1.5, "b": true, "nil": nil, "list": []string{"a<b"}, "obj": map[string]any{"z": 1, "a": "&"}},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		m := map[string]any{}
		for range r.IntN(6) {
			m[random(r)] = random(r)
		}
		cases = append(cases, m)
	}
	for _, extra := range cases {
		resp := func() *fosite.AccessResponse {
			a := fosite.NewAccessResponse()
			a.SetAccessToken("eyJ.access." + random(r))
			a.SetTokenType("bearer")
			for k, v := range extra {
				a.SetExtra(k, v)
			}
			return a
		}()
		want, got := httptest.NewRecorder(), httptest.NewRecorder()
		(&fosite.Fosite{}).WriteAccessResponse(context.Background(), want, nil, resp)
		writeAccessResponse(got, resp)
		if got.Code != want.Code || got.Body.String() != want.Body.String() {
			t.Fatalf("extra %q:\n got %d %s\nwant %d %s", extra, got.Code, got.Body, want.Code, want.Body)
		}
		for _, h := range []string{"Cache-Control", "Pragma", "Content-Type"} {
			if got.Header().Get(h) != want.Header().Get(h) || len(got.Header()) != len(want.Header()) {
				t.Fatalf("headers: got %v, want %v", got.Header(), want.Header())
			}
		}
	}
}

package server_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestAccessTokenAlgSwitch: after ACCESS_TOKEN_SIGNING_ALG changes from
// RS256 to ES256 (a restart with the same keys), an access token signed
// before still verifies at the fleet's verifiers until it expires, and
// discovery lists both algorithms, the configured one first — before, it
// listed ES256 alone, so a resource server admitting only the listed
// algorithms refused every token issued before the switch.
func TestAccessTokenAlgSwitch(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	alg := func(raw string) string {
		h, _, _ := strings.Cut(raw, ".")
		b, _ := base64.RawURLEncoding.DecodeString(h)
		var hdr struct{ Alg string }
		_ = json.Unmarshal(b, &hdr)
		return hdr.Alg
	}
	listed := func() []string {
		resp, err := http.Get(f.Base + "/.well-known/openid-configuration")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var md struct {
			Algs []string `json:"access_token_signing_alg_values_supported"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
			t.Fatal(err)
		}
		return md.Algs
	}
	before := f.fullFlow(c, newAuthRequest(c))
	if a := alg(before.AccessToken); a != "RS256" {
		t.Fatalf("access token alg %q, want RS256", a)
	}
	// dev-init's EC key is published: ES256 tokens would verify too.
	if got := listed(); !slices.Equal(got, []string{"RS256", "ES256"}) {
		t.Errorf("RS256 configured, an EC key published: discovery lists %v, want [RS256 ES256]", got)
	}

	f.restart(map[string]string{"ACCESS_TOKEN_SIGNING_ALG": "ES256"})
	after := f.fullFlow(c, newAuthRequest(c))
	if a := alg(after.AccessToken); a != "ES256" {
		t.Fatalf("access token alg %q after the switch, want ES256", a)
	}
	v := f.Verifier(c.Audience)
	for name, tok := range map[string]string{"RS256, before the switch": before.AccessToken, "ES256, after it": after.AccessToken} {
		if _, err := v.Verify(ctxT(t), tok); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if got := listed(); !slices.Equal(got, []string{"ES256", "RS256"}) {
		t.Errorf("ES256 configured: discovery lists %v, want [ES256 RS256] (tokens signed RS256 before the switch are valid)", got)
	}
}

package oauth

import (
	"testing"

	"github.com/tollgate/tollgate/services/auth-server/internal/config"
)

// TestIssuerSet: which upstream issuers' grants are accepted, and which
// consents count for whom — the current issuer in its spellings, the
// previous issuers as the same users, each allowed Entra ID tenant as its
// own users, and no issuer (a record written before they were kept).
func TestIssuerSet(t *testing.T) {
	const (
		t1 = "72f988bf-86f1-41af-91ab-2d7cd011db47"
		t2 = "9188040d-6c67-4c5b-b112-36a304b66dad"
		t3 = "00000000-0000-0000-0000-000000000003"
	)
	entra := func(tenant string) string { return "https://login.microsoftonline.com/" + tenant + "/v2.0" }
	for _, tc := range []struct {
		name     string
		up       config.Upstream
		accepted []string
		refused  []string
		// same are pairs whose consents count for each other; other pairs
		// whose do not.
		same, other [][2]string
	}{
		{
			name:     "one issuer",
			up:       config.Upstream{Issuer: "https://idp.example"},
			accepted: []string{"", "https://idp.example", "https://idp.example/"},
			refused:  []string{"https://other.example", "https://idp.example.evil", "http://idp.example", "idp.example"},
			same:     [][2]string{{"https://idp.example", "https://idp.example"}, {"https://idp.example/", "https://idp.example"}},
			other:    [][2]string{{"", "https://idp.example"}, {"https://other.example", "https://other.example"}},
		},
		{
			name:     "previous issuers",
			up:       config.Upstream{Issuer: "https://new.example/", PreviousIssuers: []string{"https://old.example", "https://accounts.google.com"}},
			accepted: []string{"https://new.example/", "https://new.example", "https://old.example", "https://old.example/", "https://accounts.google.com", "accounts.google.com"},
			refused:  []string{"https://older.example"},
			same:     [][2]string{{"https://old.example", "https://new.example/"}, {"accounts.google.com", "https://new.example/"}},
			other:    [][2]string{{"https://older.example", "https://new.example/"}},
		},
		{
			name:     "Entra tenants",
			up:       config.Upstream{Issuer: "https://login.microsoftonline.com/organizations/v2.0", AllowedTenants: []string{t1, t2}},
			accepted: []string{entra(t1), entra(t2)},
			refused:  []string{entra(t3), entra("common"), "https://login.microsoftonline.com/organizations/v2.0", entra(t1) + "/"},
			same:     [][2]string{{entra(t1), entra(t1)}},
			other:    [][2]string{{entra(t1), entra(t2)}, {entra(t3), entra(t3)}},
		},
		{
			name:     "Entra any tenant",
			up:       config.Upstream{Issuer: "https://login.microsoftonline.com/common/v2.0", AllowedTenants: []string{"*"}},
			accepted: []string{entra(t3)},
			refused:  []string{entra("contoso.onmicrosoft.com")},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newIssuerSet(tc.up)
			for _, iss := range tc.accepted {
				if !s.acceptsGrant(iss) {
					t.Errorf("grant of %q refused", iss)
				}
			}
			for _, iss := range tc.refused {
				if s.acceptsGrant(iss) {
					t.Errorf("grant of %q accepted", iss)
				}
			}
			for _, p := range tc.same {
				if !s.consentCounts(p[0], p[1]) {
					t.Errorf("consent of %q does not count at %q", p[0], p[1])
				}
			}
			for _, p := range tc.other {
				if s.consentCounts(p[0], p[1]) {
					t.Errorf("consent of %q counts at %q", p[0], p[1])
				}
			}
		})
	}
	s := newIssuerSet(config.Upstream{Issuer: "https://idp.example", PreviousIssuers: []string{"https://old.example"}})
	if n := testing.AllocsPerRun(100, func() { _ = s.acceptsGrant("https://old.example/") }); n != 0 {
		t.Errorf("acceptsGrant allocates %v times", n)
	}
}

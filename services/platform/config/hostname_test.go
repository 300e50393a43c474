package config_test

import (
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/platform/config"
)

// HostName takes a DNS name (RFC 1123 §2.1) or an internationalized one
// (RFC 5891), returned in its lower-case ASCII form, and refuses anything
// else with what is wrong.
func TestHostName(t *testing.T) {
	for in, want := range map[string]string{
		"Cards.Example.com":     "cards.example.com",
		"example.com.":          "example.com.",
		"bücher.example":        "xn--bcher-kva.example",
		"xn--bcher-kva.example": "xn--bcher-kva.example",
		"localhost":             "localhost",
		"127.0.0.1":             "127.0.0.1",
	} {
		if got, err := config.HostName(in); err != nil || got != want {
			t.Errorf("HostName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, why := range map[string]string{
		"*.example.com":     "disallowed rune U+002A",
		"cards example.com": "disallowed rune U+0020",
		"a_b.example":       "disallowed rune U+005F",
		"-bad.example.com":  `invalid label "-bad"`,
		"bad-.example.com":  `invalid label "bad-"`,
		"ab--cd.example":    `invalid label "ab--cd"`,
		"xn--zz.example":    `invalid label "zz"`,
		"a..b":              "invalid label",
		"":                  "invalid label",
	} {
		if got, err := config.HostName(in); err == nil || !strings.HasPrefix(err.Error(), why) {
			t.Errorf("HostName(%q) = %q, %v; want an error starting %q", in, got, err, why)
		}
	}
}

package tokens_test

import (
	"testing"

	"github.com/tollgate/tollgate/services/platform/tokens"
)

// TestChallengeText: what RFC 6750 §3 allows in error_description passes
// unchanged; anything else is replaced, never dropped, so the length and
// the rest of the text stay.
func TestChallengeText(t *testing.T) {
	for in, want := range map[string]string{
		"access token rejected: token expired; refresh it": "access token rejected: token expired; refresh it",
		" !#[]~":              " !#[]~",
		`kid "a\b"`:           `kid 'a'b'`,
		"line\r\nInjected: 1": "line''Injected: 1",
		"tab\there":           "tab'here",
		"café":                "caf'",
		"\x7f":                "'",
		"":                    "",
	} {
		if got := tokens.ChallengeText(in); got != want {
			t.Errorf("ChallengeText(%q) = %q, want %q", in, got, want)
		}
	}
}

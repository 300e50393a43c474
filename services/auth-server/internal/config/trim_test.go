package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	pconfig "github.com/tollgate/tollgate/services/platform/config"
)

// TOKEN_HMAC_SECRET's trailing white space is dropped, from the
// environment as from _FILE (which dropped trailing newlines before), so
// the secret is the value TOKEN_HMAC_SECRETS_ROTATED's trimmed items give
// when step 2 of a rotation moves it there. The spellings it may have had
// with its trailing newline (the value as given, and every token secret
// followed by "\n" or "\r\n") are kept for the client secret keys derived
// from them; the trimmed value and the rotated secrets are not among them.
func TestTokenSecretTrimmed(t *testing.T) {
	const s = "0123456789abcdef0123456789abcdef-secret"
	const rotated = "Zyxwvutsrqponmlkjihgfedcba98765432"
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte(s+" \r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"LF", map[string]string{"TOKEN_HMAC_SECRET": s + "\n"}, []string{s + "\n", s + "\r\n"}},
		{"CRLF", map[string]string{"TOKEN_HMAC_SECRET": s + "\r\n"}, []string{s + "\r\n", s + "\n"}},
		{"spaces and LF", map[string]string{"TOKEN_HMAC_SECRET": s + " \t\n"}, []string{s + " \t\n", s + "\n", s + "\r\n"}},
		{"as is", map[string]string{"TOKEN_HMAC_SECRET": s}, []string{s + "\n", s + "\r\n"}},
		{"file", map[string]string{"TOKEN_HMAC_SECRET_FILE": file}, []string{s + " ", s + "\n", s + "\r\n"}},
		{"rotated", map[string]string{"TOKEN_HMAC_SECRET": s + "\n", "TOKEN_HMAC_SECRETS_ROTATED": rotated + "\n, " + s},
			[]string{s + "\n", s + "\r\n", rotated + "\n", rotated + "\r\n"}},
	} {
		env := base()
		for k, v := range tc.env {
			env[k] = v
		}
		c, err := Load(pconfig.MapEnv(env))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if c.TokenSecret != s {
			t.Errorf("%s: TokenSecret %q, want %q", tc.name, c.TokenSecret, s)
		}
		got := slices.Clone(c.UntrimmedTokenSecrets)
		slices.Sort(got)
		want := slices.Clone(tc.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: UntrimmedTokenSecrets %q, want %q", tc.name, got, want)
		}
	}
	env := base()
	if c, err := Load(pconfig.MapEnv(env)); err != nil || c.TokenSecret != "" || len(c.UntrimmedTokenSecrets) != 0 {
		t.Errorf("no secret: %q %q %v", c.TokenSecret, c.UntrimmedTokenSecrets, err)
	}
}

// A secret that is too short once trimmed, or only white space, is
// refused, naming the setting and not the value.
func TestTokenSecretTrimmedRefusals(t *testing.T) {
	short := "0123456789abcdef0123456789abcde" // 31 bytes
	for _, tc := range []struct{ given, want string }{
		{short + "\n", "TOKEN_HMAC_SECRET: must be at least 32 bytes (trailing white space not counted)"},
		{short + " ", "TOKEN_HMAC_SECRET: must be at least 32 bytes (trailing white space not counted)"},
		{strings.Repeat(" ", 40) + "\n", "TOKEN_HMAC_SECRET: is only white space"},
	} {
		env := base()
		env["TOKEN_HMAC_SECRET"] = tc.given
		_, err := Load(pconfig.MapEnv(env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.given, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "0123456789") {
			t.Errorf("the refusal names the secret: %v", err)
		}
	}
}

package config

import (
	"maps"
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
		c, err := loadWith(tc.env)
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
	refused(t, "TOKEN_HMAC_SECRET", short+"\n", "TOKEN_HMAC_SECRET: must be at least 32 bytes (white space around it not counted)")
	refused(t, "TOKEN_HMAC_SECRET", short+" ", "TOKEN_HMAC_SECRET: must be at least 32 bytes (white space around it not counted)")
	refused(t, "TOKEN_HMAC_SECRET", strings.Repeat(" ", 40)+"\n", "TOKEN_HMAC_SECRET: is only white space")
}

// TOKEN_HMAC_SECRET and TOKEN_HMAC_SECRETS_ROTATED are normalised by one
// rule (secretValue): a current secret with leading white space is the
// value a rotated item with it gives, so step 2 of a rotation moves the
// same secret. Its spelling without the trailing white space alone —
// what earlier releases keyed tokens and registrations with — is kept as a
// rotated secret (its 32 HMAC key bytes differ), and its spellings with
// the white space for the client secret keys.
func TestTokenSecretLeadingWhiteSpace(t *testing.T) {
	const s = "0123456789abcdef0123456789abcdef-secret"
	const next = "Zyxwvutsrqponmlkjihgfedcba98765432"
	for _, tc := range []struct {
		name              string
		env               map[string]string
		current           string
		rotated, spelling []string
	}{
		{"current", map[string]string{"TOKEN_HMAC_SECRET": " \t" + s + "\n"}, s,
			[]string{" \t" + s}, []string{" \t" + s + "\n", " \t" + s + "\r\n", s + "\n", s + "\r\n"}},
		{"moved to the rotated list", map[string]string{"TOKEN_HMAC_SECRET": next, "TOKEN_HMAC_SECRETS_ROTATED": " \t" + s + "\n"}, next,
			[]string{s}, []string{next + "\n", next + "\r\n", s + "\n", s + "\r\n"}},
	} {
		c, err := loadWith(tc.env)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		got := slices.Clone(c.UntrimmedTokenSecrets)
		slices.Sort(got)
		slices.Sort(tc.spelling)
		if c.TokenSecret != tc.current || !slices.Equal(c.RotatedTokenSecrets, tc.rotated) || !slices.Equal(got, tc.spelling) {
			t.Errorf("%s: TokenSecret %q, RotatedTokenSecrets %q, UntrimmedTokenSecrets %q; want %q, %q, %q",
				tc.name, c.TokenSecret, c.RotatedTokenSecrets, got, tc.current, tc.rotated, tc.spelling)
		}
	}
}

// CLIENT_SECRET_HMAC_KEY is normalised as the token secrets are: white
// space around it dropped, from the environment as from _FILE, as
// CLIENT_SECRET_HMAC_KEYS_ROTATED's items are. The spellings the keys may
// have had with it (the value as given, and every key followed by "\n" or
// "\r\n") follow the rotated keys, so registrations hashed under one
// still verify.
func TestClientSecretKeyTrimmed(t *testing.T) {
	const k = "client-key-0123456789abcdef0123456789"
	const old = "old-client-key-0123456789abcdef012345"
	file := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(file, []byte(k+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		rotated []string // the configured ones first, as given
		more    []string // then the spellings, in any order
	}{
		{"LF", map[string]string{"CLIENT_SECRET_HMAC_KEY": k + "\n"}, nil, []string{k + "\n", k + "\r\n"}},
		{"leading and trailing", map[string]string{"CLIENT_SECRET_HMAC_KEY": " " + k + " \n"}, nil, []string{" " + k + " \n", k + "\n", k + "\r\n"}},
		{"as is", map[string]string{"CLIENT_SECRET_HMAC_KEY": k}, nil, []string{k + "\n", k + "\r\n"}},
		{"file", map[string]string{"CLIENT_SECRET_HMAC_KEY_FILE": file}, nil, []string{k + "\n", k + "\r\n"}},
		{"rotated", map[string]string{"CLIENT_SECRET_HMAC_KEY": k + "\n", "CLIENT_SECRET_HMAC_KEYS_ROTATED": " " + old + "\n"},
			[]string{old}, []string{k + "\n", k + "\r\n", old + "\n", old + "\r\n"}},
	} {
		c, err := loadWith(tc.env)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if c.ClientSecretKey != k {
			t.Errorf("%s: ClientSecretKey %q, want %q", tc.name, c.ClientSecretKey, k)
		}
		n := len(tc.rotated)
		if len(c.RotatedClientSecretKeys) < n || !slices.Equal(c.RotatedClientSecretKeys[:n], tc.rotated) {
			t.Errorf("%s: RotatedClientSecretKeys %q, want %q first", tc.name, c.RotatedClientSecretKeys, tc.rotated)
			continue
		}
		got := slices.Clone(c.RotatedClientSecretKeys[n:])
		slices.Sort(got)
		slices.Sort(tc.more)
		if !slices.Equal(got, tc.more) {
			t.Errorf("%s: the spellings after the rotated keys %q, want %q", tc.name, got, tc.more)
		}
	}
	if c, err := Load(pconfig.MapEnv(base())); err != nil || c.ClientSecretKey != "" || len(c.RotatedClientSecretKeys) != 0 {
		t.Errorf("no key: %q %q %v", c.ClientSecretKey, c.RotatedClientSecretKeys, err)
	}
	short := "client-key-0123456789abcdef01234" // 32 bytes with the space below
	refused(t, "CLIENT_SECRET_HMAC_KEY", " "+short[:31]+"\n", "CLIENT_SECRET_HMAC_KEY: must be at least 32 bytes (white space around it not counted)")
	refused(t, "CLIENT_SECRET_HMAC_KEY", strings.Repeat(" ", 40)+"\r\n", "CLIENT_SECRET_HMAC_KEY: is only white space")
}

// A CLIENT_SECRET_HMAC_KEY too short once trimmed is refused under its own
// name only: the spellings it adds after the rotated keys (followed by a
// newline, as given) are as short, and naming
// CLIENT_SECRET_HMAC_KEYS_ROTATED for them would send the operator to a
// setting never set. A short item of that list is still refused.
func TestClientSecretKeyTooShortNamesOnlyItself(t *testing.T) {
	for _, given := range []string{"short-key\n", " short-key\r\n", "short-key"} {
		env := base()
		env["CLIENT_SECRET_HMAC_KEY"] = given
		_, err := Load(pconfig.MapEnv(env))
		if err == nil || !strings.Contains(err.Error(), "CLIENT_SECRET_HMAC_KEY: must be at least 32 bytes") {
			t.Errorf("%q: %v, want the key refused as too short", given, err)
			continue
		}
		if strings.Contains(err.Error(), "CLIENT_SECRET_HMAC_KEYS_ROTATED") {
			t.Errorf("%q: %v, names CLIENT_SECRET_HMAC_KEYS_ROTATED, which is not set", given, err)
		}
	}
	env := base()
	env["CLIENT_SECRET_HMAC_KEY"] = "client-key-0123456789abcdef0123456789\n"
	env["CLIENT_SECRET_HMAC_KEYS_ROTATED"] = "short-old-key"
	if _, err := Load(pconfig.MapEnv(env)); err == nil || !strings.Contains(err.Error(), "CLIENT_SECRET_HMAC_KEYS_ROTATED: every key must be at least 32 bytes") {
		t.Errorf("a short rotated key: %v, want it refused", err)
	}
}

// A CLIENT_SECRET_HMAC_KEY given with leading white space is, like
// TOKEN_HMAC_SECRET, another key once it is moved to
// CLIENT_SECRET_HMAC_KEYS_ROTATED (whose items are trimmed): its spelling
// as given verifies while it is the current key, and not after the move
// (docs/operations/key-rotation.md says so: upgrade, let the registrations
// authenticate, then rotate).
func TestClientSecretKeyLeadingWhiteSpace(t *testing.T) {
	const k = "client-key-0123456789abcdef0123456789"
	const next = "next-client-key-0123456789abcdef01234"
	env := base()
	env["CLIENT_SECRET_HMAC_KEY"] = " " + k + "\n"
	c, err := Load(pconfig.MapEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(c.RotatedClientSecretKeys, " "+k+"\n") {
		t.Errorf("current key with leading white space: spellings %q, want its value as given among them", c.RotatedClientSecretKeys)
	}
	env["CLIENT_SECRET_HMAC_KEY"] = next
	env["CLIENT_SECRET_HMAC_KEYS_ROTATED"] = " " + k + "\n"
	if c, err = Load(pconfig.MapEnv(env)); err != nil {
		t.Fatal(err)
	}
	for _, v := range c.RotatedClientSecretKeys {
		if strings.HasPrefix(v, " ") {
			t.Errorf("moved to the rotated list: spelling %q kept, want the documented caveat (none)", v)
		}
	}
	if !slices.Contains(c.RotatedClientSecretKeys, k) {
		t.Errorf("moved to the rotated list: %q, want the trimmed key", c.RotatedClientSecretKeys)
	}
}

// loadWith loads base() with env set over it.
func loadWith(env map[string]string) (Config, error) {
	e := base()
	maps.Copy(e, env)
	return Load(pconfig.MapEnv(e))
}

// refused checks that Load refuses setting = given with an error holding
// want, and that the error does not name the value (the secrets of these
// tests all hold "0123456789").
func refused(t *testing.T, setting, given, want string) {
	t.Helper()
	_, err := loadWith(map[string]string{setting: given})
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("%s %q: %v, want %q", setting, given, err, want)
		return
	}
	if strings.Contains(err.Error(), "0123456789") {
		t.Errorf("the refusal names the value of %s: %v", setting, err)
	}
}

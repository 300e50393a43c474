package testharness

import (
	"context"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/platform/config"
)

// AddUser creates on r the ACL user name (ACL SETUSER name on >password
// rules…; again after a restart: the test Redis keeps no ACL file) and
// returns r's Config logged in as that user. It fails the test if the
// server refuses the rules.
func (r *Redis) AddUser(t testing.TB, name, password string, rules ...string) config.Redis {
	t.Helper()
	args := []any{"ACL", "SETUSER", name, "on", ">" + password}
	for _, rule := range rules {
		args = append(args, rule)
	}
	if err := r.Client().Do(context.Background(), args...).Err(); err != nil {
		t.Fatalf("redis-server %s refuses the rules of user %s: %v", r.Addr(), name, err)
	}
	cfg := r.Config()
	cfg.URL = strings.Replace(cfg.URL, "://", "://"+name+":"+password+"@", 1)
	return cfg
}

// RestrictKeys limits what r's default user — the one services log in as
// in tests — may do with the keys under prefix to perm, a Redis 7 key
// permission ("%R": read only, "%W": write only), every other key staying
// readable and writable: a store's writes (or reads) of one kind of key
// fail with NOPERM while the rest of the service works. restore gives the
// default user every key back; it also runs when the test ends.
func (r *Redis) RestrictKeys(t testing.TB, prefix, perm string) (restore func()) {
	t.Helper()
	c := r.Client()
	args := append([]any{"ACL", "SETUSER", "default", "resetkeys"}, otherKeys(prefix)...)
	args = append(args, perm+"~"+globEscape(prefix)+"*")
	if err := c.Do(context.Background(), args...).Err(); err != nil {
		t.Fatalf("redis-server %s refuses the key rules %v: %v", r.Addr(), args[4:], err)
	}
	restore = func() {
		t.Helper()
		if err := c.Do(context.Background(), "ACL", "SETUSER", "default", "resetkeys", "~*").Err(); err != nil {
			t.Errorf("redis-server %s: giving the default user every key back: %v", r.Addr(), err)
		}
	}
	t.Cleanup(restore)
	return restore
}

// otherKeys is the key patterns of every key that does not start with
// prefix: for each position i, the keys that share its first i bytes and
// differ at the next ("~[^t]*", "~t[^o]*", … for "tollgate:"), and those
// that are its first i bytes ("~t", "~to", …). Redis ACL patterns have no
// negation; this is the way to write one.
func otherKeys(prefix string) []any {
	var out []any
	for i := range len(prefix) {
		c := prefix[i : i+1]
		if c == "]" || c == "\\" || c == "^" || c == "-" {
			c = "\\" + c
		}
		out = append(out, "~"+globEscape(prefix[:i])+"[^"+c+"]*")
		if i > 0 {
			out = append(out, "~"+globEscape(prefix[:i]))
		}
	}
	return out
}

// globEscape quotes the glob metacharacters of s (Redis's stringmatchlen).
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[]\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

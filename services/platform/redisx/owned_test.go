package redisx

import (
	"crypto/tls"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/config"
)

// TestOwnedOptionsInEveryMode: own sets every owned option the same way in
// each of go-redis's option types (a field missing or of another type in
// one of them panics here, not in a deployment of that mode), keeps the
// URL's password unless the configuration names one, and keeps the URL's
// TLS settings, raised to TLS 1.2. The inputs set every owned field to
// another value first, so a field own stops setting fails here.
func TestOwnedOptionsInEveryMode(t *testing.T) {
	tu := tuning{dial: 80 * time.Millisecond, cmd: 70 * time.Millisecond, pool: time.Second}
	want := map[string]any{
		"DialTimeout": 240 * time.Millisecond, "ReadTimeout": 70 * time.Millisecond, "WriteTimeout": 70 * time.Millisecond,
		"PoolTimeout": time.Second, "DialerRetries": 1, "PipelinePoolSize": -1, "MaxConcurrentDials": 0,
		"MinIdleConns": 0, "MaxActiveConns": 0, "MaxRetries": -1,
	}
	if len(want)+3 != len(ownedFields) { // + Password, TLSConfig, Dialer
		t.Fatalf("the test checks %d of %d owned fields", len(want)+3, len(ownedFields))
	}
	for _, cfgPassword := range []string{"", "from-config"} {
		for _, opts := range []any{
			&redis.Options{Password: "from-url", TLSConfig: &tls.Config{ServerName: "r"}, DialTimeout: time.Hour, MaxRetries: 5, PoolSize: 7, MinIdleConns: 3, MaxActiveConns: 9, MaxConcurrentDials: 4},
			&redis.FailoverOptions{Password: "from-url", TLSConfig: &tls.Config{ServerName: "r"}, DialTimeout: time.Hour, MaxRetries: 5, PoolSize: 7, MinIdleConns: 3, MaxActiveConns: 9, MaxConcurrentDials: 4},
			&redis.ClusterOptions{Password: "from-url", TLSConfig: &tls.Config{ServerName: "r"}, DialTimeout: time.Hour, MaxRetries: 5, PoolSize: 7, MinIdleConns: 3, MaxActiveConns: 9, MaxConcurrentDials: 4},
		} {
			tu.own(opts, config.Redis{Password: cfgPassword})
			v := reflect.ValueOf(opts).Elem()
			name := v.Type().Name()
			for f, w := range want {
				if got := v.FieldByName(f).Interface(); got != w {
					t.Errorf("%s.%s = %v, want %v", name, f, got, w)
				}
			}
			wantPassword := cfgPassword
			if wantPassword == "" {
				wantPassword = "from-url"
			}
			if got := v.FieldByName("Password").String(); got != wantPassword {
				t.Errorf("%s.Password = %q, want %q", name, got, wantPassword)
			}
			c := v.FieldByName("TLSConfig").Interface().(*tls.Config)
			if c == nil || c.ServerName != "r" || c.MinVersion != tls.VersionTLS12 {
				t.Errorf("%s.TLSConfig = %+v, want the URL's with TLS 1.2 at least", name, c)
			}
			if v.FieldByName("Dialer").IsNil() {
				t.Errorf("%s.Dialer not set", name)
			}
			if got := v.FieldByName("PoolSize").Int(); got != 7 {
				t.Errorf("%s.PoolSize = %d: an option New does not own was changed", name, got)
			}
		}
	}
}

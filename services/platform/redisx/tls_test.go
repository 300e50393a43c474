package redisx_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// TestTLSWithPrivateCA: a rediss:// URL verifies the server against
// REDIS_TLS_CA_FILE's CAs, and refuses it without them.
func TestTLSWithPrivateCA(t *testing.T) {
	certs, err := testharness.NewRedisTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ca := certs.CAFile
	r := testharness.StartRedisTLS(t, certs, "--requirepass", "pw-tls")
	url := "rediss://:pw-tls@" + r.Addr() + "/0"
	ctx := context.Background()

	c, err := redisx.New(config.Redis{URL: url, TLSCAFile: ca, CommandTimeout: time.Second, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping over TLS with the CA: %v", err)
	}
	untrusted, err := redisx.New(config.Redis{URL: url, CommandTimeout: time.Second, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer untrusted.Close()
	if err := untrusted.Ping(ctx); err == nil {
		t.Error("a server signed by an unknown CA was accepted")
	}
	if _, err := redisx.New(config.Redis{URL: url, TLSCAFile: filepath.Join(t.TempDir(), "missing.pem")}); err == nil {
		t.Error("a missing CA file was accepted")
	}
}

// TestTLSSentinelAndCluster: the Sentinel setup and the Cluster with every
// process serving TLS only (replication, the sentinels' links and the
// cluster bus too) are reached through the configuration a service loads
// — rediss:// in each mode's URL form with the ACL user and password,
// REDIS_TLS_CA_FILE — and refused with a certificate error under another
// CA, or over plain redis://.
func TestTLSSentinelAndCluster(t *testing.T) {
	certs, err := testharness.NewRedisTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := certs.WriteOtherCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sentinel, err := testharness.NewRedisSentinelTLS(certs)
	if err != nil {
		t.Fatal(err)
	}
	defer sentinel.Close()
	cluster, err := testharness.NewRedisClusterTLS(certs)
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	ctx := context.Background()
	for _, s := range []testharness.RedisSetup{sentinel, cluster} {
		t.Run(s.Mode(), func(t *testing.T) {
			cfg := s.Config(t)
			if !strings.HasPrefix(cfg.URL, "rediss://") || !strings.Contains(cfg.URL, testharness.RedisACLUser) {
				t.Fatalf("URL %q: want rediss:// with the ACL user", cfg.URL)
			}
			// What a service does with its environment: load, validate, connect.
			env := map[string]string{"REDIS_MODE": cfg.Mode, "REDIS_URL": cfg.URL, "REDIS_TLS_CA_FILE": cfg.TLSCAFile,
				"REDIS_KEY_PREFIX": cfg.KeyPrefix, "REDIS_COMMAND_TIMEOUT": "1s", "REDIS_DIAL_TIMEOUT": "1s"}
			loaded := config.LoadRedis(config.NewSource(config.MapEnv(env)), true)
			var p config.Problems
			loaded.Validate(&p, true)
			if err := p.Err(); err != nil {
				t.Fatalf("production validation: %v", err)
			}
			c, err := redisx.New(loaded)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for i := range 20 { // spread over the cluster's masters
				k := c.Key("tls", strconv.Itoa(i))
				if err := c.Set(ctx, k, "v", time.Minute).Err(); err != nil {
					t.Fatalf("SET over TLS: %v", err)
				}
				if v, err := c.Get(ctx, k).Result(); err != nil || v != "v" {
					t.Fatalf("GET over TLS: %q %v", v, err)
				}
			}

			// Another CA: the handshake fails on the certificate, and says so.
			wrong := loaded
			wrong.TLSCAFile = otherCA
			wc, err := redisx.New(wrong)
			if err != nil {
				t.Fatal(err)
			}
			defer wc.Close()
			if err := wc.Ping(ctx); err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
				t.Errorf("ping with another CA: %v, want a certificate error", err)
			}
			// Plain redis:// to TLS-only nodes: refused, nothing served.
			plain := loaded
			plain.URL, plain.TLSCAFile = "redis"+strings.TrimPrefix(loaded.URL, "rediss"), ""
			pc, err := redisx.New(plain)
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			if err := pc.Ping(ctx); err == nil {
				t.Error("a plain-text client was served by TLS-only nodes")
			}
		})
	}
}

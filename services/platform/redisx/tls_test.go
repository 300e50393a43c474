package redisx_test

import (
	"context"
	"path/filepath"
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

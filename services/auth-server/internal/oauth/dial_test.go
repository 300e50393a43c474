package oauth

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/auth-server/internal/config"
	"github.com/tollgate/tollgate/services/dev-idp/idptest"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// TestUpstreamDialAddr: with UPSTREAM_DIAL_ADDR, discovery reaches an
// issuer whose host does not resolve from the auth-server (as the dev IdP's
// http://localhost:4500 from inside a cluster), while the issuer identifier
// and its checks stay the browser's URL. Without it, the same issuer is
// unreachable.
func TestUpstreamDialAddr(t *testing.T) {
	ln := testharness.Listener(t)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	issuer := "http://dev-idp.tollgate.invalid:" + port
	idp := idptest.Start(t, idptest.Options{
		PublicIssuerURL: "http://127.0.0.1:1",
		Env:             map[string]string{"DEVIDP_ISSUER_URL": issuer},
		Listener:        ln,
	})
	cfg := config.Upstream{Issuer: issuer, ClientID: "tollgate", ClientSecret: idp.ClientSecret, Scopes: []string{"openid"}}
	observe := func(string, time.Time, error) {}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if err := NewUpstream(cfg, "http://127.0.0.1:1/oauth/callback", nil, observe).Ready(ctx); err == nil {
		t.Fatal("an issuer that does not resolve was reached without UPSTREAM_DIAL_ADDR")
	}
	cfg.DialAddr = "127.0.0.1:" + port
	u := NewUpstream(cfg, "http://127.0.0.1:1/oauth/callback", nil, observe)
	if err := u.Ready(ctx); err != nil {
		t.Fatalf("discovery through UPSTREAM_DIAL_ADDR: %v", err)
	}
	auth, err := u.AuthURL(ctx, "state-123456", "nonce-123456", "verifier-0123456789012345678901234567890123456789", Freshness{})
	if err != nil || !strings.HasPrefix(auth, issuer+"/") {
		t.Errorf("authorization URL %q (%v) must stay on the issuer the browser uses", auth, err)
	}
}

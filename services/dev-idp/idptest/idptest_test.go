package idptest_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/dev-idp/idptest"
)

func TestStart(t *testing.T) {
	p := idptest.Start(t, idptest.Options{PublicIssuerURL: "http://127.0.0.1:1"})
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(p.Issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		Issuer string `json:"issuer"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || d.Issuer != p.Issuer {
		t.Errorf("discovery: status %d issuer %q, want %q", resp.StatusCode, d.Issuer, p.Issuer)
	}
	if p.ClientSecret == "" {
		t.Error("no client secret")
	}
}

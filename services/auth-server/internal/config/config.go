// Package config is the auth-server's configuration.
package config

import (
	"github.com/tollgate/tollgate/services/platform/config"
)

// Config is everything the auth-server reads at start-up.
type Config struct {
	config.Common
	HTTPAddr string // public OAuth/OIDC endpoints (HTTP_ADDR)
	GRPCAddr string // fleet API: key set (GRPC_ADDR)
	// Issuer is the public issuer identifier (PUBLIC_ISSUER_URL).
	Issuer string
	// SigningKeysDir holds <kid>.pem RSA keys (SIGNING_KEYS_DIR);
	// SigningKeyActive names the key that signs (SIGNING_KEY_ACTIVE).
	SigningKeysDir   string
	SigningKeyActive string
	// ClientsFile is the static client registry (CLIENTS_FILE).
	ClientsFile string
	Redis       config.Redis
}

// Load reads the configuration and returns it with every problem found.
func Load(getenv func(string) string) (Config, error) {
	s := config.NewSource(getenv)
	c := Config{Common: config.LoadCommon(s, "auth-server")}
	c.HTTPAddr = s.String("HTTP_ADDR", ":8080")
	c.GRPCAddr = s.String("GRPC_ADDR", ":9090")
	c.Issuer = s.String("PUBLIC_ISSUER_URL", "")
	c.SigningKeysDir = s.String("SIGNING_KEYS_DIR", "")
	c.SigningKeyActive = s.String("SIGNING_KEY_ACTIVE", "")
	c.ClientsFile = s.String("CLIENTS_FILE", "")
	c.Redis = config.LoadRedis(s, c.Production())
	p := s.Problems()
	c.Validate(&p)
	return c, p.Err()
}

// Validate adds every problem of c to p.
func (c *Config) Validate(p *config.Problems) {
	c.Common.Validate(p)
	c.Issuer = config.PublicURL(p, "PUBLIC_ISSUER_URL", c.Issuer, c.Production())
	if c.SigningKeysDir == "" {
		p.Addf("SIGNING_KEYS_DIR: required (directory of <kid>.pem RSA keys)")
	}
	if c.ClientsFile == "" && c.Production() {
		p.Addf("CLIENTS_FILE: required in production (the static client registry)")
	}
	c.Redis.Validate(p, c.Production())
}

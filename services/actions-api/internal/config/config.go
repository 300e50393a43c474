// Package config is the actions-api's configuration.
package config

import (
	"github.com/tollgate/tollgate/services/platform/config"
)

// Config is everything the actions-api reads at start-up.
type Config struct {
	config.Common
	HTTPAddr string // public REST API (HTTP_ADDR)
	// PublicURL is the Actions origin published in the OpenAPI servers list (ACTIONS_PUBLIC_URL).
	PublicURL string
	// Audience is the aud every token must carry (ACTIONS_AUDIENCE).
	Audience string
	// Issuer is the OAuth issuer whose authorize/token URLs the OpenAPI names (PUBLIC_ISSUER_URL).
	Issuer       string
	AuthGRPCAddr string // AUTH_GRPC_ADDR
	CoreGRPCAddr string // CORE_GRPC_ADDR
	Redis        config.Redis
}

// Load reads the configuration and returns it with every problem found.
func Load(getenv func(string) string) (Config, error) {
	s := config.NewSource(getenv)
	c := Config{Common: config.LoadCommon(s, "actions-api")}
	c.HTTPAddr = s.String("HTTP_ADDR", ":8080")
	c.PublicURL = s.String("ACTIONS_PUBLIC_URL", "")
	c.Audience = s.String("ACTIONS_AUDIENCE", "")
	c.Issuer = s.String("PUBLIC_ISSUER_URL", "")
	c.AuthGRPCAddr = s.String("AUTH_GRPC_ADDR", "")
	c.CoreGRPCAddr = s.String("CORE_GRPC_ADDR", "")
	c.Redis = config.LoadRedis(s, c.Production())
	p := s.Problems()
	c.Validate(&p)
	return c, p.Err()
}

// Validate adds every problem of c to p.
func (c *Config) Validate(p *config.Problems) {
	c.Common.Validate(p)
	c.PublicURL = config.PublicURL(p, "ACTIONS_PUBLIC_URL", c.PublicURL, c.Production())
	c.Audience = config.PublicURL(p, "ACTIONS_AUDIENCE", c.Audience, c.Production())
	c.Issuer = config.PublicURL(p, "PUBLIC_ISSUER_URL", c.Issuer, c.Production())
	if c.AuthGRPCAddr == "" {
		p.Addf("AUTH_GRPC_ADDR: required (the auth-server's gRPC address, for signing keys)")
	}
	if c.CoreGRPCAddr == "" {
		p.Addf("CORE_GRPC_ADDR: required (capability-core's gRPC address)")
	}
	c.Redis.Validate(p, c.Production())
}

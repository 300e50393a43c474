// Package config is the mcp-gateway's configuration.
package config

import (
	"github.com/tollgate/tollgate/services/platform/config"
)

// Config is everything the mcp-gateway reads at start-up.
type Config struct {
	config.Common
	HTTPAddr string // public MCP endpoints (HTTP_ADDR)
	// Resource is the canonical MCP resource URL, the aud of every token (MCP_RESOURCE_URL).
	Resource string
	// Issuer is the authorization server named in protected resource metadata (PUBLIC_ISSUER_URL).
	Issuer       string
	AuthGRPCAddr string // AUTH_GRPC_ADDR
	CoreGRPCAddr string // CORE_GRPC_ADDR
	Redis        config.Redis
}

// Load reads the configuration and returns it with every problem found.
func Load(getenv func(string) string) (Config, error) {
	s := config.NewSource(getenv)
	c := Config{Common: config.LoadCommon(s, "mcp-gateway")}
	c.HTTPAddr = s.String("HTTP_ADDR", ":8080")
	c.Resource = s.String("MCP_RESOURCE_URL", "")
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
	c.Resource = config.PublicURL(p, "MCP_RESOURCE_URL", c.Resource, c.Production())
	c.Issuer = config.PublicURL(p, "PUBLIC_ISSUER_URL", c.Issuer, c.Production())
	if c.AuthGRPCAddr == "" {
		p.Addf("AUTH_GRPC_ADDR: required (the auth-server's gRPC address, for signing keys)")
	}
	if c.CoreGRPCAddr == "" {
		p.Addf("CORE_GRPC_ADDR: required (capability-core's gRPC address)")
	}
	c.Redis.Validate(p, c.Production())
}

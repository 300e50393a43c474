// Package config is the example backend's configuration: the same
// variables as capability-core, because it verifies callers the same way.
package config

import (
	"github.com/tollgate/tollgate/services/platform/config"
)

// Config is everything the example backend reads at start-up.
type Config struct {
	config.Common
	// GRPCAddr is where NotesService, reflection and health listen (GRPC_ADDR, default :9090).
	GRPCAddr string
	// AuthGRPCAddr is the auth-server's gRPC address, for the keys that
	// sign access tokens (AUTH_GRPC_ADDR).
	AuthGRPCAddr string
	// Audiences accepted on forwarded access tokens: the MCP resource and
	// the Actions audience (MCP_RESOURCE_URL, ACTIONS_AUDIENCE).
	MCPResource     string
	ActionsAudience string
	// Redis is optional outside production: when set, tokens of revoked
	// grants are refused within a second, as in capability-core. The notes
	// themselves stay in memory.
	Redis config.Redis
	// Revocation is how revoked grants are followed (REVOCATION_RECONCILE_INTERVAL).
	Revocation config.Revocation
}

// Load reads the configuration and returns it with every problem found.
func Load(getenv func(string) string) (Config, error) {
	s := config.NewSource(getenv)
	c := Config{Common: config.LoadCommon(s, "example-backend")}
	c.GRPCAddr = s.String("GRPC_ADDR", ":9090")
	c.AuthGRPCAddr = s.String("AUTH_GRPC_ADDR", "")
	c.MCPResource = s.String("MCP_RESOURCE_URL", "")
	c.ActionsAudience = s.String("ACTIONS_AUDIENCE", "")
	c.Redis = config.LoadRedis(s, c.Production())
	c.Revocation = config.LoadRevocation(s)
	p := s.Problems()
	c.Validate(&p)
	return c, p.Err()
}

// Validate adds every problem of c to p.
func (c *Config) Validate(p *config.Problems) {
	c.Common.Validate(p)
	if c.GRPCAddr == "" {
		p.Addf("GRPC_ADDR: required")
	}
	if c.AuthGRPCAddr == "" {
		p.Addf("AUTH_GRPC_ADDR: required (the auth-server's gRPC address, for signing keys)")
	}
	c.MCPResource = config.PublicURL(p, "MCP_RESOURCE_URL", c.MCPResource, c.Production())
	c.ActionsAudience = config.PublicURL(p, "ACTIONS_AUDIENCE", c.ActionsAudience, c.Production())
	if c.Redis.URL != "" || c.Production() {
		c.Redis.Validate(p, c.Production())
	}
	c.Revocation.Validate(p)
}

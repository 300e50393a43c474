// Package config is the example backend's configuration: the same
// variables as capability-core, because it verifies callers the same way.
package config

import (
	"crypto/tls"
	"crypto/x509"
	"os"

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
	// TLS, when set, is what the gRPC listener serves: its certificate
	// (GRPC_TLS_CERT_FILE, GRPC_TLS_KEY_FILE) and, with
	// GRPC_TLS_CLIENT_CA_FILE, mutual TLS — only clients with a certificate
	// signed by that CA (the connectors, with CAPABILITY_BACKEND_<NAME>_TLS_*)
	// get through. nil: plaintext.
	TLS *tls.Config
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
	certFile, keyFile, caFile := s.String("GRPC_TLS_CERT_FILE", ""), s.String("GRPC_TLS_KEY_FILE", ""), s.String("GRPC_TLS_CLIENT_CA_FILE", "")
	p := s.Problems()
	c.TLS = loadTLS(&p, certFile, keyFile, caFile)
	c.Validate(&p)
	return c, p.Err()
}

// loadTLS reads the listener's certificate and the client CA, adding every
// problem to p.
func loadTLS(p *config.Problems, certFile, keyFile, caFile string) *tls.Config {
	switch {
	case certFile == "" && keyFile == "":
		if caFile != "" {
			p.Addf("GRPC_TLS_CLIENT_CA_FILE: needs GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE (mutual TLS is TLS first)")
		}
		return nil
	case certFile == "" || keyFile == "":
		p.Addf("GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE: set both or neither")
		return nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		p.Addf("GRPC_TLS_CERT_FILE, GRPC_TLS_KEY_FILE: %v", err)
	} else {
		cfg.Certificates = []tls.Certificate{cert}
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		pool := x509.NewCertPool()
		switch {
		case err != nil:
			p.Addf("GRPC_TLS_CLIENT_CA_FILE: %v", err)
		case !pool.AppendCertsFromPEM(pem):
			p.Addf("GRPC_TLS_CLIENT_CA_FILE: %s holds no PEM certificate", caFile)
		default:
			cfg.ClientCAs = pool
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return cfg
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

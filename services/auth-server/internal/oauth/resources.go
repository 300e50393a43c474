package oauth

import (
	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
	platformconfig "github.com/tollgate/tollgate/services/platform/config"
)

// canonicalResource maps a requested RFC 8707 resource onto the resource a
// token is issued for. The MCP server has two identifiers: its canonical
// resource (MCP_RESOURCE_URL, the Streamable HTTP endpoint) and the URL of
// its legacy HTTP+SSE endpoint, which the gateway publishes protected
// resource metadata for (RFC 9728 §3.3: a legacy client starting at /sse
// accepts only metadata naming /sse, and then asks for that resource). A
// request for the SSE identifier is a request for the MCP resource: the
// code, consent and token are for MCP_RESOURCE_URL, which the gateway
// accepts on both endpoints. Any other value is returned unchanged, and the
// client's own list of resources decides as before.
func (s *Server) canonicalResource(requested string) string {
	if s.cfg.MCPResource == "" {
		return requested
	}
	sse := platformconfig.LegacySSEResource(s.cfg.MCPResource)
	if canon, ok := clients.CanonicalResource([]string{sse}, requested); ok && canon == sse {
		return s.cfg.MCPResource
	}
	return requested
}

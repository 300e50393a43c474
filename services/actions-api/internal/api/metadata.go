package api

import (
	"encoding/json"
	"net/url"
	"strings"

	"github.com/tollgate/tollgate/services/actions-api/internal/config"
	"github.com/tollgate/tollgate/services/platform/registry"
)

// WellKnownProtectedResource is the well-known URI suffix of OAuth 2.0
// Protected Resource Metadata (RFC 9728 section 3).
const WellKnownProtectedResource = "/.well-known/oauth-protected-resource"

// ProtectedResourceMetadata is the document of RFC 9728 section 2 for the
// Actions API: the resource identifier is ACTIONS_AUDIENCE, the audience the
// auth-server binds Actions tokens to.
type ProtectedResourceMetadata struct {
	// Resource is ACTIONS_AUDIENCE (section 2 "resource"); section 3.3:
	// it equals the identifier the metadata URL was built from.
	Resource string `json:"resource"`
	// AuthorizationServers is the fleet's issuer (PUBLIC_ISSUER_URL).
	AuthorizationServers []string `json:"authorization_servers"`
	// ScopesSupported is openid plus every scope an operation of the
	// current capability registry requires.
	ScopesSupported []string `json:"scopes_supported"`
	// BearerMethodsSupported: the Authorization header only (RFC 6750
	// section 2.1; the query form is refused).
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
	ResourceName           string   `json:"resource_name"`
}

// metadataPath is the path of the metadata of the resource audience (RFC
// 9728 section 3.1: the well-known suffix inserted between the host and the
// resource's path), "" when audience is not a URL.
func metadataPath(audience string) string {
	u, err := url.Parse(audience)
	if err != nil || u.Host == "" {
		return ""
	}
	return WellKnownProtectedResource + strings.TrimSuffix(u.EscapedPath(), "/")
}

// resourceMetadata builds the metadata URL and document of cfg's audience
// for reg.
func resourceMetadata(cfg config.Config, reg *registry.Registry) (string, []byte, error) {
	path := metadataPath(cfg.Audience)
	if path == "" {
		return "", nil, nil
	}
	u, _ := url.Parse(cfg.Audience)
	scopes := []string{"openid"}
	for _, a := range reg.Actions() {
		for _, s := range a.RequiredScopes {
			if !contains(scopes, s) {
				scopes = append(scopes, s)
			}
		}
	}
	doc, err := json.Marshal(ProtectedResourceMetadata{
		Resource:               cfg.Audience,
		AuthorizationServers:   []string{cfg.Issuer},
		ScopesSupported:        scopes,
		BearerMethodsSupported: []string{"header"},
		ResourceName:           "Tollgate Actions API",
	})
	if err != nil {
		return "", nil, err
	}
	return u.Scheme + "://" + u.Host + path, doc, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

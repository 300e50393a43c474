package config

import (
	"errors"
	"slices"
	"strings"
	"testing"

	pconfig "github.com/tollgate/tollgate/services/platform/config"
)

// TestDynamicClientResources: self-registered clients may use the MCP
// resource alone unless DYNAMIC_CLIENT_RESOURCES says otherwise; its values
// are served resources (scheme and host in any case, a trailing slash, the
// legacy SSE identifier for the MCP resource), held in their configured
// form in the order of Resources. Anything else refuses startup naming the
// value, as does a list of no resource, and dynamic registration in an
// install with no resource for it.
func TestDynamicClientResources(t *testing.T) {
	const mcp, actions = "http://localhost:4000/mcp", "http://localhost:4000/actions"
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"default", nil, []string{mcp}},
		{"both, Actions first", map[string]string{"DYNAMIC_CLIENT_RESOURCES": actions + ", " + mcp}, []string{mcp, actions}},
		{"Actions alone", map[string]string{"DYNAMIC_CLIENT_RESOURCES": actions}, []string{actions}},
		{"the legacy SSE identifier", map[string]string{"DYNAMIC_CLIENT_RESOURCES": "http://localhost:4000/sse"}, []string{mcp}},
		{"scheme and host case, trailing slash", map[string]string{"DYNAMIC_CLIENT_RESOURCES": "HTTP://LocalHost:4000/actions/"}, []string{actions}},
		{"no MCP resource, registration off", map[string]string{"MCP_RESOURCE_URL": ""}, nil},
		{"no MCP resource, Actions named", map[string]string{"MCP_RESOURCE_URL": "", "DCR_ENABLED": "true", "DYNAMIC_CLIENT_RESOURCES": actions}, []string{actions}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := base()
			for k, v := range tc.env {
				env[k] = v
			}
			c, err := Load(pconfig.MapEnv(env))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.DynamicClientResources, tc.want) {
				t.Errorf("DynamicClientResources %q, want %q", c.DynamicClientResources, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"a resource not served", map[string]string{"DYNAMIC_CLIENT_RESOURCES": "https://elsewhere.example/api"},
			`DYNAMIC_CLIENT_RESOURCES: "https://elsewhere.example/api" is not a resource this server serves (http://localhost:4000/mcp, http://localhost:4000/actions)`},
		{"another path case", map[string]string{"DYNAMIC_CLIENT_RESOURCES": mcp + ",http://localhost:4000/Actions"},
			`DYNAMIC_CLIENT_RESOURCES: "http://localhost:4000/Actions" is not a resource this server serves`},
		{"not a URL", map[string]string{"DYNAMIC_CLIENT_RESOURCES": "mcp"}, `DYNAMIC_CLIENT_RESOURCES: "mcp" is not a resource this server serves`},
		{"the SSE identifier without MCP", map[string]string{"MCP_RESOURCE_URL": "", "DYNAMIC_CLIENT_RESOURCES": "http://localhost:4000/sse"},
			`DYNAMIC_CLIENT_RESOURCES: "http://localhost:4000/sse" is not a resource this server serves (http://localhost:4000/actions)`},
		{"no resource", map[string]string{"DYNAMIC_CLIENT_RESOURCES": " , "}, "DYNAMIC_CLIENT_RESOURCES: lists no resource"},
		{"registration without a resource", map[string]string{"MCP_RESOURCE_URL": "", "DCR_ENABLED": "true"},
			"DYNAMIC_CLIENT_RESOURCES: dynamic registration (DCR_ENABLED) is on, but without MCP_RESOURCE_URL its clients may use no resource"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := base()
			for k, v := range tc.env {
				env[k] = v
			}
			_, err := Load(pconfig.MapEnv(env))
			var ce *pconfig.Error
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v, want a configuration error saying %q", err, tc.want)
			}
		})
	}
}

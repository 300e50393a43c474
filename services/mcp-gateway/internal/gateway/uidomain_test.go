package gateway_test

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// _meta.ui.domain is host-dependent (MCP Apps 2026-01-26,
// UIResourceMeta.domain) and a host draws nothing when the value fails its
// check, so the gateway leaves it out unless MCP_UI_DOMAIN sets it. ChatGPT's
// openai/widgetDomain stays the public origin either way, and a tool's
// _meta.ui never carries a domain. Checked over real HTTP: resources/list,
// resources/read and tools/list.
func TestWidgetResourcesUIDomain(t *testing.T) {
	f := newFleet(t)
	sum := sha256.Sum256([]byte(resource))
	claude := hex.EncodeToString(sum[:])[:32] + ".claudemcpcontent.com"
	for _, c := range []struct {
		name, env, want string
	}{
		{"default", "", ""},
		{"MCP_UI_DOMAIN", claude, claude},
	} {
		t.Run(c.name, func(t *testing.T) {
			var g *gw
			if c.env == "" {
				g = f.Gateway()
			} else {
				g = f.Gateway("MCP_UI_DOMAIN", c.env)
			}
			tok := f.Token("user-1", allScopes)
			sid := g.initialize(t, tok)
			check := func(where string, meta map[string]any) {
				t.Helper()
				ui, _ := meta["ui"].(map[string]any)
				got, has := ui["domain"]
				switch {
				case c.want == "" && has:
					t.Errorf("%s: ui.domain %v, want none", where, got)
				case c.want != "" && got != c.want:
					t.Errorf("%s: ui.domain %v, want %q", where, got, c.want)
				}
				if ui["csp"] == nil {
					t.Errorf("%s: ui %v has no csp", where, ui)
				}
				if meta["openai/widgetDomain"] != "http://localhost:4000" {
					t.Errorf("%s: openai/widgetDomain %v, want the public origin", where, meta["openai/widgetDomain"])
				}
			}
			var list struct {
				Resources []listedResource `json:"resources"`
			}
			g.rpc(t, tok, sid, "resources/list", nil, &list)
			if len(list.Resources) == 0 {
				t.Fatal("no resources")
			}
			for _, r := range list.Resources {
				check("resources/list "+r.URI, r.Meta)
				var read struct {
					Contents []struct {
						Meta map[string]any `json:"_meta"`
					} `json:"contents"`
				}
				g.rpc(t, tok, sid, "resources/read", map[string]any{"uri": r.URI}, &read)
				if len(read.Contents) != 1 {
					t.Fatalf("resources/read %s: %+v", r.URI, read)
				}
				check("resources/read "+r.URI, read.Contents[0].Meta)
			}
			var tools struct {
				Tools []struct {
					Name string         `json:"name"`
					Meta map[string]any `json:"_meta"`
				} `json:"tools"`
			}
			g.rpc(t, tok, sid, "tools/list", nil, &tools)
			cards := 0
			for _, tl := range tools.Tools {
				ui, ok := tl.Meta["ui"].(map[string]any)
				if !ok {
					continue
				}
				cards++
				if d, has := ui["domain"]; has || ui["resourceUri"] == nil {
					t.Errorf("tools/list %s: ui %v, want resourceUri and no domain (%v)", tl.Name, ui, d)
				}
			}
			if cards == 0 {
				t.Error("tools/list: no tool draws a card")
			}
		})
	}
}

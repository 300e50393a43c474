package widgets

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/url"
	"strings"
)

// MIMEType is the MIME type of every widget template resource (MCP Apps).
const MIMEType = "text/html;profile=mcp-app"

// AssetPath is the path on the public origin under which the gateway serves
// [Assets]. Templates refer to assets as <public origin>/app-ui/<name>.
const AssetPath = "/app-ui/"

// Keys of a widget tool result's _meta that the gateway fills and the bridge
// reads. ChatGPT hands a card only structuredContent and _meta
// (window.openai.toolOutput, toolResponseMetadata); MCP Apps hands it the
// whole CallToolResult (ui/notifications/tool-result), so _meta reaches the
// card under both hosts.
const (
	// MetaError carries a failed call's message (a string).
	MetaError = "tollgate/error"
	// MetaActions maps each action role of the card (see [Widget.Actions])
	// to the tool name the client knows, e.g. {"reload": "identity.profile_card",
	// "revoke": "connections.revoke"}. The card calls tools only through it.
	MetaActions = "tollgate/actions"
	// MetaStepUp is set on a result refused for missing scopes:
	// {"missing": [{"scope": "profile", "description": "Your name and username"}]}.
	// The bridge then shows the step-up state with a Reconnect action.
	MetaStepUp = "tollgate/stepUp"
	// MetaScopes maps every scope the install supports to what it allows,
	// in the user's words: {"profile": "Your name and username"}. Cards
	// name scopes with it.
	MetaScopes = "tollgate/scopes"
)

// ActionReload is the role every card has: the tool that drew it. The
// step-up state's Reconnect action and a card's refresh call it.
const ActionReload = "reload"

// ErrInvalidOrigin is wrapped by the errors for a public origin that is not
// a bare http(s) origin such as "https://tollgate.example.com".
var ErrInvalidOrigin = errors.New("invalid public origin")

// Widget is one card that an MCP tool result can be drawn with.
type Widget struct {
	// URI is the MCP resource URI, e.g. "ui://widget/health-status-card-v1.html".
	// A capability's MCP tool option refers to the card by this URI.
	URI string
	// Name is the resource name, the versioned file name without ".html".
	Name string
	// Title is a short human title for the resource list.
	Title string
	// Description says what the card shows; it is the resource description
	// and ChatGPT's openai/widgetDescription.
	Description string
	// PrefersBorder asks the host to draw a border and background around the
	// card (MCP Apps ui.prefersBorder, ChatGPT openai/widgetPrefersBorder).
	PrefersBorder bool
	// Actions names the other tools the card calls, by role. The key is the
	// role the card's script asks for (for example "revoke"); the value is
	// the tool's name as its capability declares it (the mcp_tool option,
	// e.g. "connections.revoke"). The gateway resolves each to the name the
	// client sees and sends the map in [MetaActions], plus [ActionReload];
	// a card's script never holds a tool name.
	Actions map[string]string

	template string // file name under templates/
}

// All returns every widget, in a stable order. The slice is the caller's.
func All() []Widget {
	return []Widget{
		{
			URI:           "ui://widget/health-status-card-v1.html",
			Name:          "health-status-card-v1",
			Title:         "Service status",
			Description:   "Tells the user in plain words whether the service works: overall status, how many of the parts it depends on respond, and when it was checked.",
			PrefersBorder: false,
			template:      "health-status-card-v1.html",
		},
		{
			URI:           "ui://widget/profile-summary-card-v1.html",
			Name:          "profile-summary-card-v1",
			Title:         "Profile summary",
			Description:   "Shows the signed-in user's profile: name, username, email with its verification state, and subject.",
			PrefersBorder: false,
			template:      "profile-summary-card-v1.html",
		},
		{
			URI:           "ui://widget/connections-card-v1.html",
			Name:          "connections-card-v1",
			Title:         "Connected apps",
			Description:   "Lists the apps connected to the user's account, what each may do and when it was last used, with a button to revoke an app's access.",
			PrefersBorder: false,
			Actions:       map[string]string{"revoke": "connections.revoke"},
			template:      "connections-card-v1.html",
		},
	}
}

// Lookup returns the widget with the resource URI.
func Lookup(uri string) (Widget, bool) {
	for _, w := range All() {
		if w.URI == uri {
			return w, true
		}
	}
	return Widget{}, false
}

// HTML renders the card's template with its assets as absolute URLs on the
// public origin (scheme://host[:port], no path), e.g.
// https://tollgate.example.com/app-ui/mcp-widget-bridge-v1.js.
func (w Widget) HTML(publicOrigin string) (string, error) {
	origin, err := normalizeOrigin(publicOrigin)
	if err != nil {
		return "", err
	}
	if w.template == "" {
		return "", fmt.Errorf("widget %q has no template; use a Widget from All or Lookup", w.URI)
	}
	assets := Assets()
	funcs := template.FuncMap{
		"asset": func(name string) (string, error) {
			if err := checkAssetName(assets, name); err != nil {
				return "", err
			}
			return origin + AssetURLPath(name), nil
		},
	}
	src, err := fs.ReadFile(files, templateDir+"/"+w.template)
	if err != nil {
		return "", fmt.Errorf("read template of %s: %w", w.URI, err)
	}
	t, err := template.New(w.template).Funcs(funcs).Parse(string(src))
	if err != nil {
		return "", fmt.Errorf("parse template of %s: %w", w.URI, err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, w); err != nil {
		return "", fmt.Errorf("render template of %s: %w", w.URI, err)
	}
	return buf.String(), nil
}

// CSP is the content security policy a widget needs, as the lists of origins
// that both host kinds publish in the resource metadata.
type CSP struct {
	// ConnectDomains are the origins the card may fetch from. The cards draw
	// only what the host hands them, so this is empty.
	ConnectDomains []string
	// ResourceDomains are the origins of scripts, styles, images and fonts:
	// the public origin.
	ResourceDomains []string
}

// OpenAIWidgetCSP is the shape of ChatGPT's openai/widgetCSP metadata.
type OpenAIWidgetCSP struct {
	ConnectDomains  []string `json:"connect_domains"`
	ResourceDomains []string `json:"resource_domains"`
}

// MCPAppsCSP is the shape of MCP Apps' _meta.ui.csp.
type MCPAppsCSP struct {
	ConnectDomains  []string `json:"connectDomains"`
	ResourceDomains []string `json:"resourceDomains"`
}

// CSP returns the policy the card needs when its assets are served from the
// public origin.
func (w Widget) CSP(publicOrigin string) (CSP, error) {
	origin, err := normalizeOrigin(publicOrigin)
	if err != nil {
		return CSP{}, err
	}
	return CSP{ConnectDomains: []string{}, ResourceDomains: []string{origin}}, nil
}

// OpenAI returns the policy as ChatGPT's openai/widgetCSP.
func (c CSP) OpenAI() OpenAIWidgetCSP {
	return OpenAIWidgetCSP{ConnectDomains: nonNil(c.ConnectDomains), ResourceDomains: nonNil(c.ResourceDomains)}
}

// MCPApps returns the policy as MCP Apps' ui.csp.
func (c CSP) MCPApps() MCPAppsCSP {
	return MCPAppsCSP{ConnectDomains: nonNil(c.ConnectDomains), ResourceDomains: nonNil(c.ResourceDomains)}
}

// Policy returns the Content-Security-Policy header value that a host builds
// from the metadata: nothing is allowed unless listed, no inline code. The
// browser tests load every card under it.
func (c CSP) Policy() string {
	list := func(origins []string) string {
		if len(origins) == 0 {
			return "'none'"
		}
		return strings.Join(origins, " ")
	}
	res := list(c.ResourceDomains)
	return strings.Join([]string{
		"default-src 'none'",
		"script-src " + res,
		"style-src " + res,
		"img-src " + res,
		"font-src " + res,
		"media-src " + res,
		"connect-src " + list(c.ConnectDomains),
		"frame-src 'none'",
		"object-src 'none'",
		"base-uri 'none'",
		"form-action 'none'",
	}, "; ")
}

// ResourceMeta returns the _meta of the widget's MCP resource, for both host
// kinds: MCP Apps reads "ui", ChatGPT reads the "openai/..." keys. Publish it
// in resources/list and on the contents of resources/read.
func (w Widget) ResourceMeta(publicOrigin string) (map[string]any, error) {
	csp, err := w.CSP(publicOrigin)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"ui": map[string]any{
			"csp":           csp.MCPApps(),
			"prefersBorder": w.PrefersBorder,
		},
		"openai/widgetCSP":           csp.OpenAI(),
		"openai/widgetDescription":   w.Description,
		"openai/widgetPrefersBorder": w.PrefersBorder,
	}, nil
}

// ToolMeta returns the _meta that links an MCP tool to the widget, for both
// host kinds (MCP Apps ui.resourceUri, ChatGPT openai/outputTemplate).
func (w Widget) ToolMeta() map[string]any {
	return map[string]any{
		"ui":                    map[string]any{"resourceUri": w.URI},
		"openai/outputTemplate": w.URI,
	}
}

// normalizeOrigin checks that s is a bare http(s) origin and returns it as
// scheme://host[:port] in lower case.
func normalizeOrigin(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	switch {
	case err != nil:
		return "", fmt.Errorf("%w %q: %v", ErrInvalidOrigin, s, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("%w %q: scheme must be https (or http for local development)", ErrInvalidOrigin, s)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("%w %q: no host", ErrInvalidOrigin, s)
	case u.User != nil:
		return "", fmt.Errorf("%w %q: user info is not allowed", ErrInvalidOrigin, s)
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.ForceQuery, u.Fragment != "":
		return "", fmt.Errorf("%w %q: an origin has no path, query or fragment", ErrInvalidOrigin, s)
	case strings.ContainsAny(u.Host, " \"'<>\\`"):
		return "", fmt.Errorf("%w %q: bad character in host", ErrInvalidOrigin, s)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Package widgets holds Tollgate's UI cards for ChatGPT Apps and MCP Apps
// hosts, and exposes them to the MCP gateway.
//
// # What is here
//
// A card is an HTML template (templates/<name>.html) plus static assets
// (app-ui/). The assets are shared where they can be:
//
//   - mcp-widget-bridge-v1.js delivers the tool result to the card from either
//     host bridge: ChatGPT's window.openai globals (toolOutput,
//     toolResponseMetadata, widgetState, theme, the openai:set_globals event)
//     or the MCP Apps JSON-RPC protocol over postMessage (ui/initialize,
//     ui/notifications/initialized, tool-result, host-context-changed,
//     size-changed). It owns the card's states: waiting, ready, empty (no
//     data, or nothing arrived in 5 s), error and step-up (missing scopes,
//     with a Reconnect action). It gives the card its interactions under
//     both hosts: calling a tool by role ([Widget.Actions], resolved by the
//     gateway into [MetaActions]), a follow-up message, opening a link and
//     card state (docs/guides/add-a-widget.md, "Interactions").
//   - tool-result-card-base-v1.css is the shared look, light and dark.
//   - <card>.js checks the structured result and draws it with textContent
//     only, so tool data can never become markup.
//
// # How the gateway uses it
//
// The gateway serves [Assets] under [AssetPath] on its public origin (mount
// [AssetHandler] at that path), and publishes each [Widget] of [All] as an MCP
// resource:
//
//	for _, w := range widgets.All() {
//		html, err := w.HTML(publicOrigin)      // resources/read text
//		meta, err := w.ResourceMeta(publicOrigin) // resource _meta
//		// uri: w.URI, name: w.Name, title: w.Title,
//		// description: w.Description, mimeType: widgets.MIMEType
//	}
//
// A tool that draws with a card carries [Widget.ToolMeta] in its _meta.
//
// The rendered HTML refers to its assets by absolute URL on the public origin,
// because hosts load the template into a sandbox of their own origin. The
// template holds no inline script or style, so it works under the strict
// policy that a host builds from the resource metadata ([CSP.Policy]): only
// the public origin for scripts, styles and images, and no network access
// at all (connect-src 'none'). The policy is not repeated as a <meta> tag in
// the HTML: hosts add their own bootstrap code to the sandboxed document, and
// a second, stricter policy in the page could block it.
//
// A failed call reaches the card as an MCP result with isError (its text
// content is shown). ChatGPT gives widgets only structuredContent and _meta,
// so the gateway also puts the message in _meta under [MetaError], a
// refusal for missing scopes under [MetaStepUp], and the card's actions and
// scope words under [MetaActions] and [MetaScopes].
//
// # Versioning
//
// Every asset and template name ends in -v<N>. A change that breaks a
// contract (the shape of structuredContent, a DOM hook a host relies on)
// gets a new name and a new resource URI, and the old one stays until no
// tool refers to it. Hosts cache templates by URI, so a fix that keeps the
// contract keeps the name.
package widgets

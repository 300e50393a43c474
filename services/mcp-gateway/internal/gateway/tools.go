package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/services/platform/fault"
	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/tokens"
	"github.com/tollgate/tollgate/widgets"
)

// MetaWWWAuthenticate is the _meta key of a tool result that carries an
// authorization challenge (ChatGPT Apps step-up).
const MetaWWWAuthenticate = "mcp/www_authenticate"

// MetaError carries a failed call's message for widgets, which ChatGPT
// hands only structuredContent and _meta (see widgets/doc.go).
const MetaError = widgets.MetaError

// catalog turns the capability registry and the widgets into MCP tools and
// resources. Nothing here names a tool: everything comes from the proto
// options through the registry.
type catalog struct {
	reg         *registry.Registry
	core        grpc.ClientConnInterface
	backends    registry.Conns
	coreTimeout time.Duration
	origin      string // public origin of widget assets
	// uiDomain is every widget resource's _meta.ui.domain (MCP_UI_DOMAIN);
	// empty leaves the field out.
	uiDomain   string
	challenges *challenger
	metrics    *metrics
	log        *slog.Logger
	// underscore spells tool names with "_" for "." (MCP_TOOL_NAME_STYLE).
	underscore bool
}

// wireToolName matches what clients strict about tool names accept
// (Claude, Codex, Copilot CLI); the MCP specification allows dots too.
var wireToolName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// name is t's name on the wire: the registry's dotted name, or with
// MCP_TOOL_NAME_STYLE=underscore every "." replaced by "_"
// ("identity.profile_card" → "identity_profile_card"). Metrics and the
// capability registry keep the dotted name.
func (c *catalog) name(t *registry.Tool) string {
	if c.underscore {
		return registry.UnderscoreToolName(t.Name)
	}
	return t.Name
}

// checkNames refuses a registry whose names would collide, or break the
// strict pattern, in the underscore style. Discovery refuses the service
// of a tool whose name would collide (Run: registry.Fleet's
// UnderscoreToolNames) and the registry's names always match the
// pattern: this holds a registry made otherwise.
func (c *catalog) checkNames() error {
	if !c.underscore {
		return nil
	}
	seen := map[string]string{}
	for _, t := range c.reg.Tools() {
		n := c.name(t)
		if !wireToolName.MatchString(n) {
			return fmt.Errorf("tool %s: %q does not match %s", t.Name, n, wireToolName)
		}
		if prev, dup := seen[n]; dup {
			return fmt.Errorf("tools %s and %s are both %q with MCP_TOOL_NAME_STYLE=underscore", prev, t.Name, n)
		}
		seen[n] = t.Name
	}
	return nil
}

func boolPtr(b bool) *bool { return &b }

// destructiveHint is the destructiveHint a tools/list entry carries: the
// declared one, or MCP's default (true) for a tool that is not read-only
// and leaves it out. A read-only tool that leaves it out is listed
// without it: MCP reads destructiveHint only when readOnlyHint is false
// (MCP 2025-11-25, schema ToolAnnotations), and its default next to
// readOnlyHint true would read as a contradiction, false as a
// declaration the tool never made.
func destructiveHint(a registry.Annotations) *bool {
	if a.DestructiveHint == nil && a.ReadOnly() {
		return nil
	}
	return boolPtr(a.Destructive())
}

// tool builds the MCP descriptor of t.
func (c *catalog) tool(t *registry.Tool) (mcp.Tool, error) {
	in, err := json.Marshal(t.Capability.InputSchema())
	if err != nil {
		return mcp.Tool{}, err
	}
	out, err := json.Marshal(t.Capability.OutputSchema())
	if err != nil {
		return mcp.Tool{}, err
	}
	scopes := t.RequiredScopes
	if scopes == nil {
		scopes = []string{}
	}
	meta := map[string]any{
		// Every call needs an access token for the MCP resource; the
		// scopes listed are what this tool needs on top of it.
		"securitySchemes": []any{map[string]any{"type": "oauth2", "scopes": scopes}},
	}
	if t.InvokingMessage != "" {
		meta["openai/toolInvocation/invoking"] = t.InvokingMessage
	}
	if t.InvokedMessage != "" {
		meta["openai/toolInvocation/invoked"] = t.InvokedMessage
	}
	if t.WidgetURI != "" {
		w, ok := widgets.Lookup(t.WidgetURI)
		if !ok {
			return mcp.Tool{}, fmt.Errorf("tool %s: widget %s is not in the widgets module", t.Name, t.WidgetURI)
		}
		for k, v := range w.ToolMeta() {
			meta[k] = v
		}
	}
	if c.widgetCalls(t.Name) {
		// ChatGPT lets a card call only tools marked so (Apps SDK,
		// component-initiated tool calls); MCP Apps hosts let a view call
		// any tool whose ui.visibility includes "app", the default.
		meta["openai/widgetAccessible"] = true
	}
	// Each hint as declared, or MCP's default for one left out: never
	// false for a hint the backend did not declare.
	a := t.Annotations
	return mcp.Tool{
		Name:            c.name(t),
		Title:           t.Title,
		Description:     t.Description,
		RawInputSchema:  in,
		RawOutputSchema: out,
		Annotations: mcp.ToolAnnotation{
			Title:           t.Title,
			ReadOnlyHint:    boolPtr(a.ReadOnly()),
			DestructiveHint: destructiveHint(a),
			IdempotentHint:  boolPtr(a.Idempotent()),
			OpenWorldHint:   boolPtr(a.OpenWorld()),
		},
		Meta: mcp.NewMetaFromMap(meta),
	}, nil
}

// tools returns every registry tool with its handler.
func (c *catalog) tools() ([]server.ServerTool, error) {
	if err := c.checkNames(); err != nil {
		return nil, err
	}
	var out []server.ServerTool
	for _, t := range c.reg.Tools() {
		// A tool the gateway cannot draw (a widget it does not have, a
		// card action naming a tool that is not there) is left out and
		// logged: one backend's mistake does not hold back the others'.
		desc, err := c.tool(t)
		if err == nil {
			var h server.ToolHandlerFunc
			if h, err = c.handler(t); err == nil {
				out = append(out, server.ServerTool{Tool: desc, Handler: h})
			}
		}
		if err != nil {
			c.log.Error("tool not served", "tool", t.Name, "backend", t.Capability.Backend, "err", err)
			continue
		}
		// Zero series from the start, so that rates and alerts see every tool.
		c.metrics.toolCalls.WithLabelValues(t.Name, "ok")
		c.metrics.coreLatency.WithLabelValues(t.Name)
	}
	return out, nil
}

// instructions describe the tools to the model, from the registry.
func (c *catalog) instructions() string {
	var b strings.Builder
	b.WriteString("Tollgate connects you to a private service on behalf of the signed-in user. ")
	// What the tools may do is said from their annotations, never assumed.
	writes := 0
	for _, t := range c.reg.Tools() {
		if !t.Annotations.ReadOnly() {
			writes++
		}
	}
	if writes == 0 {
		b.WriteString("Every tool is read-only. Tools:\n")
	} else {
		b.WriteString("Tools marked \"changes data\" act on the user's account: call them only when the user asked for that change. Tools:\n")
	}
	for _, t := range c.reg.Tools() {
		fmt.Fprintf(&b, "- %s: %s", c.name(t), t.Description)
		if a := t.Annotations; !a.ReadOnly() {
			b.WriteString(" Changes data")
			switch {
			case a.Destructive() && a.Idempotent():
				b.WriteString(" (destructive; repeating it changes nothing more).")
			case a.Destructive():
				b.WriteString(" (destructive).")
			default:
				b.WriteString(".")
			}
		}
		if len(t.RequiredScopes) > 0 {
			fmt.Fprintf(&b, " (needs scopes: %s)", strings.Join(t.RequiredScopes, " "))
		}
		if t.WidgetURI != "" {
			b.WriteString(" Renders an inline card.")
		}
		b.WriteString("\n")
	}
	b.WriteString("If a tool answers that more access is needed, ask the user to reconnect the app to grant it.")
	return b.String()
}

// handler calls the capability behind t with the caller's token.
func (c *catalog) handler(t *registry.Tool) (server.ToolHandlerFunc, error) {
	actions, err := c.widgetActions(t)
	if err != nil {
		return nil, err
	}
	call := c.call(t)
	if actions == nil {
		return call, nil
	}
	// A card's result tells it which tools its actions call and how to
	// name scopes.
	words := c.scopeWords()
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		res, err := call(ctx, req)
		if res != nil {
			if res.Meta == nil {
				res.Meta = mcp.NewMetaFromMap(map[string]any{})
			}
			res.Meta.AdditionalFields[widgets.MetaActions] = actions
			res.Meta.AdditionalFields[widgets.MetaScopes] = words
		}
		return res, err
	}, nil
}

// call calls the capability behind t with the caller's token.
func (c *catalog) call(t *registry.Tool) server.ToolHandlerFunc {
	// The series every successful call touches, resolved once.
	okCalls := c.metrics.toolCalls.WithLabelValues(t.Name, "ok")
	latency := c.metrics.coreLatency.WithLabelValues(t.Name)
	safe := t.RetrySafe()
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		claims, ok := tokens.FromContext(ctx)
		if !ok {
			// The auth middleware runs before every transport; this is a wiring bug.
			return nil, errors.New("no verified token in the request context")
		}
		if missing := claims.MissingScopes(t.RequiredScopes); len(missing) > 0 {
			c.metrics.toolCall(t.Name, "insufficient_scope")
			ch := c.challenges.forRequest(ctx)
			challenge := ch.insufficientScope(t.RequiredScopes, claims.Scopes)
			ch.set(ctx, challenge)
			msg := fmt.Sprintf("This tool needs the scopes %q; the current authorization lacks %q. Reconnect the app to grant them.",
				strings.Join(t.RequiredScopes, " "), strings.Join(missing, " "))
			res := errorResult(msg)
			res.Meta.AdditionalFields[MetaWWWAuthenticate] = []string{challenge}
			res.Meta.AdditionalFields[widgets.MetaStepUp] = c.stepUp(missing)
			return res, nil
		}
		raw, err := rawArguments(req)
		if err != nil {
			c.metrics.toolCall(t.Name, "invalid_arguments")
			return errorResult(err.Error()), nil
		}
		in, err := t.Capability.DecodeJSON(raw)
		if err != nil {
			c.metrics.toolCall(t.Name, "invalid_arguments")
			return errorResult(err.Error()), nil
		}
		progress(ctx, req, t.InvokingMessage)
		// CORE_CALL_TIMEOUT bounds the capability call: a context of its
		// own, unless ctx ends as soon already (callTool's does: one
		// cancellable context per call, not two).
		cctx := ctx
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > c.coreTimeout {
			var cancel context.CancelFunc
			cctx, cancel = context.WithTimeout(ctx, c.coreTimeout)
			defer cancel()
		}
		cctx = tokens.WithBearer(cctx, claims)
		start := time.Now()
		conn, ok := c.backends.For(t.Capability)
		if !ok {
			conn = c.core
		}
		out, err := t.Capability.Invoke(cctx, conn, in)
		latency.Observe(time.Since(start).Seconds())
		if err != nil {
			result, msg := callError(err, safe)
			c.metrics.toolCall(t.Name, result)
			c.logCallError(ctx, t.Name, t.Capability.Backend, result, err)
			return errorResult(msg), nil
		}
		b, err := t.Capability.MarshalOutput(out)
		if err != nil {
			return nil, fmt.Errorf("encode %s output: %w", t.Name, err)
		}
		okCalls.Inc()
		return okResult(b), nil
	}
}

// okResult is a successful call's result: the output b (compact JSON) as
// text content and as structured content. The result, its content list,
// text and structured content are one allocation (five as separate
// values): the list and the structured content hold pointers into it,
// which encode as the values would.
func okResult(b []byte) *mcp.CallToolResult {
	o := &struct {
		res        mcp.CallToolResult
		content    [1]mcp.Content
		text       mcp.TextContent
		structured compactJSON
	}{}
	o.text = mcp.NewTextContent(string(b))
	o.structured = compactJSON(b)
	o.content[0] = &o.text
	o.res.Content = o.content[:]
	o.res.StructuredContent = &o.structured
	return &o.res
}

// progress tells a caller that asked for progress (a progressToken in the
// request's _meta, echoed as written: requestProgressToken) that the call
// is under way, unless its Accept admits only JSON. Over Streamable HTTP this
// turns the response into an SSE stream whose events are recorded for
// Last-Event-ID resumption.
func progress(ctx context.Context, req mcp.CallToolRequest, msg string) {
	if req.Params.Meta == nil || req.Params.Meta.ProgressToken == nil {
		return
	}
	if jsonOnly, _ := ctx.Value(jsonOnlyKey{}).(bool); jsonOnly {
		return // the client accepts only a JSON answer
	}
	params := map[string]any{"progressToken": requestProgressToken(req), "progress": 0, "total": 1}
	if msg != "" {
		params["message"] = msg
	}
	// Before the call's answer, on every transport (notifyClient).
	_ = notifyClient(ctx, string(mcp.MethodNotificationProgress), params)
}

// rawArguments returns the call's arguments as JSON.
func rawArguments(req mcp.CallToolRequest) ([]byte, error) {
	switch a := req.GetRawArguments().(type) {
	case json.RawMessage:
		return a, nil
	case nil:
		return nil, nil
	default:
		b, err := json.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("invalid arguments: %v", err)
		}
		return b, nil
	}
}

// logCallError logs a failed capability call that is not the caller's
// doing, with the details the caller is not shown and the backend that
// serves the tool (registry.Capability.Backend: capability-core or a
// CAPABILITY_BACKENDS name): unexpected failures at error level, an
// unavailable backend at warn.
func (c *catalog) logCallError(ctx context.Context, tool, backend, result string, err error) {
	st, _ := status.FromError(err)
	switch result {
	case "error":
		c.log.ErrorContext(ctx, "tool call failed", "tool", tool, "backend", backend, "grpc_code", st.Code().String(), "err", err)
	case "unavailable":
		c.log.WarnContext(ctx, "tool call failed: backend unavailable", "tool", tool, "backend", backend, "grpc_code", st.Code().String(), "err", err)
	}
}

// callError words fault.Classify's answer to a capability backend
// call's error as a tool result's metric label and text, safe to show;
// the actions-api words the same answer as its JSON error
// (docs/reference/mcp.md, "Tool call failures"). A caller error shows
// the backend's message (fault.Failure.Message: written for callers, at
// most fault.MaxMessageBytes), except Unauthenticated, whose remedy is
// always to reconnect; a rate limit adds when to try again
// (fault.Failure.RetryAfter, the actions-api's Retry-After); a message
// over a gRPC size limit says repeating the call will not help; a
// timed-out call of a tool that is not registry.Tool.RetrySafe (safe
// false) says the change may have been made rather than "try again". A
// server fault shows a fixed text and its details are logged.
func callError(err error, safe bool) (string, string) {
	f := fault.Classify(err, safe)
	switch f.Class {
	case fault.ClassCaller:
		if f.Code == codes.Unauthenticated {
			return f.Result, "The service did not accept the authorization; reconnect the app."
		}
		return f.Result, f.Message
	case fault.ClassRateLimited:
		return f.Result, fmt.Sprintf("%s (try again in %v)", f.Message, f.RetryAfter)
	case fault.ClassTooLarge:
		return f.Result, "The service's request or reply is over the gRPC message size limit; repeating the call will not help."
	case fault.ClassMaybeApplied:
		return f.Result, "The service did not answer in time; the change may have been made: check before repeating it."
	case fault.ClassUnavailable:
		return f.Result, "The service is temporarily unavailable; try again in a moment."
	}
	return f.Result, "The service failed to answer."
}

func errorResult(msg string) *mcp.CallToolResult {
	return &mcp.CallToolResult{
		Result:  mcp.Result{Meta: mcp.NewMetaFromMap(map[string]any{MetaError: msg})},
		Content: []mcp.Content{mcp.NewTextContent(msg)},
		IsError: true,
	}
}

// resources returns the widget templates as MCP Apps UI resources. Any
// caller with a valid MCP token may read them: a template holds no user
// data, and a card must load to show its step-up state to a caller whose
// token lacks the scopes of the tool that draws it.
func (c *catalog) resources() ([]server.ServerResource, error) {
	var out []server.ServerResource
	for _, w := range widgets.All() {
		meta, err := c.resourceMeta(w)
		if err != nil {
			return nil, err
		}
		if _, err := w.HTML(c.origin); err != nil {
			return nil, err
		}
		out = append(out, server.ServerResource{
			Resource: mcp.Resource{
				URI: w.URI, Name: w.Name, Title: w.Title, Description: w.Description,
				MIMEType: widgets.MIMEType, Meta: mcp.NewMetaFromMap(meta),
			},
			Handler: c.readWidget(w, meta),
		})
	}
	return out, nil
}

// resourceMeta is the widget's own metadata plus the sandbox domains.
// ChatGPT's openai/widgetDomain is the public origin (the Apps SDK's
// origin for the widget's sandbox). MCP Apps' ui.domain is left out
// unless MCP_UI_DOMAIN sets it: its format is host-dependent (ext-apps
// specification 2026-01-26, UIResourceMeta.domain: servers follow each
// host's documentation) and a host draws nothing when the value fails its
// check — Claude expects "<hash>.claudemcpcontent.com" and refused the
// public origin — while without it every host uses a sandbox origin of its
// own, which the cards need: they load assets from the public origin
// (ui.csp) and make no other requests.
func (c *catalog) resourceMeta(w widgets.Widget) (map[string]any, error) {
	meta, err := w.ResourceMeta(c.origin)
	if err != nil {
		return nil, err
	}
	meta["openai/widgetDomain"] = c.origin
	if ui, ok := meta["ui"].(map[string]any); ok && c.uiDomain != "" {
		ui["domain"] = c.uiDomain
	}
	return meta, nil
}

func (c *catalog) readWidget(w widgets.Widget, meta map[string]any) server.ResourceHandlerFunc {
	return func(ctx context.Context, _ mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
		if _, ok := tokens.FromContext(ctx); !ok {
			// The auth middleware runs before every transport; this is a wiring bug.
			return nil, errors.New("no verified token in the request context")
		}
		html, err := w.HTML(c.origin)
		if err != nil {
			return nil, err
		}
		return []mcp.ResourceContents{mcp.TextResourceContents{
			URI: w.URI, MIMEType: widgets.MIMEType, Text: html, Meta: meta,
		}}, nil
	}
}

// widgetActions resolves the actions of the card t draws (nil when t draws
// none) to the tool names clients see: [widgets.ActionReload] is t itself.
// A card action naming a tool the registry lacks is a build error.
func (c *catalog) widgetActions(t *registry.Tool) (map[string]string, error) {
	if t.WidgetURI == "" {
		return nil, nil
	}
	w, ok := widgets.Lookup(t.WidgetURI)
	if !ok {
		return nil, fmt.Errorf("tool %s: widget %s is not in the widgets module", t.Name, t.WidgetURI)
	}
	out := map[string]string{widgets.ActionReload: c.name(t)}
	for role, name := range w.Actions {
		target, ok := c.reg.Tool(name)
		if !ok {
			return nil, fmt.Errorf("widget %s (drawn by tool %s): action %q calls tool %q, which no capability declares", w.URI, t.Name, role, name)
		}
		out[role] = c.name(target)
	}
	return out, nil
}

// widgetCalls reports whether a card may call the tool: it draws a card
// (the card's reload action) or a card that some tool draws names it as
// an action.
func (c *catalog) widgetCalls(name string) bool {
	for _, t := range c.reg.Tools() {
		if t.WidgetURI == "" {
			continue
		}
		if t.Name == name {
			return true
		}
		w, _ := widgets.Lookup(t.WidgetURI)
		for _, target := range w.Actions {
			if target == name {
				return true
			}
		}
	}
	return false
}

// stepUpScope is one scope in [widgets.MetaStepUp]: its token and what it
// allows in the user's words.
type stepUpScope struct {
	Scope       string `json:"scope"`
	Description string `json:"description"`
}

// stepUp describes the missing scopes for the card's step-up state, with
// the consent page's words for each (the scope option of the service that
// declares it, or the OpenID Connect scopes' own).
func (c *catalog) stepUp(missing []string) map[string]any {
	list := make([]stepUpScope, 0, len(missing))
	for _, s := range missing {
		d, _ := c.reg.Scope(s)
		list = append(list, stepUpScope{Scope: s, Description: d.Description})
	}
	return map[string]any{"missing": list}
}

// scopeWords is [widgets.MetaScopes]: every scope the install supports, with
// its description.
func (c *catalog) scopeWords() map[string]string {
	out := map[string]string{}
	for _, s := range c.reg.SupportedScopes() {
		if s.Description != "" {
			out[s.Name] = s.Description
		}
	}
	return out
}

// Package registry reads the exposure options of capability RPCs (see
// proto/tollgate/options/v1) so that mcp-gateway and actions-api can build
// their MCP tools, REST routes, JSON Schemas and OpenAPI operations from the
// proto definitions alone, and call capability-core generically.
//
// Adding a capability means: declare the RPC with its options, implement it
// in capability-core, regenerate. No connector code names a capability.
package registry

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
)

// GPT Actions limits on OpenAPI text, in characters: 300 for an
// operation's summary and for its description alike ("each API endpoint
// description/summary field"), 700 for any other description (a
// parameter's, a schema's). The GPT editor refuses a document that passes
// one (OpenAI, GPT Actions production notes, "OpenAPI specification
// limits").
const (
	MaxSummary              = 300
	MaxOperationDescription = 300
	MaxDescription          = 700
)

// Annotations are a tool's MCP behaviour hints (MCP 2025-11-25, "Tool
// annotations"; schema ToolAnnotations) as its registration declares
// them: a nil field is a hint it leaves out, or every hint of a tool
// declaring no annotations message. The methods read them as MCP does,
// a hint left out as MCP's default — never as false, proto3's zero value,
// which for destructiveHint and openWorldHint is the opposite.
type Annotations struct {
	ReadOnlyHint, DestructiveHint, IdempotentHint, OpenWorldHint *bool
}

// ReadOnly is readOnlyHint: the tool changes nothing. Default false.
func (a Annotations) ReadOnly() bool { return hint(a.ReadOnlyHint, false) }

// Destructive is destructiveHint for a tool that is not read-only: it may
// destroy or overwrite rather than only add. Default true. A read-only
// tool is not destructive (MCP reads the hint only when readOnlyHint is
// false; the registry refuses both declared true).
func (a Annotations) Destructive() bool { return !a.ReadOnly() && hint(a.DestructiveHint, true) }

// Idempotent is idempotentHint: a second call with the same arguments has
// no further effect. Default false.
func (a Annotations) Idempotent() bool { return hint(a.IdempotentHint, false) }

// OpenWorld is openWorldHint: the tool reaches beyond its backend.
// Default true.
func (a Annotations) OpenWorld() bool { return hint(a.OpenWorldHint, true) }

// hint is a declared hint's value, or def when it is left out.
func hint(declared *bool, def bool) bool {
	if declared == nil {
		return def
	}
	return *declared
}

// toolAnnotations reads a tool's declared hints, each with its presence
// (optional in options.proto): a registration that sets only read_only
// leaves destructive and open_world to MCP's defaults, not to false. A
// tool that declares no annotations message leaves out every hint.
func toolAnnotations(a *optionsv1.ToolAnnotations) Annotations {
	if a == nil {
		return Annotations{}
	}
	own := func(b *bool) *bool {
		if b == nil {
			return nil
		}
		v := *b
		return &v
	}
	return Annotations{ReadOnlyHint: own(a.ReadOnly), DestructiveHint: own(a.Destructive), IdempotentHint: own(a.Idempotent), OpenWorldHint: own(a.OpenWorld)}
}

// Tool is one MCP tool backed by a capability.
type Tool struct {
	Name            string
	Title           string
	Description     string
	RequiredScopes  []string
	Annotations     Annotations
	WidgetURI       string
	InvokingMessage string
	InvokedMessage  string
	Capability      *Capability
}

// Action is the GPT Actions operation backed by a capability.
type Action struct {
	Method string
	// Path is the route, with "{field}" segments for path parameters.
	Path string
	// PathParams are the request fields taken from the path, in order.
	PathParams     []string
	OperationID    string
	Summary        string
	Description    string
	RequiredScopes []string
	Consequential  bool
	Capability     *Capability
}

// RetrySafe reports whether repeating the operation's call cannot do its
// work twice: a read (not consequential) or an RPC declared
// idempotency_level NO_SIDE_EFFECTS or IDEMPOTENT (revokeConnection: a
// second call changes nothing). Any other write (an "add") whose call ran
// out of time may have been done by the backend already, and a connector
// does not tell its caller to simply retry it.
func (a *Action) RetrySafe() bool {
	return !a.Consequential || a.Capability.idempotent()
}

// RetrySafe is Action.RetrySafe for a tool: a read-only or idempotent one
// (its annotations), or an RPC declared idempotency_level NO_SIDE_EFFECTS
// or IDEMPOTENT. The mcp-gateway does not tell a model to simply try
// again a call of any other tool that ran out of time: the backend may
// have done it.
func (t *Tool) RetrySafe() bool {
	return t.Annotations.ReadOnly() || t.Annotations.Idempotent() || t.Capability.idempotent()
}

// idempotent reports whether the RPC declares idempotency_level
// NO_SIDE_EFFECTS or IDEMPOTENT.
func (c *Capability) idempotent() bool {
	opts, _ := c.Method.Options().(*descriptorpb.MethodOptions)
	switch opts.GetIdempotencyLevel() {
	case descriptorpb.MethodOptions_NO_SIDE_EFFECTS, descriptorpb.MethodOptions_IDEMPOTENT:
		return true
	}
	return false
}

// DefaultBackend serves every service that names no backend.
const DefaultBackend = "capability-core"

// Capability is one RPC with exposure options.
type Capability struct {
	Method protoreflect.MethodDescriptor
	// FullMethod is the gRPC method name, "/pkg.Service/Method".
	FullMethod string
	// Backend names the fleet service that serves the RPC (the service's
	// backend option, DefaultBackend when unset); connectors route calls
	// by it (Conns).
	Backend string
	Tools   []*Tool
	Action  *Action

	// call is what each call of the capability uses, prepared once with
	// the capability (callPlan); nil for a Capability made by hand, which
	// prepares it per call.
	call *callPlan
}

// Registry is the set of exposed capabilities.
type Registry struct {
	caps    []*Capability
	tools   map[string]*Tool
	actions []*Action
	scopes  map[string]Scope // declared by services (scopes.go)
	// unreached: backends never reached when the registry was built
	// (Discovery); the scopes they declare are not known yet.
	unreached []string
}

// Unreached names the backends that discovery had not reached yet (not
// once) when it built r: r cannot know the services and scopes they
// declare. Empty once every backend has answered at least once.
func (r *Registry) Unreached() []string { return r.unreached }

// FromFiles scans every service in files (usually protoregistry.GlobalFiles,
// populated by importing the generated packages) for capability RPCs.
func FromFiles(files *protoregistry.Files) (*Registry, error) {
	var services []protoreflect.ServiceDescriptor
	files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			services = append(services, fd.Services().Get(i))
		}
		return true
	})
	sort.Slice(services, func(i, j int) bool { return services[i].FullName() < services[j].FullName() })
	return New(services...)
}

// New builds a registry from the given services; RPCs without options are
// ignored. It returns every problem found, joined.
func New(services ...protoreflect.ServiceDescriptor) (*Registry, error) {
	return build(services, rules{checkScopes: true})
}

// rules are what a connector adds to the registry's own rules
// (DiscoveryOptions).
type rules struct {
	// checkScopes: a scope required but declared by no service is a
	// problem (discovery checks it once every backend's services are in).
	checkScopes bool
	// reserved: an operation at one of these paths (the connector's own,
	// DiscoveryOptions.ReservedPaths) is a problem.
	reserved []string
	// underscoreTools: tool names are published with "_" for "."
	// (DiscoveryOptions.UnderscoreToolNames); two tools published under
	// one name are a problem.
	underscoreTools bool
}

// UnderscoreToolName is name as published in the underscore style (the
// mcp-gateway's MCP_TOOL_NAME_STYLE=underscore): every "." replaced by
// "_", "identity.profile_card" → "identity_profile_card".
func UnderscoreToolName(name string) string { return strings.ReplaceAll(name, ".", "_") }

// build is New under the connector's rules.
func build(services []protoreflect.ServiceDescriptor, rs rules) (*Registry, error) {
	r := &Registry{tools: map[string]*Tool{}, scopes: map[string]Scope{}}
	var problems []string
	routes := map[string]*Action{}
	paths := map[string]*Action{}
	opIDs := map[string]string{}
	// published: tools by the name they are published under, in the
	// underscore style ("notes.list" and "notes_list" are both
	// "notes_list").
	published := map[string]*Tool{}
	for _, sd := range services {
		problems = append(problems, r.declareScopes(sd)...)
		for i := 0; i < sd.Methods().Len(); i++ {
			md := sd.Methods().Get(i)
			c, errs := capabilityOf(md)
			problems = append(problems, errs...)
			if c == nil {
				continue
			}
			for _, t := range c.Tools {
				if prev, dup := r.tools[t.Name]; dup {
					problems = append(problems, fmt.Sprintf("%s: tool %q already declared by %s", md.FullName(), t.Name, prev.Capability.Method.FullName()))
					continue
				}
				if rs.underscoreTools {
					n := UnderscoreToolName(t.Name)
					if prev, dup := published[n]; dup {
						problems = append(problems, fmt.Sprintf("%s: tool %q is published as %q, the name of tool %q already declared by %s (tool names are published with \"_\" for \".\")",
							md.FullName(), t.Name, n, prev.Name, prev.Capability.Method.FullName()))
						continue
					}
					published[n] = t
				}
				r.tools[t.Name] = t
			}
			if a := c.Action; a != nil {
				if slices.Contains(rs.reserved, a.Path) {
					problems = append(problems, fmt.Sprintf("%s: action path %q is served by the actions-api itself", md.FullName(), a.Path))
				}
				// Paths are compared with their parameters' names erased:
				// /actions/items/{id} and /actions/items/{item_id} match
				// the same requests, so with one method they are one
				// route (the router would send one's calls to the other),
				// and with any methods one OpenAPI path ("Templated paths
				// with the same hierarchy but different templated names
				// MUST NOT exist as they are identical", OpenAPI 3.1,
				// Paths Object).
				shape := paramRE.ReplaceAllString(a.Path, "{}")
				route := a.Method + " " + shape
				if prev, dup := routes[route]; dup {
					as := ""
					if prev.Path != a.Path {
						as = fmt.Sprintf(" as %s %s: paths that differ only in their parameters' names are one route", prev.Method, prev.Path)
					}
					problems = append(problems, fmt.Sprintf("%s: route %s %s already declared by %s%s", md.FullName(), a.Method, a.Path, prev.Capability.Method.FullName(), as))
				} else if prev, dup := paths[shape]; dup && prev.Path != a.Path {
					problems = append(problems, fmt.Sprintf("%s: action path %s differs from %s, already declared by %s, only in its parameters' names: an OpenAPI document cannot hold both (OpenAPI 3.1, Paths Object); use the same names",
						md.FullName(), a.Path, prev.Path, prev.Capability.Method.FullName()))
				} else {
					routes[route] = a
					if !dup {
						paths[shape] = a
					}
				}
				if prev, dup := opIDs[a.OperationID]; dup {
					problems = append(problems, fmt.Sprintf("%s: operationId %q already declared by %s", md.FullName(), a.OperationID, prev))
				}
				opIDs[a.OperationID] = string(md.FullName())
				r.actions = append(r.actions, a)
			}
			r.caps = append(r.caps, c)
		}
	}
	if rs.checkScopes {
		problems = append(problems, r.checkRequiredScopes()...)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("capability registry:\n  - %s", strings.Join(problems, "\n  - "))
	}
	return r, nil
}

var (
	toolNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)
	opIDRE     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	scopeRE    = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]+$`) // RFC 6749 scope-token
	pathRE     = regexp.MustCompile(`^(/([a-z0-9][a-z0-9._-]*|\{[a-z][a-z0-9_]*\}))+$`)
	paramRE    = regexp.MustCompile(`\{([a-z][a-z0-9_]*)\}`)
)

// ActionsRoutes are the paths the actions ingress routes to the
// actions-api (charts/tollgate/files/routes.yaml) where an operation's
// path can be: exact ones and prefixes (a prefix matches whole path
// segments, as a Kubernetes Ingress Prefix rule does). The ingress routes
// the actions-api /.well-known paths too, which pathRE already refuses. A
// path outside them would be published in the OpenAPI document but never
// reach the actions-api (GET /oauth/token is the auth-server's, /orders
// the ingress' 404), so the registry refuses it. The routes package's
// tests check these against the table.
func ActionsRoutes() (exact, prefixes []string) {
	return []string{"/health", "/privacy"}, []string{"/actions"}
}

// routedToActions reports whether path is one of ActionsRoutes.
func routedToActions(path string) bool {
	exact, prefixes := ActionsRoutes()
	if slices.Contains(exact, path) {
		return true
	}
	for _, p := range prefixes {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// actionsRoutesText names ActionsRoutes for a refusal: "/actions/…, /health
// and /privacy".
func actionsRoutesText() string {
	exact, prefixes := ActionsRoutes()
	var names []string
	for _, p := range prefixes {
		names = append(names, p+"/…")
	}
	names = append(names, exact...)
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

func capabilityOf(md protoreflect.MethodDescriptor) (*Capability, []string) {
	opts, _ := resolveOptions(md.Options()).(*descriptorpb.MethodOptions)
	if opts == nil {
		return nil, nil
	}
	tools, _ := proto.GetExtension(opts, optionsv1.E_McpTool).([]*optionsv1.McpTool)
	action, _ := proto.GetExtension(opts, optionsv1.E_ActionsOperation).(*optionsv1.ActionsOperation)
	if len(tools) == 0 && action == nil {
		return nil, nil
	}
	name := string(md.FullName())
	var problems []string
	bad := func(format string, args ...any) {
		problems = append(problems, name+": "+fmt.Sprintf(format, args...))
	}
	if md.IsStreamingClient() || md.IsStreamingServer() {
		bad("streaming RPCs cannot be capabilities")
	}
	c := &Capability{Method: md, FullMethod: fmt.Sprintf("/%s/%s", md.Parent().FullName(), md.Name()), Backend: DefaultBackend}
	c.call = newCallPlan(md)
	if sd, ok := md.Parent().(protoreflect.ServiceDescriptor); ok {
		if so, _ := resolveOptions(sd.Options()).(*descriptorpb.ServiceOptions); so != nil {
			if b, _ := proto.GetExtension(so, optionsv1.E_Backend).(string); b != "" {
				c.Backend = b
			}
		}
	}
	checkScopes := func(what string, scopes []string) {
		for _, s := range scopes {
			if !scopeRE.MatchString(s) {
				bad("%s: %q is not a valid scope", what, s)
			}
		}
	}
	for _, t := range tools {
		if !toolNameRE.MatchString(t.GetName()) || len(t.GetName()) > 64 {
			bad("tool name %q must be dotted lower-case words, at most 64 characters", t.GetName())
		}
		if t.GetTitle() == "" || t.GetDescription() == "" {
			bad("tool %q needs a title and a description", t.GetName())
		}
		if u := t.GetWidgetUri(); u != "" && !strings.HasPrefix(u, "ui://") {
			bad("tool %q: widget_uri %q must be a ui:// URI", t.GetName(), u)
		}
		checkScopes("tool "+t.GetName(), t.GetRequiredScopes())
		ann := toolAnnotations(t.GetAnnotations())
		if ann.ReadOnly() && hint(ann.DestructiveHint, false) {
			// MCP reads destructiveHint only when readOnlyHint is false;
			// a tool declaring both is a mistake one way or the other, and
			// its read_only would make the GPT Actions operation
			// not consequential (called without asking).
			bad("tool %q is declared both read_only and destructive: a read-only tool changes nothing; drop one", t.GetName())
		}
		c.Tools = append(c.Tools, &Tool{
			Name: t.GetName(), Title: t.GetTitle(), Description: t.GetDescription(),
			RequiredScopes: slices.Clone(t.GetRequiredScopes()),
			Annotations:    ann,
			WidgetURI:      t.GetWidgetUri(), InvokingMessage: t.GetInvokingMessage(), InvokedMessage: t.GetInvokedMessage(),
			Capability: c,
		})
	}
	if action != nil {
		a := &Action{
			Method: strings.ToUpper(action.GetMethod()), Path: action.GetPath(), OperationID: action.GetOperationId(),
			Summary: action.GetSummary(), Description: action.GetDescription(),
			RequiredScopes: slices.Clone(action.GetRequiredScopes()), Consequential: action.GetConsequential(),
			Capability: c,
		}
		scalar := func(f protoreflect.FieldDescriptor) bool {
			return !f.IsList() && !f.IsMap() && (!isMessage(f) || scalarMessage(f.Message().FullName()))
		}
		for _, m := range paramRE.FindAllStringSubmatch(a.Path, -1) {
			f := md.Input().Fields().ByName(protoreflect.Name(m[1]))
			switch {
			case f == nil:
				bad("action path parameter {%s} is not a field of %s", m[1], md.Input().FullName())
			case !scalar(f):
				bad("action path parameter {%s} must be a scalar field", m[1])
			case slices.Contains(a.PathParams, m[1]):
				bad("action path parameter {%s} appears twice", m[1])
			}
			a.PathParams = append(a.PathParams, m[1])
		}
		switch a.Method {
		case http.MethodGet, http.MethodDelete:
			for _, f := range fields(md.Input()) {
				if !scalar(f) {
					bad("%s action: request field %s must be a scalar to become a query or path parameter", a.Method, f.Name())
				}
			}
		case http.MethodPost:
		default:
			bad("action method %q must be GET, POST or DELETE", action.GetMethod())
		}
		if !pathRE.MatchString(a.Path) {
			bad("action path %q must be an absolute lower-case path", a.Path)
		} else if !routedToActions(a.Path) {
			bad("action path %q is not routed to the actions-api: the actions ingress sends it only %s (charts/tollgate/files/routes.yaml); use a path under /actions/", a.Path, actionsRoutesText())
		}
		if !opIDRE.MatchString(a.OperationID) {
			bad("operationId %q must be an identifier", a.OperationID)
		}
		// The limits are in characters, not bytes (a summary in Japanese
		// takes three bytes a character).
		if a.Summary == "" || utf8.RuneCountInString(a.Summary) > MaxSummary {
			bad("action summary must be 1 to %d characters", MaxSummary)
		}
		// An operation description over MaxOperationDescription (the GPT
		// Actions limit) but within MaxDescription is not refused: the
		// service's MCP tools, which it does not concern, and its
		// operation stay served, and the actions-api reports the document
		// over the limits (openapi.CheckLimits). Over MaxDescription, the
		// bound the registry has always held it to, it is refused.
		if utf8.RuneCountInString(a.Description) > MaxDescription {
			bad("action description is longer than %d characters", MaxDescription)
		}
		// consequential (x-openai-isConsequential: ChatGPT asks the user
		// before each call) says what the tools' read_only hints say (MCP
		// clients run a read-only tool without asking): an operation is
		// consequential unless every tool of its RPC is read-only. Not
		// only the first tool's: a destructive second tool would be called
		// without asking. And a read-only capability is not consequential:
		// the user would be asked before each read that ChatGPT Apps run
		// unasked, and the connectors would not call it again after a
		// timeout (Action.RetrySafe) where the MCP tool is.
		if len(tools) > 0 {
			var writes []string
			for _, t := range tools {
				if !t.GetAnnotations().GetReadOnly() {
					writes = append(writes, strconv.Quote(t.GetName()))
				}
			}
			switch {
			case !a.Consequential && len(writes) > 0:
				what := "tool " + writes[0] + " is"
				if len(writes) > 1 {
					what = "tools " + strings.Join(writes, ", ") + " are"
				}
				bad("action is declared not consequential but %s not read-only: set consequential: true", what)
			case a.Consequential && len(writes) == 0:
				bad("action is declared consequential but every tool is read-only: a read-only capability must not be marked consequential")
			}
		}
		checkScopes("action "+a.OperationID, a.RequiredScopes)
		c.Action = a
	}
	problems = append(problems, jsonNameConflicts(name, md.Input())...)
	for _, f := range append(fields(md.Input()), fields(md.Output())...) {
		if d := FieldDescription(f); utf8.RuneCountInString(d) > MaxDescription {
			bad("field %s: description longer than %d characters", f.FullName(), MaxDescription)
		}
	}
	return c, problems
}

// jsonNameConflicts reports the fields of the request message and of the
// messages it holds whose names protojson could not tell apart: it takes
// a field by its JSON name first, then by its proto name, so a field whose
// JSON name is another's name or JSON name (foo_bar and fooBar) would get
// the value meant for the other, and the inputSchema would say otherwise.
// protoc refuses such fields in proto3; a backend's descriptors may come
// from anywhere.
func jsonNameConflicts(method string, in protoreflect.MessageDescriptor) []string {
	var problems []string
	seen := map[protoreflect.FullName]bool{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] || wellKnownJSON(md.FullName()) {
			return
		}
		seen[md.FullName()] = true
		names := map[string]protoreflect.FieldDescriptor{}
		for _, f := range fields(md) {
			names[string(f.Name())] = f
		}
		jsonNames := map[string]protoreflect.FieldDescriptor{}
		reported := map[[2]protoreflect.Name]bool{}
		for _, f := range fields(md) {
			jn := f.JSONName()
			other, ok := names[jn]
			if !ok || other == f {
				other, ok = jsonNames[jn]
			}
			jsonNames[jn] = f
			if !ok || reported[[2]protoreflect.Name{other.Name(), f.Name()}] {
				continue
			}
			reported[[2]protoreflect.Name{f.Name(), other.Name()}] = true
			problems = append(problems, fmt.Sprintf("%s: fields %s and %s of %s both answer to the JSON name %q, and protojson could not tell them apart; rename one or set json_name", method, f.Name(), other.Name(), md.FullName(), jn))
		}
		for _, f := range fields(md) {
			if f.IsMap() {
				f = f.MapValue()
			}
			if isMessage(f) {
				walk(f.Message())
			}
		}
	}
	walk(in)
	return problems
}

// Capabilities returns every capability in declaration order.
func (r *Registry) Capabilities() []*Capability { return r.caps }

// Tools returns every tool sorted by name.
func (r *Registry) Tools() []*Tool {
	out := make([]*Tool, 0, len(r.tools))
	for _, t := range r.tools {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Tool returns the tool called name.
func (r *Registry) Tool(name string) (*Tool, bool) {
	t, ok := r.tools[name]
	return t, ok
}

// Actions returns every action sorted by path and method.
func (r *Registry) Actions() []*Action {
	out := slices.Clone(r.actions)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Method < out[j].Method
	})
	return out
}

// RequiredScopes returns every scope any tool or action requires, sorted.
func (r *Registry) RequiredScopes() []string {
	set := map[string]bool{}
	for _, t := range r.tools {
		for _, s := range t.RequiredScopes {
			set[s] = true
		}
	}
	for _, a := range r.actions {
		for _, s := range a.RequiredScopes {
			set[s] = true
		}
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func fields(md protoreflect.MessageDescriptor) []protoreflect.FieldDescriptor {
	out := make([]protoreflect.FieldDescriptor, md.Fields().Len())
	for i := range out {
		out[i] = md.Fields().Get(i)
	}
	return out
}

// FieldDescription returns the field_description option of f.
func FieldDescription(f protoreflect.FieldDescriptor) string {
	opts, _ := resolveOptions(f.Options()).(*descriptorpb.FieldOptions)
	if opts == nil {
		return ""
	}
	s, _ := proto.GetExtension(opts, optionsv1.E_FieldDescription).(string)
	return s
}

// MessageDescription returns the message_description option of m.
func MessageDescription(m protoreflect.MessageDescriptor) string {
	opts, _ := resolveOptions(m.Options()).(*descriptorpb.MessageOptions)
	if opts == nil {
		return ""
	}
	s, _ := proto.GetExtension(opts, optionsv1.E_MessageDescription).(string)
	return s
}

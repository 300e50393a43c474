// Package openapi generates the OpenAPI 3.1 document that GPT builders
// import into a GPT. It is built from the capability registry, the same
// source as the REST routes, so the document and the API cannot drift:
// nothing here names an operation.
package openapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/tollgate/tollgate/services/platform/registry"
)

// Limits GPT Actions put on an imported document.
const (
	MaxSummary              = registry.MaxSummary              // operation summaries
	MaxOperationDescription = registry.MaxOperationDescription // operation descriptions
	MaxDescription          = registry.MaxDescription          // every other description
	// MaxDocument is our own budget, under the 100,000 characters a GPT
	// accepts, so that adding capabilities does not hit the limit unseen.
	// It counts the bytes of the document as served and exported
	// (compact JSON, Document.JSON), never fewer than its characters.
	// Every operation repeats its error responses (400–503, ~0.8 KB of
	// compact JSON each): the core's five operations make ~19,700 bytes.
	MaxDocument = 75_000
)

// SecurityScheme is the name of the OAuth 2 scheme in the document.
const SecurityScheme = "oauth2"

// ErrorSchema is the name of the one error schema.
const ErrorSchema = "Error"

// Error codes of the JSON error body, published as the enum of its
// "error" property and documented in docs/reference/actions.md.
var ErrorCodes = []string{
	"invalid_request",
	"invalid_token",
	"insufficient_scope",
	"not_found",
	"conflict",
	"method_not_allowed",
	"request_too_large",
	"rate_limited",
	"temporarily_unavailable",
	"server_error",
}

// Options say where the document points.
type Options struct {
	// ServerURL is the public Actions origin (ACTIONS_PUBLIC_URL).
	ServerURL string
	// OAuthBaseURL is the origin of the OAuth endpoints: the authorization
	// and token URLs are its /oauth/authorize and /oauth/token. It is the
	// issuer (PUBLIC_ISSUER_URL) unless ACTIONS_OAUTH_BASE_URL says otherwise.
	OAuthBaseURL string
	// Version is info.version, the version of the API contract.
	Version string
}

// APIVersion is the version of the API contract published in info.version.
const APIVersion = "1.0.0"

// Document is the subset of an OpenAPI 3.1 document that we generate. Field
// order is the conventional one, so the JSON reads well.
type Document struct {
	OpenAPI    string               `json:"openapi"`
	Info       Info                 `json:"info"`
	Servers    []Server             `json:"servers"`
	Paths      map[string]*PathItem `json:"paths"`
	Components Components           `json:"components"`
}

// Info is the document's info object.
type Info struct {
	Title       string `json:"title"`
	Description string `json:"description"`
	Version     string `json:"version"`
}

// Server is one entry of servers.
type Server struct {
	URL string `json:"url"`
}

// PathItem holds the operations of one path.
type PathItem struct {
	Get    *Operation `json:"get,omitempty"`
	Post   *Operation `json:"post,omitempty"`
	Delete *Operation `json:"delete,omitempty"`
}

// Operation is one API operation.
type Operation struct {
	OperationID string                `json:"operationId"`
	Summary     string                `json:"summary"`
	Description string                `json:"description,omitempty"`
	Parameters  []Parameter           `json:"parameters,omitempty"`
	RequestBody *RequestBody          `json:"requestBody,omitempty"`
	Responses   map[string]Response   `json:"responses"`
	Security    []map[string][]string `json:"security"`
	// Consequential tells ChatGPT whether to ask the user before calling.
	Consequential bool `json:"x-openai-isConsequential"`
}

// Parameter is a query parameter.
type Parameter struct {
	Name        string          `json:"name"`
	In          string          `json:"in"`
	Description string          `json:"description,omitempty"`
	Required    bool            `json:"required"`
	Schema      registry.Schema `json:"schema"`
}

// RequestBody is a JSON request body.
type RequestBody struct {
	Required bool                 `json:"required"`
	Content  map[string]MediaType `json:"content"`
}

// Response is one response of an operation.
type Response struct {
	Description string               `json:"description"`
	Headers     map[string]Header    `json:"headers,omitempty"`
	Content     map[string]MediaType `json:"content,omitempty"`
}

// Header is a response header.
type Header struct {
	Description string          `json:"description"`
	Schema      registry.Schema `json:"schema"`
}

// MediaType holds a schema.
type MediaType struct {
	Schema registry.Schema `json:"schema"`
}

// Components are the shared schemas and the security scheme.
type Components struct {
	Schemas         map[string]registry.Schema `json:"schemas"`
	SecuritySchemes map[string]SecuritySchemeT `json:"securitySchemes"`
}

// SecuritySchemeT is an OAuth 2 security scheme.
type SecuritySchemeT struct {
	Type        string     `json:"type"`
	Description string     `json:"description"`
	Flows       OAuthFlows `json:"flows"`
}

// OAuthFlows holds the authorization-code flow.
type OAuthFlows struct {
	AuthorizationCode AuthorizationCodeFlow `json:"authorizationCode"`
}

// AuthorizationCodeFlow names the issuer's endpoints and the scopes.
type AuthorizationCodeFlow struct {
	AuthorizationURL string            `json:"authorizationUrl"`
	TokenURL         string            `json:"tokenUrl"`
	Scopes           map[string]string `json:"scopes"`
}

// Build returns the document for reg. Component names are unique
// (schemaNames): two backends' messages of one name each get their own. It
// does not check the GPT Actions limits: a
// document over them is still the API's description, and the caller says
// what CheckLimits finds (the actions-api serves it and reports the
// problem; the export refuses to write it).
func Build(reg *registry.Registry, o Options) (*Document, error) {
	if o.ServerURL == "" || o.OAuthBaseURL == "" {
		return nil, fmt.Errorf("openapi: server URL and OAuth base URL are required")
	}
	if o.Version == "" {
		o.Version = APIVersion
	}
	issuer := strings.TrimRight(o.OAuthBaseURL, "/")
	d := &Document{
		OpenAPI: "3.1.0",
		Info: Info{
			Title:       "Tollgate Actions API",
			Description: "Operations a GPT can call on behalf of the user who linked their account. Every protected operation needs an OAuth 2.1 access token issued for this API.",
			Version:     o.Version,
		},
		Servers: []Server{{URL: strings.TrimRight(o.ServerURL, "/")}},
		Paths:   map[string]*PathItem{},
		Components: Components{
			Schemas: map[string]registry.Schema{ErrorSchema: errorSchema()},
			SecuritySchemes: map[string]SecuritySchemeT{SecurityScheme: {
				Type:        "oauth2",
				Description: "Account linking with Tollgate's OAuth 2.1 provider (authorization code with PKCE where the client supports it).",
				Flows: OAuthFlows{AuthorizationCode: AuthorizationCodeFlow{
					AuthorizationURL: issuer + "/oauth/authorize",
					TokenURL:         issuer + "/oauth/token",
					Scopes:           map[string]string{},
				}},
			}},
		},
	}
	names := newSchemaNames(d.Components.Schemas)
	for _, a := range reg.Actions() {
		op := operation(a, names)
		for _, s := range a.RequiredScopes {
			// The words of the consent page: the OpenID Connect scopes' and
			// those a capability declared with its scope (registry).
			sc, _ := reg.Scope(s)
			d.Components.SecuritySchemes[SecurityScheme].Flows.AuthorizationCode.Scopes[s] = sc.Description
		}
		item := d.Paths[a.Path]
		if item == nil {
			item = &PathItem{}
			d.Paths[a.Path] = item
		}
		switch a.Method {
		case http.MethodGet:
			item.Get = op
		case http.MethodPost:
			item.Post = op
		case http.MethodDelete:
			item.Delete = op
		default:
			return nil, fmt.Errorf("openapi: %s: method %s is not supported", a.OperationID, a.Method)
		}
	}
	return d, nil
}

// schemaNames gives each distinct schema its component name, the same
// for the same document: the preferred name (a message's short name), else
// the owner's full name, else the full name with "_2", "_3"… Two schemas
// are the same when their owner and content are: a message two operations
// answer is one component, and the messages of one name in two backends
// (a package-less "Note" beside another backend's notes.v1.Note, or one
// package in two backends that define it apart) are two, never a reason
// to refuse the whole document.
type schemaNames struct {
	owners  map[string]string // component name → identity
	named   map[string]string // identity → component name
	schemas map[string]registry.Schema
}

func newSchemaNames(schemas map[string]registry.Schema) *schemaNames {
	n := &schemaNames{owners: map[string]string{}, named: map[string]string{}, schemas: schemas}
	for name := range schemas {
		n.owners[name] = "(" + name + ")"
	}
	return n
}

// add puts s, the schema of owner (a message's full name, with "-input"
// for a request body's), in the components unless they hold it already,
// and returns its component name.
func (n *schemaNames) add(preferred, owner string, s registry.Schema) string {
	name, isNew := n.name(preferred, owner, s)
	if isNew {
		n.schemas[name] = s
	}
	return name
}

// name is the component name of owner's schema whose content is s (for a
// recursive def, everything it can reach: defIdentity), preferring
// preferred; isNew when it has none yet.
func (n *schemaNames) name(preferred, owner string, s any) (string, bool) {
	b, _ := json.Marshal(s) // map keys sorted: the same content, the same bytes
	id := owner + "\x00" + string(b)
	if name, ok := n.named[id]; ok {
		return name, false
	}
	name := preferred
	if _, taken := n.owners[name]; taken {
		name = owner
		for i := 2; ; i++ {
			if _, taken := n.owners[name]; !taken {
				break
			}
			name = fmt.Sprintf("%s_%d", owner, i)
		}
	}
	n.owners[name], n.named[id] = id, name
	return name, true
}

func schemaRef(name string) registry.Schema {
	return registry.Schema{"$ref": "#/components/schemas/" + name}
}

// renameRefs returns s with each "$ref" to a component in renamed
// pointing at its new name; s itself is not changed.
func renameRefs(s any, renamed map[string]string) any {
	switch t := s.(type) {
	case registry.Schema:
		c := make(registry.Schema, len(t))
		for k, v := range t {
			if ref, ok := v.(string); ok && k == "$ref" {
				if to, ok := renamed[strings.TrimPrefix(ref, "#/components/schemas/")]; ok && strings.HasPrefix(ref, "#/components/schemas/") {
					v = "#/components/schemas/" + to
				}
			} else {
				v = renameRefs(v, renamed)
			}
			c[k] = v
		}
		return c
	case []any:
		c := make([]any, len(t))
		for i, v := range t {
			c[i] = renameRefs(v, renamed)
		}
		return c
	}
	return s
}

// defIdentity is what makes the def name of defs the same as another
// operation's: its content and that of every def it refers to, at any
// depth, by the registry's names. Its content alone names the defs it
// refers to, not what they hold: two backends' recursive pkg.Tree of one
// content, each with a leaf of its own pkg.Leaf, are two schemas (the
// second Tree took the first's, and with it the first backend's Leaf).
func defIdentity(name string, defs map[string]registry.Schema) map[string]registry.Schema {
	reached := map[string]registry.Schema{}
	var visit func(name string)
	visit = func(name string) {
		s, ok := defs[name]
		if _, seen := reached[name]; seen || !ok {
			return
		}
		reached[name] = s
		walkRefs(s, func(ref string) {
			if to, ok := strings.CutPrefix(ref, "#/components/schemas/"); ok {
				visit(to)
			}
		})
	}
	visit(name)
	return reached
}

// walkRefs calls f with each "$ref" in s.
func walkRefs(s any, f func(ref string)) {
	switch t := s.(type) {
	case registry.Schema:
		for k, v := range t {
			if ref, ok := v.(string); ok && k == "$ref" {
				f(ref)
			} else {
				walkRefs(v, f)
			}
		}
	case []any:
		for _, v := range t {
			walkRefs(v, f)
		}
	}
}

func operation(a *registry.Action, names *schemaNames) *Operation {
	c := a.Capability
	out := c.Method.Output()
	// Recursive messages are components of their own, referred to
	// (registry.Capability.Schemas names them "<full name>-input" or
	// "-output", names no message has). A name another backend's message
	// of that full name already holds is given another (schemaNames), and
	// the refs of this operation's schemas follow it.
	in, outSchema, defs := c.Schemas("#/components/schemas/")
	// Names first (by the schemas as the registry wrote them), then the
	// schemas, whose refs may name a def renamed.
	renamed, fresh := map[string]string{}, map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(defs)) {
		got, isNew := names.name(name, name, defIdentity(name, defs))
		if got != name {
			renamed[name] = got
		}
		if isNew {
			fresh[name] = got
		}
	}
	for name, got := range fresh {
		names.schemas[got] = renameRefs(defs[name], renamed).(registry.Schema)
	}
	if len(renamed) > 0 {
		in = renameRefs(in, renamed).(registry.Schema)
		outSchema = renameRefs(outSchema, renamed).(registry.Schema)
	}
	ref := schemaRef(names.add(string(out.Name()), string(out.FullName()), outSchema))
	op := &Operation{
		OperationID:   a.OperationID,
		Summary:       a.Summary,
		Description:   a.Description,
		Consequential: a.Consequential,
		Security:      []map[string][]string{},
		Responses: map[string]Response{
			"200": {Description: "Success.", Content: jsonContent(ref)},
		},
	}
	protected := len(a.RequiredScopes) > 0
	if protected {
		op.Security = []map[string][]string{{SecurityScheme: slices.Clone(a.RequiredScopes)}}
	}
	props, _ := in["properties"].(registry.Schema)
	switch a.Method {
	case http.MethodGet, http.MethodDelete:
		// Path parameters ("{field}" in the route) are required (OpenAPI
		// 3.1 §4.8.12.1); every other field is an optional query parameter.
		fields := c.Method.Input().Fields()
		for i := 0; i < fields.Len(); i++ {
			name := string(fields.Get(i).Name())
			s := paramSchema(fields.Get(i), props[name].(registry.Schema))
			desc, _ := s["description"].(string)
			delete(s, "description")
			p := Parameter{Name: name, In: "query", Description: desc, Schema: s}
			if slices.Contains(a.PathParams, name) {
				p.In, p.Required = "path", true
			}
			if fields.Get(i).Cardinality() == protoreflect.Required {
				p.Required = true // a proto2 required field (registry.Capability.CheckRequired)
			}
			op.Parameters = append(op.Parameters, p)
		}
	case http.MethodPost:
		inMsg := c.Method.Input()
		if len(a.PathParams) == 0 {
			// Owned apart from the message's output schema: a method may
			// answer with its request's type (Update(Note) returns (Note)),
			// and the two schemas differ (nullable, required fields).
			inRef := schemaRef(names.add(string(inMsg.Name()), string(inMsg.FullName())+"-input", in))
			op.RequestBody = &RequestBody{Required: bodyRequired(in), Content: jsonContent(inRef)}
			break
		}
		// A "{field}" of a POST path is a path parameter like a GET's, and
		// the body holds the other fields: its schema is the request
		// message's without them, inline (the message's own schema would
		// offer the model a second place for the path's value).
		// Nor does it hold the other members of a path parameter's oneof:
		// a body naming one is a 400 (api.setPathParams), so they leave
		// the body's properties and its "not two members" constraint.
		notBody := slices.Clone(a.PathParams)
		for _, name := range a.PathParams {
			if f := inMsg.Fields().ByName(protoreflect.Name(name)); f != nil {
				if o := f.ContainingOneof(); o != nil && !o.IsSynthetic() {
					for j := 0; j < o.Fields().Len(); j++ {
						notBody = append(notBody, string(o.Fields().Get(j).Name()))
					}
				}
			}
		}
		body, bodyProps := maps.Clone(in), registry.Schema{}
		for name, p := range props {
			if !slices.Contains(notBody, name) {
				bodyProps[name] = p
			}
		}
		body["properties"] = bodyProps
		if req, ok := in["required"].([]string); ok {
			// A required field given in the path is not the body's.
			var bodyReq []string
			for _, name := range req {
				if !slices.Contains(notBody, name) {
					bodyReq = append(bodyReq, name)
				}
			}
			delete(body, "required")
			if len(bodyReq) > 0 {
				body["required"] = bodyReq
			}
		}
		if not, ok := in["not"].(registry.Schema); ok {
			delete(body, "not")
			if not := withoutPairs(not, notBody); not != nil {
				body["not"] = not
			}
		}
		for _, name := range a.PathParams {
			s := paramSchema(inMsg.Fields().ByName(protoreflect.Name(name)), props[name].(registry.Schema))
			desc, _ := s["description"].(string)
			delete(s, "description")
			op.Parameters = append(op.Parameters, Parameter{Name: name, In: "path", Description: desc, Required: true, Schema: s})
		}
		op.RequestBody = &RequestBody{Required: bodyRequired(body), Content: jsonContent(body)}
	}
	errRef := schemaRef(ErrorSchema)
	errResp := func(desc string, headers map[string]Header) Response {
		return Response{Description: desc, Headers: headers, Content: jsonContent(errRef)}
	}
	// A GET or DELETE that carries a body is refused once the caller is
	// authenticated (api.checkBody, RFC 9110 sections 9.3.1, 9.3.5).
	badRequest := "The request is malformed: an unknown, repeated or invalid parameter, a body"
	if a.Method == http.MethodPost {
		// Every 400 decode answers for a POST (api.decode).
		badRequest = "The request is malformed: a body that is not a JSON object of the request's fields, Content-Type given twice, query parameters"
		if len(a.PathParams) > 0 {
			badRequest += ", an invalid path parameter, one repeated in the body or a body field of its oneof"
		}
	}
	if protected {
		badRequest += ", more than one Authorization header, or an access token in the query string"
	}
	var challenge map[string]Header
	if protected {
		challenge = map[string]Header{"WWW-Authenticate": {
			Description: "Bearer challenge (RFC 6750) naming the error, the scopes the operation needs and the protected resource metadata URL (resource_metadata, RFC 9728 section 5.1).",
			Schema:      registry.Schema{"type": "string"},
		}}
	}
	// A repeated Authorization header or a token in the query is the
	// bearer error invalid_request, a 400 with its challenge (RFC 6750
	// section 3.1; api.authenticate).
	op.Responses["400"] = errResp(badRequest+" (error invalid_request).", challenge)
	if protected {
		op.Responses["401"] = errResp("The access token is missing, malformed, expired, revoked, not signed by the issuer or issued for another audience (error invalid_token). Link the account again.", challenge)
		op.Responses["403"] = errResp("The access token lacks a scope this operation needs (error insufficient_scope).", challenge)
	}
	// A capability backend may answer NotFound and AlreadyExists to any
	// operation (fault.AnswerFor: 404, 409).
	if len(a.PathParams) > 0 {
		op.Responses["404"] = errResp("Nothing of the caller's has this "+strings.Join(a.PathParams, " and ")+" (error not_found).", nil)
	} else {
		op.Responses["404"] = errResp("Nothing of the caller's matches the request (error not_found).", nil)
	}
	op.Responses["409"] = errResp("The request conflicts with something that already exists (error conflict).", nil)
	if a.Method == http.MethodPost {
		op.Responses["413"] = errResp("The request body is too large (error request_too_large).", nil)
		// api.checkBodyHeaders, RFC 9110 sections 15.5.16, 12.5.1, 12.5.3.
		op.Responses["415"] = errResp("The body is not sent as application/json, or has a Content-Encoding: send it uncompressed as application/json (error invalid_request).", map[string]Header{
			"Accept":          {Description: "application/json, when the Content-Type was refused (RFC 9110 section 15.5.16).", Schema: registry.Schema{"type": "string"}},
			"Accept-Encoding": {Description: "identity, when the Content-Encoding was refused (RFC 9110 section 12.5.3).", Schema: registry.Schema{"type": "string"}},
		})
	}
	op.Responses["429"] = errResp("Too many calls (error rate_limited). Wait for the number of seconds in Retry-After before calling again.", map[string]Header{
		"Retry-After": {Description: "Seconds to wait before retrying.", Schema: registry.Schema{"type": "integer", "minimum": 1}},
	})
	op.Responses["500"] = errResp("Unexpected server error (error server_error).", nil)
	unavailable := "A backend the API depends on is unavailable (error temporarily_unavailable). Retry after the number of seconds in Retry-After."
	if !a.RetrySafe() {
		// A write the backend may have done before the call ran out of time.
		unavailable = "A backend the API depends on is unavailable or did not answer in time (error temporarily_unavailable). When the error_description says the change may have been made, check before repeating the call; otherwise retry after the number of seconds in Retry-After."
	}
	op.Responses["503"] = errResp(unavailable, map[string]Header{
		"Retry-After": {Description: "Seconds to wait before retrying.", Schema: registry.Schema{"type": "integer", "minimum": 1}},
	})
	return op
}

// withoutPairs is a oneof constraint of registry's input schema ({"not":
// {"required": [a, b]}} or {"not": {"anyOf": [{"required": [a, b]}, …]}})
// without the pairs naming a field of names; nil when none is left.
func withoutPairs(not registry.Schema, names []string) registry.Schema {
	pairs := []any{not}
	if alts, ok := not["anyOf"].([]any); ok {
		pairs = alts
	}
	var kept []any
	for _, p := range pairs {
		ps, _ := p.(registry.Schema)
		req, _ := ps["required"].([]any)
		if !slices.ContainsFunc(req, func(n any) bool { s, _ := n.(string); return slices.Contains(names, s) }) {
			kept = append(kept, p)
		}
	}
	switch len(kept) {
	case 0:
		return nil
	case 1:
		if s, ok := kept[0].(registry.Schema); ok {
			return s
		}
	}
	return registry.Schema{"anyOf": kept}
}

// paramSchema is the schema of a path or query parameter of field f: a
// copy of s, its schema as a body field, with the pattern of the text the
// API takes for an integer (registry.IntegerParamPattern) where s has
// none — a 32-bit integer's schema is {"type": "integer"} alone, whose
// text a client could write "1e3" or "1.0" (a JSON integer in JSON
// Schema's sense), and the API refuses those in a parameter.
func paramSchema(f protoreflect.FieldDescriptor, s registry.Schema) registry.Schema {
	s = maps.Clone(s)
	if f == nil {
		return s
	}
	if p, ok := registry.IntegerParamPattern(f); ok {
		if _, has := s["pattern"]; !has {
			s["pattern"] = p
		}
	}
	return s
}

// bodyRequired: a request body whose schema requires a field (a proto2
// required field the path does not give) is required too — an empty body
// is a 400 (registry.Capability.DecodeBodyPartial, then CheckRequired);
// any other body may be left out, as the request's fields all are.
func bodyRequired(body registry.Schema) bool {
	req, _ := body["required"].([]string)
	return len(req) > 0
}

func jsonContent(s registry.Schema) map[string]MediaType {
	return map[string]MediaType{"application/json": {Schema: s}}
}

func errorSchema() registry.Schema {
	codes := make([]any, len(ErrorCodes))
	for i, c := range ErrorCodes {
		codes[i] = c
	}
	return registry.Schema{
		"type":        "object",
		"description": "The one error shape of the Actions API, used by every failure the API answers. A request Go's HTTP server refuses while reading it never reaches the API and is answered in plain text instead: for example a bad percent-escape in the path or a malformed header (400), headers over 1 MiB (431), a transfer coding other than chunked (501), an Expect other than 100-continue (417, no body), an HTTP version it does not serve (505).",
		"properties": registry.Schema{
			"error": registry.Schema{
				"type":        "string",
				"enum":        codes,
				"description": "Machine-readable error code.",
			},
			"error_description": registry.Schema{
				"type":        "string",
				"description": "Human-readable explanation, safe to show to the user.",
			},
		},
		"required":             []any{"error", "error_description"},
		"additionalProperties": false,
	}
}

// JSON encodes d as it is served and exported: compact, with a trailing
// newline. Indentation would be a third of the document, counted against
// the 100,000 characters a GPT imports (MaxDocument); a reader who wants
// it indents the document (jq .).
func (d *Document) JSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// CheckLimits returns every place where the document b (as served and
// exported: Document.JSON's bytes, not encoded again here) exceeds a GPT
// Actions limit (a *LimitsError), or nil: an operation's summary or
// description over 300 characters (MaxSummary, MaxOperationDescription),
// any other description over MaxDescription, the document over
// MaxDocument. Summaries and descriptions are
// counted in characters (Unicode code points), as the limits are, not in
// bytes: a 200-character summary in Japanese is within them.
func CheckLimits(b []byte) error {
	var problems []string
	if len(b) > MaxDocument {
		problems = append(problems, fmt.Sprintf("document is %d bytes, over the budget of %d (a GPT imports at most 100,000 characters): serve some backends from another actions-api (docs/reference/actions.md, \"Document size\")", len(b), MaxDocument))
	}
	var tree any
	if err := json.Unmarshal(b, &tree); err != nil {
		return err
	}
	walk(tree, "#", func(path, key, value string) {
		switch key {
		case "summary":
			if n := utf8.RuneCountInString(value); n > MaxSummary {
				problems = append(problems, fmt.Sprintf("%s: summary is %d characters, over %d", path, n, MaxSummary))
			}
		case "description":
			limit := MaxDescription
			if operationText(path) {
				limit = MaxOperationDescription
			}
			if n := utf8.RuneCountInString(value); n > limit {
				problems = append(problems, fmt.Sprintf("%s: description is %d characters, over %d", path, n, limit))
			}
		}
	})
	if len(problems) > 0 {
		return &LimitsError{Size: len(b), Problems: problems}
	}
	return nil
}

// operationText reports whether path (a JSON pointer of the document,
// "#/paths/~1actions~1notes/get/description") is a member of an Operation
// Object, whose description GPT Actions hold to the summary's limit.
func operationText(path string) bool {
	seg := strings.Split(path, "/")
	return len(seg) == 5 && seg[1] == "paths"
}

// LimitsError says where a document exceeds the GPT Actions limits.
type LimitsError struct {
	// Size is the document's length in bytes, as served.
	Size     int
	Problems []string
}

func (e *LimitsError) Error() string {
	return "openapi: document exceeds GPT Actions limits:\n  - " + strings.Join(e.Problems, "\n  - ")
}

// walk calls fn for every string value under a "summary" or "description"
// key (and any other key) of a decoded JSON tree.
func walk(v any, path string, fn func(path, key, value string)) {
	switch t := v.(type) {
	case map[string]any:
		for k, child := range t {
			p := path + "/" + strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
			if s, ok := child.(string); ok {
				fn(p, k, s)
				continue
			}
			walk(child, p, fn)
		}
	case []any:
		for i, child := range t {
			walk(child, fmt.Sprintf("%s/%d", path, i), fn)
		}
	}
}

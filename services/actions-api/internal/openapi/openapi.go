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

	"github.com/tollgate/tollgate/services/platform/registry"
)

// Limits GPT Actions put on an imported document.
const (
	MaxSummary     = registry.MaxSummary     // operation summaries
	MaxDescription = registry.MaxDescription // every other description
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

// Build returns the document for reg. It fails when two capabilities'
// messages share a name. It does not check the GPT Actions limits: a
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
	owners := map[string]string{} // schema name → message full name
	named := map[string]string{}  // message full name → schema name
	addSchema := func(name, owner string, s registry.Schema) (registry.Schema, error) {
		if n, ok := named[owner]; ok {
			name = n
		} else if prev, ok := owners[name]; ok && prev != owner {
			// Two backends may both have a message of this name: the
			// later one is named in full (component names may hold dots).
			name = owner
			if prev, ok := owners[name]; ok && prev != owner {
				return nil, fmt.Errorf("openapi: schema name %q is used by %s and %s", name, prev, owner)
			}
		}
		owners[name], named[owner] = owner, name
		d.Components.Schemas[name] = s
		return registry.Schema{"$ref": "#/components/schemas/" + name}, nil
	}
	owners[ErrorSchema] = "(error)"
	for _, a := range reg.Actions() {
		op, err := operation(a, addSchema)
		if err != nil {
			return nil, err
		}
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

type schemaAdder func(name, owner string, s registry.Schema) (registry.Schema, error)

func operation(a *registry.Action, add schemaAdder) (*Operation, error) {
	c := a.Capability
	out := c.Method.Output()
	// Recursive messages are components of their own, referred to
	// (registry.Capability.Schemas names them "<full name>-input" or
	// "-output", names no message has).
	in, outSchema, defs := c.Schemas("#/components/schemas/")
	for name, s := range defs {
		if _, err := add(name, name, s); err != nil {
			return nil, err
		}
	}
	ref, err := add(string(out.Name()), string(out.FullName()), outSchema)
	if err != nil {
		return nil, err
	}
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
			s := maps.Clone(props[name].(registry.Schema))
			desc, _ := s["description"].(string)
			delete(s, "description")
			p := Parameter{Name: name, In: "query", Description: desc, Schema: s}
			if slices.Contains(a.PathParams, name) {
				p.In, p.Required = "path", true
			}
			op.Parameters = append(op.Parameters, p)
		}
	case http.MethodPost:
		inMsg := c.Method.Input()
		if len(a.PathParams) == 0 {
			// Owned apart from the message's output schema: a method may
			// answer with its request's type (Update(Note) returns (Note)),
			// and the two schemas differ (nullable, required fields).
			inRef, err := add(string(inMsg.Name()), string(inMsg.FullName())+"-input", in)
			if err != nil {
				return nil, err
			}
			op.RequestBody = &RequestBody{Required: false, Content: jsonContent(inRef)}
			break
		}
		// A "{field}" of a POST path is a path parameter like a GET's, and
		// the body holds the other fields: its schema is the request
		// message's without them, inline (the message's own schema would
		// offer the model a second place for the path's value).
		body, bodyProps := maps.Clone(in), registry.Schema{}
		for name, p := range props {
			if !slices.Contains(a.PathParams, name) {
				bodyProps[name] = p
			}
		}
		body["properties"] = bodyProps
		for _, name := range a.PathParams {
			s := maps.Clone(props[name].(registry.Schema))
			desc, _ := s["description"].(string)
			delete(s, "description")
			op.Parameters = append(op.Parameters, Parameter{Name: name, In: "path", Description: desc, Required: true, Schema: s})
		}
		op.RequestBody = &RequestBody{Required: false, Content: jsonContent(body)}
	}
	errRef := registry.Schema{"$ref": "#/components/schemas/" + ErrorSchema}
	errResp := func(desc string, headers map[string]Header) Response {
		return Response{Description: desc, Headers: headers, Content: jsonContent(errRef)}
	}
	badRequest := "The request is malformed: an unknown, repeated or invalid parameter"
	if a.Method == http.MethodPost {
		// Every 400 decode answers for a POST (api.decode).
		badRequest = "The request is malformed: a body that is not a JSON object of the request's fields, a Content-Type other than application/json, query parameters"
		if len(a.PathParams) > 0 {
			badRequest += ", an invalid path parameter or one repeated in the body"
		}
	}
	if protected {
		badRequest += ", more than one Authorization header, or an access token in the query string"
	}
	op.Responses["400"] = errResp(badRequest+" (error invalid_request).", nil)
	if protected {
		challenge := map[string]Header{"WWW-Authenticate": {
			Description: "Bearer challenge (RFC 6750) naming the error, the scopes the operation needs and the protected resource metadata URL (resource_metadata, RFC 9728 section 5.1).",
			Schema:      registry.Schema{"type": "string"},
		}}
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
	}
	op.Responses["429"] = errResp("Too many calls (error rate_limited). Wait for the number of seconds in Retry-After before calling again.", map[string]Header{
		"Retry-After": {Description: "Seconds to wait before retrying.", Schema: registry.Schema{"type": "integer", "minimum": 1}},
	})
	op.Responses["500"] = errResp("Unexpected server error (error server_error).", nil)
	op.Responses["503"] = errResp("A backend the API depends on is unavailable (error temporarily_unavailable). Retry after the number of seconds in Retry-After.", map[string]Header{
		"Retry-After": {Description: "Seconds to wait before retrying.", Schema: registry.Schema{"type": "integer", "minimum": 1}},
	})
	return op, nil
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
		"description": "The one error shape of the Actions API, used by every failure.",
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

// CheckLimits returns every place where d exceeds a GPT Actions limit (a
// *LimitsError), or nil.
func CheckLimits(d *Document) error {
	b, err := d.JSON()
	if err != nil {
		return err
	}
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
			if len(value) > MaxSummary {
				problems = append(problems, fmt.Sprintf("%s: summary is %d characters, over %d", path, len(value), MaxSummary))
			}
		case "description":
			if len(value) > MaxDescription {
				problems = append(problems, fmt.Sprintf("%s: description is %d characters, over %d", path, len(value), MaxDescription))
			}
		}
	})
	if len(problems) > 0 {
		return &LimitsError{Size: len(b), Problems: problems}
	}
	return nil
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

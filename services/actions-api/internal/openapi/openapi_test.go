package openapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	capabilityv1 "github.com/tollgate/tollgate/proto/gen/tollgate/capability/v1"
	testingv1 "github.com/tollgate/tollgate/proto/gen/tollgate/testing/v1"
	"github.com/tollgate/tollgate/services/actions-api/internal/openapi"
	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

var update = flag.Bool("update", false, "rewrite testdata/openapi.golden.json")

var golden = openapi.Options{ServerURL: "https://actions.example.com", OAuthBaseURL: "https://auth.example.com"}

// capabilities is a registry of the capability-core services plus extra
// ones (the test capabilities); TestGolden checks the binary's own.
func capabilities(t *testing.T, extra ...protoreflect.ServiceDescriptor) *registry.Registry {
	t.Helper()
	services := []protoreflect.ServiceDescriptor{
		capabilityv1.File_tollgate_capability_v1_health_proto.Services().Get(0),
		capabilityv1.File_tollgate_capability_v1_identity_proto.Services().Get(0),
	}
	reg, err := registry.New(append(services, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func build(t *testing.T, reg *registry.Registry, o openapi.Options) ([]byte, *openapi3.T) {
	t.Helper()
	d, err := openapi.Build(reg, o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return b, load(t, b)
}

// load parses and validates b with kin-openapi, an implementation
// independent of ours.
func load(t *testing.T, b []byte) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatalf("kin-openapi cannot load the document: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("kin-openapi finds the document invalid: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi = %q, want 3.1", doc.OpenAPI)
	}
	return doc
}

// TestGolden compares the document the actions-api binary itself exports
// (`actions-api openapi`, the registry of every capability linked into it)
// with testdata/openapi.golden.json, so that a new capability shows up in
// the golden diff without any list to update here.
func TestGolden(t *testing.T) {
	dir := t.TempDir()
	if err := testharness.BuildBinaries(dir, testharness.Binary{ModuleDir: filepath.Join("..", ".."), Package: "./cmd/actions-api"}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(dir, "actions-api"), "openapi", "-base-url", golden.ServerURL, "-oauth-base-url", golden.OAuthBaseURL)
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("actions-api openapi: %v", err)
	}
	load(t, b)
	// Exported (and served) compact: indentation would count against the
	// 100,000 characters a GPT imports. The golden copy is indented, for
	// its diff to be read.
	if bytes.Contains(b, []byte("\n ")) || bytes.Count(b, []byte("\n")) != 1 {
		t.Errorf("the exported document is not compact JSON on one line")
	}
	var indented bytes.Buffer
	if err := json.Indent(&indented, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	b = indented.Bytes()
	path := filepath.Join("testdata", "openapi.golden.json")
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	// The linked capabilities are those of the shipped binary: never the
	// test-only ones, known by their package (tollgate.testing.*), not by
	// their paths — a real capability may take any path, the guide's
	// example /actions/orders included.
	published := map[string]bool{}
	for _, item := range load(t, want).Paths.Map() {
		for _, op := range item.Operations() {
			published[op.OperationID] = true
		}
	}
	testOnly := testOnlyActions(t)
	if len(testOnly) == 0 {
		t.Fatal("no test-only operation is linked into this test: the check below would prove nothing")
	}
	for _, a := range testOnly {
		if published[a.OperationID] {
			t.Errorf("the binary publishes the test-only operation %s (%s %s, %s)", a.OperationID, a.Method, a.Path, a.Capability.FullMethod)
		}
	}
	if !bytes.Equal(b, want) {
		t.Errorf("the OpenAPI document differs from %s; if the change is intended, run go test ./internal/openapi -update and review the diff", path)
	}
}

// testOnlyActions returns the operations of the services in the
// tollgate.testing.* packages linked into this test binary.
func testOnlyActions(t *testing.T) []*registry.Action {
	t.Helper()
	var services []protoreflect.ServiceDescriptor
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if strings.HasPrefix(string(fd.Package()), "tollgate.testing.") {
			for i := range fd.Services().Len() {
				services = append(services, fd.Services().Get(i))
			}
		}
		return true
	})
	reg, err := registry.New(services...)
	if err != nil {
		t.Fatal(err)
	}
	return reg.Actions()
}

func TestDocumentFollowsRegistry(t *testing.T) {
	reg := capabilities(t)
	_, doc := build(t, reg, golden)

	if len(doc.Servers) != 1 || doc.Servers[0].URL != "https://actions.example.com" {
		t.Errorf("servers = %+v, want exactly the Actions origin", doc.Servers)
	}
	scheme := doc.Components.SecuritySchemes[openapi.SecurityScheme]
	if scheme == nil || scheme.Value.Type != "oauth2" || scheme.Value.Flows.AuthorizationCode == nil {
		t.Fatalf("security scheme = %+v, want oauth2 with the authorization-code flow", scheme)
	}
	flow := scheme.Value.Flows.AuthorizationCode
	if flow.AuthorizationURL != "https://auth.example.com/oauth/authorize" || flow.TokenURL != "https://auth.example.com/oauth/token" {
		t.Errorf("flow URLs = %s, %s; want the issuer's /oauth/authorize and /oauth/token", flow.AuthorizationURL, flow.TokenURL)
	}
	var scopes []string
	for s, d := range flow.Scopes {
		scopes = append(scopes, s)
		if d == "" {
			t.Errorf("scope %s has no description", s)
		}
	}
	slices.Sort(scopes)
	var wantScopes []string
	for _, a := range reg.Actions() {
		wantScopes = append(wantScopes, a.RequiredScopes...)
	}
	slices.Sort(wantScopes)
	if wantScopes = slices.Compact(wantScopes); !slices.Equal(scopes, wantScopes) {
		t.Errorf("flow scopes = %v, want the actions' scopes %v", scopes, wantScopes)
	}

	if got, want := doc.Paths.Len(), len(reg.Actions()); got != want {
		t.Errorf("%d paths, want one per action (%d)", got, want)
	}
	for _, a := range reg.Actions() {
		item := doc.Paths.Find(a.Path)
		if item == nil {
			t.Errorf("%s: missing", a.Path)
			continue
		}
		op := item.GetOperation(a.Method)
		if op == nil {
			t.Errorf("%s %s: missing", a.Method, a.Path)
			continue
		}
		if op.OperationID != a.OperationID || op.Summary != a.Summary || op.Description != a.Description {
			t.Errorf("%s: operationId/summary/description not taken from the registry", a.Path)
		}
		if c, ok := op.Extensions["x-openai-isConsequential"].(bool); !ok || c != a.Consequential {
			t.Errorf("%s: x-openai-isConsequential = %v, want %v", a.Path, op.Extensions["x-openai-isConsequential"], a.Consequential)
		}
		if op.Security == nil {
			t.Errorf("%s: no per-operation security", a.Path)
			continue
		}
		ok200 := op.Responses.Status(200)
		if ok200 == nil || ok200.Value.Content.Get("application/json") == nil {
			t.Fatalf("%s: no JSON 200 response", a.Path)
		}
		out := ok200.Value.Content.Get("application/json").Schema.Value
		for i := 0; i < a.Capability.Method.Output().Fields().Len(); i++ {
			f := a.Capability.Method.Output().Fields().Get(i)
			p := out.Properties[string(f.Name())]
			if p == nil {
				t.Errorf("%s: response field %s missing", a.Path, f.Name())
			} else if p.Value.Description != registry.FieldDescription(f) || p.Value.Description == "" {
				t.Errorf("%s: response field %s description = %q, want the proto's", a.Path, f.Name(), p.Value.Description)
			}
		}
		wantCodes := []int{200, 400, 429, 500, 503}
		if len(a.RequiredScopes) > 0 {
			wantCodes = append(wantCodes, 401, 403)
			if len(*op.Security) != 1 || !slices.Equal((*op.Security)[0][openapi.SecurityScheme], a.RequiredScopes) {
				t.Errorf("%s: security = %v, want oauth2 %v", a.Path, *op.Security, a.RequiredScopes)
			}
		} else if len(*op.Security) != 0 {
			t.Errorf("%s: public operation has security %v, want []", a.Path, *op.Security)
		}
		for _, code := range wantCodes {
			r := op.Responses.Status(code)
			if r == nil {
				t.Errorf("%s: no %d response", a.Path, code)
				continue
			}
			if code == 200 {
				continue
			}
			if ref := r.Value.Content.Get("application/json").Schema.Ref; ref != "#/components/schemas/Error" {
				t.Errorf("%s %d: schema %q, want the Error schema", a.Path, code, ref)
			}
		}
		if h := op.Responses.Status(429).Value.Headers["Retry-After"]; h == nil {
			t.Errorf("%s: 429 does not declare Retry-After", a.Path)
		}
	}
}

// TestGPTLimits checks the limits GPT Actions put on an imported document
// by walking the JSON itself, not our types.
func TestGPTLimits(t *testing.T) {
	b, _ := build(t, capabilities(t, testingv1.File_tollgate_testing_v1_echo_proto.Services().Get(0)), golden)
	if len(b) >= 100_000 || len(b) > openapi.MaxDocument {
		t.Errorf("document is %d bytes; GPT Actions accept at most 100,000 and our budget is %d", len(b), openapi.MaxDocument)
	}
	var tree any
	if err := json.Unmarshal(b, &tree); err != nil {
		t.Fatal(err)
	}
	var summaries, descriptions int
	var visit func(v any)
	visit = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				if s, ok := c.(string); ok {
					switch k {
					case "summary":
						summaries++
						if n := len([]rune(s)); n > 300 || n == 0 {
							t.Errorf("summary of %d characters: %q", n, s)
						}
					case "description":
						descriptions++
						if n := len([]rune(s)); n > 700 || n == 0 {
							t.Errorf("description of %d characters: %q", n, s)
						}
					}
				}
				visit(c)
			}
		case []any:
			for _, c := range x {
				visit(c)
			}
		}
	}
	visit(tree)
	if summaries < 4 || descriptions < 20 {
		t.Errorf("walked %d summaries and %d descriptions; the walk missed the document", summaries, descriptions)
	}
}

func TestCheckLimitsRefusesLongText(t *testing.T) {
	d, err := openapi.Build(capabilities(t), golden)
	if err != nil {
		t.Fatal(err)
	}
	d.Paths["/actions/session"].Get.Summary = strings.Repeat("s", openapi.MaxSummary+1)
	// An operation's description is held to 300 characters, like its
	// summary (GPT Actions' "endpoint description/summary"); a
	// parameter's or a schema's to 700.
	d.Paths["/actions/profile"].Get.Description = strings.Repeat("o", openapi.MaxOperationDescription+1)
	d.Info.Description = strings.Repeat("d", openapi.MaxDescription+1)
	b, err := d.JSON()
	if err != nil {
		t.Fatal(err)
	}
	err = openapi.CheckLimits(b)
	if err == nil {
		t.Fatal("CheckLimits accepted a 301-character summary and a 701-character description")
	}
	for _, want := range []string{"#/paths/~1actions~1session/get/summary", "#/paths/~1actions~1profile/get/description: description is 301 characters, over 300", "#/info/description"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

// TestCheckLimitsCountsCharacters: the limits are in characters, and a
// summary and a description of exactly the limit in Japanese (three bytes
// a character) are within them; one character more is not.
func TestCheckLimitsCountsCharacters(t *testing.T) {
	for _, over := range []int{0, 1} {
		d, err := openapi.Build(capabilities(t), golden)
		if err != nil {
			t.Fatal(err)
		}
		d.Paths["/actions/session"].Get.Summary = strings.Repeat("要", openapi.MaxSummary+over)
		d.Paths["/actions/session"].Get.Description = strings.Repeat("説", openapi.MaxOperationDescription+over)
		d.Info.Description = strings.Repeat("説", openapi.MaxDescription+over)
		b, err := d.JSON()
		if err != nil {
			t.Fatal(err)
		}
		err = openapi.CheckLimits(b)
		if (err != nil) != (over == 1) {
			t.Errorf("%d characters over the limits: CheckLimits = %v", over, err)
		}
		if over == 1 && err != nil && !strings.Contains(err.Error(), "summary is 301 characters") {
			t.Errorf("error %q does not count characters", err)
		}
	}
}

// TestNewCapabilityAppearsWithoutCode proves the define-once rule for the
// document: the test capability, declared only in proto, becomes an
// operation with its query parameters, descriptions and scopes.
func TestNewCapabilityAppearsWithoutCode(t *testing.T) {
	_, doc := build(t, capabilities(t, testingv1.File_tollgate_testing_v1_echo_proto.Services().Get(0)), golden)
	item := doc.Paths.Find("/actions/echo")
	if item == nil || item.Get == nil {
		t.Fatal("GET /actions/echo is not in the document")
	}
	op := item.Get
	if op.OperationID != "echo" || len(*op.Security) != 1 || !slices.Equal((*op.Security)[0]["oauth2"], []string{"openid"}) {
		t.Errorf("echo operation = %s %v", op.OperationID, op.Security)
	}
	want := map[string]string{"text": "string", "times": "integer", "shout": "boolean"}
	if len(op.Parameters) != len(want) {
		t.Fatalf("%d parameters, want %d", len(op.Parameters), len(want))
	}
	for _, p := range op.Parameters {
		v := p.Value
		if v.In != "query" || v.Required || v.Description == "" || !v.Schema.Value.Type.Is(want[v.Name]) {
			t.Errorf("parameter %+v: want an optional described query parameter of type %s", v, want[v.Name])
		}
	}
	if doc.Components.Schemas["EchoResponse"] == nil {
		t.Error("EchoResponse schema missing")
	}
}

func TestBuildNeedsURLs(t *testing.T) {
	if _, err := openapi.Build(capabilities(t), openapi.Options{OAuthBaseURL: "https://auth.example.com"}); err == nil {
		t.Error("Build without a server URL succeeded")
	}
	if _, err := openapi.Build(capabilities(t), openapi.Options{ServerURL: "https://a.example.com"}); err == nil {
		t.Error("Build without an issuer succeeded")
	}
}

// TestBearerRefusalsDeclareTheirChallenge: every response of a protected
// operation that carries a Bearer challenge declares WWW-Authenticate: the
// 401 and 403, and the 400 of a repeated Authorization header or a token
// in the query string, which api.authenticate answers with error
// invalid_request and its challenge (RFC 6750 section 3.1). The 400 did
// not declare it. A public operation's 400 sends none.
func TestBearerRefusalsDeclareTheirChallenge(t *testing.T) {
	_, doc := build(t, capabilities(t), golden)
	protected := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			isProtected := op.Security != nil && len(*op.Security) > 0
			for _, code := range []string{"400", "401", "403"} {
				r := op.Responses.Value(code)
				if r == nil {
					if isProtected {
						t.Errorf("%s %s: no %s response", method, path, code)
					}
					continue
				}
				_, declared := r.Value.Headers["WWW-Authenticate"]
				if declared != isProtected {
					t.Errorf("%s %s: %s declares WWW-Authenticate: %v, want %v", method, path, code, declared, isProtected)
				}
			}
			if isProtected {
				protected++
			}
		}
	}
	if protected == 0 {
		t.Fatal("no protected operation in the document")
	}
}

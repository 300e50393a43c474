package registry_test

import (
	"context"
	"encoding/json"
	"net"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	authv1 "github.com/tollgate/tollgate/proto/gen/tollgate/auth/v1"
	capabilityv1 "github.com/tollgate/tollgate/proto/gen/tollgate/capability/v1"
	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
	testingv1 "github.com/tollgate/tollgate/proto/gen/tollgate/testing/v1"
	"github.com/tollgate/tollgate/services/platform/fault"
	"github.com/tollgate/tollgate/services/platform/registry"
)

func load(t *testing.T) *registry.Registry {
	t.Helper()
	// Importing the generated packages registers their descriptors; the
	// registry finds every exposed RPC without being told their names.
	_ = capabilityv1.File_tollgate_capability_v1_health_proto
	_ = authv1.File_tollgate_auth_v1_grants_proto
	_ = testingv1.File_tollgate_testing_v1_echo_proto
	reg, err := registry.FromFiles(protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// TestRegistryHasTheReferenceSurface pins every tool of the linked
// services — its required scopes, its annotations (read-only, destructive,
// idempotent, open-world: what the MCP hints and the gateway's server
// instructions say) and the backend that serves it — and every Actions
// route with its scopes and whether it is consequential. A new capability
// adds its tools and routes here (docs/guides/add-a-capability.md).
func TestRegistryHasTheReferenceSurface(t *testing.T) {
	reg := load(t)
	const core, auth = "capability-core", "auth-server"
	// Every hint declared, false ones included: the descriptors carry
	// them (options.proto's hints have presence).
	const readOnly = "readOnly=true destructive=false idempotent=true openWorld=false"
	type tool struct {
		scopes      string
		annotations string // declared(Annotations)
		backend     string
	}
	want := map[string]tool{
		"health.check":          {"", readOnly, core},
		"health.status_card":    {"", readOnly, core},
		"identity.profile":      {"openid profile email", readOnly, core},
		"identity.profile_card": {"openid profile email", readOnly, core},
		"auth.session":          {"openid", readOnly, core},
		"testing.echo":          {"openid", readOnly, core},
		"shipments.list":        {"openid shipments.read", readOnly, core},
		"connections.list":      {"openid connections.read", readOnly, auth},
		"connections.card":      {"openid connections.read", readOnly, auth},
		"connections.revoke":    {"openid connections.revoke", "readOnly=false destructive=true idempotent=true openWorld=false", auth},
	}
	got := map[string]tool{}
	for _, tl := range reg.Tools() {
		got[tl.Name] = tool{strings.Join(tl.RequiredScopes, " "), declared(tl.Annotations), tl.Capability.Backend}
	}
	for name, w := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("tool %s missing", name)
		} else if g != w {
			t.Errorf("tool %s = %+v, want %+v", name, g, w)
		}
	}
	for name, g := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("tool %s = %+v is not pinned here: add it to want", name, g)
		}
	}
	if tool, _ := reg.Tool("health.status_card"); tool.WidgetURI != "ui://widget/health-status-card-v1.html" {
		t.Errorf("status card widget = %q", tool.WidgetURI)
	}
	if tool, _ := reg.Tool("identity.profile_card"); tool.WidgetURI != "ui://widget/profile-summary-card-v1.html" {
		t.Errorf("profile card widget = %q", tool.WidgetURI)
	}
	// One line per route: method, path, operationId, scopes and, for a
	// consequential operation (x-openai-isConsequential), "consequential".
	var routes []string
	for _, a := range reg.Actions() {
		route := a.Method + " " + a.Path + " " + a.OperationID + " " + strings.Join(a.RequiredScopes, ",")
		if a.Consequential {
			route += " consequential"
		}
		routes = append(routes, route)
	}
	if tool, _ := reg.Tool("connections.revoke"); strings.Join(tool.Capability.Action.PathParams, ",") != "grant_id" {
		t.Errorf("revoke path parameters = %v", tool.Capability.Action.PathParams)
	}
	wantRoutes := []string{
		"GET /actions/connections listConnections openid,connections.read",
		"DELETE /actions/connections/{grant_id} revokeConnection openid,connections.revoke consequential",
		"GET /actions/echo echo openid",
		"GET /actions/profile getProfile openid,profile,email",
		"GET /actions/session getSession openid",
		"GET /actions/shipments listShipments openid,shipments.read",
		"GET /health getHealth ",
	}
	if g, w := strings.Join(routes, "\n"), strings.Join(wantRoutes, "\n"); g != w {
		t.Errorf("actions:\n got:\n%s\nwant:\n%s", g, w)
	}
	if s := strings.Join(reg.RequiredScopes(), " "); s != "connections.read connections.revoke email openid profile shipments.read" {
		t.Errorf("required scopes = %q", s)
	}
}

// TestScopesComeFromTheServices: the OpenID Connect scopes are always
// supported; every other scope is one a service declares, with the words
// the consent page shows.
func TestScopesComeFromTheServices(t *testing.T) {
	reg := load(t)
	if got := strings.Join(reg.ScopeNames(), " "); got != "openid profile email offline_access connections.read connections.revoke shipments.read" {
		t.Errorf("supported scopes = %q", got)
	}
	s, ok := reg.Scope("shipments.read")
	if !ok || s.Description != "See your shipments" || s.Service != "tollgate.testing.v1.ShipmentsService" {
		t.Errorf("shipments.read = %+v, %v", s, ok)
	}
	if s, ok := reg.Scope("email"); !ok || s.Description == "" || s.Service != "" {
		t.Errorf("email = %+v, %v", s, ok)
	}
	if _, ok := reg.Scope("shipments.write"); ok {
		t.Error("an undeclared scope is supported")
	}
	empty, err := registry.New()
	if err != nil || strings.Join(empty.ScopeNames(), " ") != "openid profile email offline_access" {
		t.Errorf("no services: %v %v", empty.ScopeNames(), err)
	}
}

// TestScopeDeclarationsAreChecked: a required scope nobody declares, a
// redeclared OpenID Connect scope, a scope without words for the consent
// page, a malformed scope and one declared twice are all refused, at once.
func TestScopeDeclarationsAreChecked(t *testing.T) {
	a := protoFileWith(t, "scopea", []*optionsv1.Scope{
		{Name: "email", Description: "Your email"},
		{Name: "things.read"},
		{Name: "bad scope", Description: "x"},
		{Name: "dup.read", Description: "Read dups"},
	}, func(m *descriptorpb.MethodOptions) {
		setTool(m, &optionsv1.McpTool{Name: "things.list", Title: "t", Description: "d", RequiredScopes: []string{"openid", "things.write"}})
	})
	b := protoFileWith(t, "scopeb", []*optionsv1.Scope{{Name: "dup.read", Description: "Read dups"}}, func(*descriptorpb.MethodOptions) {})
	_, err := registry.New(a.Services().Get(0), b.Services().Get(0))
	if err == nil {
		t.Fatal("bad scope declarations accepted")
	}
	for _, want := range []string{
		`scope "email" is an OpenID Connect scope`,
		`scope "things.read" needs a description`,
		`scope "bad scope" is not a valid scope token`,
		`scope "dup.read" already declared by bad.scopea.BadService`,
		`tool things.list requires scope "things.write", which no service declares`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestSchemasComeFromTheMessages(t *testing.T) {
	reg := load(t)
	tool, _ := reg.Tool("testing.echo")
	in := tool.Capability.InputSchema()
	b, _ := json.Marshal(in)
	for _, want := range []string{`"text":{"description":"Text to repeat.","type":"string"}`, `"times":{"description":"How many times (1 to 10).","format":"int32","maximum":2147483647,"minimum":-2147483648,"type":"integer"}`, `"additionalProperties":false`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("input schema lacks %s:\n%s", want, b)
		}
	}
	profile, _ := reg.Tool("identity.profile")
	out, _ := json.Marshal(profile.Capability.OutputSchema())
	for _, want := range []string{`"email_verified":{"description":"Whether the identity provider verified the email address.","type":"boolean"}`, `"required":["sub","name","given_name","family_name","preferred_username","email","email_verified"]`, `"description":"The signed-in user's OpenID Connect profile."`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output schema lacks %s:\n%s", want, out)
		}
	}
	// Unsigned and 64-bit integers: uint32 is an integer with its range
	// spelled out, of the OpenAPI Format Registry's uint32 in the
	// OpenAPI document only (JSON Schema validators do not know the
	// format: Ajv logs it, or refuses it in strict mode); 64-bit
	// integers are decimal strings (the proto3 JSON mapping).
	shipments, _ := reg.Tool("shipments.list")
	oin, _ := json.Marshal(shipments.Capability.InputSchema())
	oout, _ := json.Marshal(shipments.Capability.OutputSchema())
	if !strings.Contains(string(oin), `"limit":{"description":"How many shipments (1 to 50; 0 means 10).","maximum":4294967295,"minimum":0,"type":"integer"}`) {
		t.Errorf("uint32 input schema: %s", oin)
	}
	if !strings.Contains(string(oout), `"weight_grams":{"description":"Weight in grams (a decimal string).","pattern":"^(0|[1-9][0-9]*)$","type":"string"}`) {
		t.Errorf("uint64 output schema: %s", oout)
	}
	ain, aout, _ := shipments.Capability.Schemas("#/components/schemas/")
	ain2, _ := json.Marshal(ain)
	aout2, _ := json.Marshal(aout)
	if !strings.Contains(string(ain2), `"limit":{"description":"How many shipments (1 to 50; 0 means 10).","format":"uint32","maximum":4294967295,"minimum":0,"type":"integer"}`) {
		t.Errorf("uint32 OpenAPI schema: %s", ain2)
	}
	if !strings.Contains(string(aout2), `"weight_grams":{"description":"Weight in grams (a decimal string).","format":"uint64","pattern":"^(0|[1-9][0-9]*)$","type":"string"}`) {
		t.Errorf("uint64 OpenAPI output schema: %s", aout2)
	}
	health, _ := reg.Tool("health.check")
	hs, _ := json.Marshal(health.Capability.OutputSchema())
	if !strings.Contains(string(hs), `"timestamp":{"description":"Time the check ran (RFC 3339).","format":"date-time","pattern":"^(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-9])|(0[13-9]|1[0-2])-30|(0[13578]|1[02])-31)T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$","type":["string","null"]}`) ||
		!strings.Contains(string(hs), `"checks":{"description":"One entry per dependency.","items":{"additionalProperties":true,"description":"State of one dependency."`) {
		t.Errorf("health output schema: %s", hs)
	}
}

// echoServer is the test capability's implementation, served over real gRPC.
type echoServer struct {
	testingv1.UnimplementedEchoServiceServer
}

func (echoServer) Echo(_ context.Context, in *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
	if in.GetTimes() < 0 || in.GetTimes() > 10 {
		return nil, fault.InvalidArgument("times must be between 1 and 10")
	}
	n := max(in.GetTimes(), 1)
	s := strings.Repeat(in.GetText(), int(n))
	if in.GetShout() {
		s = strings.ToUpper(s)
	}
	return &testingv1.EchoResponse{Text: s, Length: int32(len(s))}, nil
}

func startEcho(t *testing.T) *grpc.ClientConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		return resp, fault.ToStatus(err)
	}))
	testingv1.RegisterEchoServiceServer(srv, echoServer{})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestDefineOnce drives the test capability through both connector shapes
// (MCP tool arguments as JSON, Actions query parameters) with nothing but
// the registry and a gRPC connection: no adapter names the capability.
func TestDefineOnce(t *testing.T) {
	reg := load(t)
	conn := startEcho(t)
	tool, ok := reg.Tool("testing.echo")
	if !ok {
		t.Fatal("testing.echo is not a tool")
	}
	in, err := tool.Capability.DecodeJSON([]byte(`{"text":"ab","times":3,"shout":true}`))
	if err != nil {
		t.Fatal(err)
	}
	out, err := tool.Capability.Invoke(context.Background(), conn, in)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := registry.MarshalOutput(out)
	if string(b) != `{"text":"ABABAB","length":6}` {
		t.Errorf("tool result = %s", b)
	}

	var action *registry.Action
	for _, a := range reg.Actions() {
		if a.OperationID == "echo" {
			action = a
		}
	}
	if action == nil || action.Capability != tool.Capability {
		t.Fatal("the echo action is not backed by the same capability")
	}
	q, _ := url.ParseQuery("text=hi&times=2")
	in, err = action.Capability.DecodeQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	out, err = action.Capability.Invoke(context.Background(), conn, in)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = registry.MarshalOutput(out)
	if string(b) != `{"text":"hihi","length":4}` {
		t.Errorf("action result = %s", b)
	}

	// A domain error crosses gRPC as InvalidArgument, not Internal.
	in, _ = tool.Capability.DecodeJSON([]byte(`{"text":"x","times":11}`))
	if _, err := tool.Capability.Invoke(context.Background(), conn, in); err == nil || !strings.Contains(err.Error(), "InvalidArgument") {
		t.Errorf("times=11: err = %v, want InvalidArgument", err)
	}
}

func TestBadArgumentsAreInvalidArgument(t *testing.T) {
	reg := load(t)
	c := func() *registry.Capability { tool, _ := reg.Tool("testing.echo"); return tool.Capability }()
	for _, body := range []string{`{"nope":1}`, `{"times":"many"}`, `{"text":`, `[1]`, `{"shout":"yes"}`} {
		_, err := c.DecodeJSON([]byte(body))
		var fe *fault.Error
		if !errorsAs(err, &fe) || fe.Kind != fault.KindInvalidArgument {
			t.Errorf("DecodeJSON(%s) = %v, want an InvalidArgument fault", body, err)
		}
	}
	for _, raw := range []string{"nope=1", "times=x", "times=1&times=2", "shout=maybe"} {
		q, _ := url.ParseQuery(raw)
		_, err := c.DecodeQuery(q)
		var fe *fault.Error
		if !errorsAs(err, &fe) || fe.Kind != fault.KindInvalidArgument {
			t.Errorf("DecodeQuery(%s) = %v, want an InvalidArgument fault", raw, err)
		}
	}
	if in, err := c.DecodeJSON(nil); err != nil || in == nil {
		t.Errorf("empty arguments: %v", err)
	}
}

// TestNoValueIsTheCallersToName: DecodeJSON (MCP tools/call arguments) and
// DecodeBody (a POST body) read no JSON text (nil) as the request with no
// fields; JSON null is no arguments to MCP (the member is optional; the
// gateway lets null through as absent) but a value a POST body's object
// schema refuses. A text of only whitespace is no JSON at all (RFC 8259
// section 2) for both: it was read as no arguments.
func TestNoValueIsTheCallersToName(t *testing.T) {
	reg := load(t)
	tool, _ := reg.Tool("testing.echo")
	c := tool.Capability
	type decoder struct {
		name   string
		decode func([]byte) (proto.Message, error)
	}
	args := decoder{"DecodeJSON", c.DecodeJSON}
	body := decoder{"DecodeBody", c.DecodeBody}
	partial := decoder{"DecodeBodyPartial", c.DecodeBodyPartial}
	for _, tc := range []struct {
		d    decoder
		in   string
		want string // "" for the request with no fields
	}{
		{args, "", ""},
		{args, "null", ""},
		{args, "{}", ""},
		{args, " ", "invalid arguments: only whitespace, which is not JSON: send a JSON object of the tool's input fields ({} for none)"},
		{args, "\r\n\t", "invalid arguments: only whitespace, which is not JSON: send a JSON object of the tool's input fields ({} for none)"},
		{args, "\u00a0", "invalid arguments: only whitespace, which is not JSON: send a JSON object of the tool's input fields ({} for none)"},
		{body, "", ""},
		{body, "{}", ""},
		{body, " ", "the request body holds only whitespace, which is not JSON: send a JSON object of the request's fields, or no body"},
		{body, "null", "the request body is null: send a JSON object of the request's fields ({} for none), or no body"},
		{body, " null\n", "the request body is null: send a JSON object of the request's fields ({} for none), or no body"},
		{partial, "", ""},
		{partial, "\t", "the request body holds only whitespace, which is not JSON: send a JSON object of the request's fields, or no body"},
		{partial, "null", "the request body is null: send a JSON object of the request's fields ({} for none), or no body"},
	} {
		in, err := tc.d.decode([]byte(tc.in))
		if tc.want == "" {
			if err != nil || in == nil || proto.Size(in) != 0 {
				t.Errorf("%s(%q) = %v, %v; want the request with no fields", tc.d.name, tc.in, in, err)
			}
			continue
		}
		var fe *fault.Error
		if !errorsAs(err, &fe) || fe.Kind != fault.KindInvalidArgument || fe.Msg != tc.want {
			t.Errorf("%s(%q) = %v, %v; want the InvalidArgument fault %q", tc.d.name, tc.in, in, err, tc.want)
		}
	}
}

// TestInvalidDeclarationsAreRefused builds services with bad options in
// memory and checks that the registry lists every problem.
func TestInvalidDeclarationsAreRefused(t *testing.T) {
	fd := protoFile(t, func(m *descriptorpb.MethodOptions) {
		setTool(m, &optionsv1.McpTool{Name: "Bad Name", Title: "", Description: "", RequiredScopes: []string{"has space"}, WidgetUri: "https://x"})
		setAction(m, &optionsv1.ActionsOperation{Method: "PATCH", Path: "nope", OperationId: "1x", Summary: strings.Repeat("s", 301),
			// Over 700 characters an operation's description is refused;
			// 301 to 700 is served and reported by the actions-api
			// (TestOperationDescriptionOverLimitIsServedAndReported).
			Description: strings.Repeat("d", registry.MaxDescription+1)})
	})
	_, err := registry.New(fd.Services().Get(0))
	if err == nil {
		t.Fatal("bad declarations accepted")
	}
	for _, want := range []string{"tool name", "needs a title", "not a valid scope", "ui:// URI", "must be GET, POST or DELETE", "absolute lower-case path", "must be an identifier", "summary must be 1 to 300", "action description is longer than 700 characters"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestDuplicateToolsAndRoutesAreRefused(t *testing.T) {
	a := protoFileNamed(t, "a", func(m *descriptorpb.MethodOptions) {
		setTool(m, &optionsv1.McpTool{Name: "dup.tool", Title: "t", Description: "d"})
		setAction(m, &optionsv1.ActionsOperation{Method: "GET", Path: "/actions/dup", OperationId: "dup", Summary: "s"})
	})
	b := protoFileNamed(t, "b", func(m *descriptorpb.MethodOptions) {
		setTool(m, &optionsv1.McpTool{Name: "dup.tool", Title: "t", Description: "d"})
		setAction(m, &optionsv1.ActionsOperation{Method: "GET", Path: "/actions/dup", OperationId: "dup", Summary: "s"})
	})
	_, err := registry.New(a.Services().Get(0), b.Services().Get(0))
	if err == nil {
		t.Fatal("duplicates accepted")
	}
	for _, want := range []string{`tool "dup.tool" already declared`, "route GET /actions/dup already declared", `operationId "dup" already declared`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// TestPathParametersMustBeRequestFields: "{field}" path segments name
// scalar request fields; DELETE is accepted like GET.
func TestPathParametersMustBeRequestFields(t *testing.T) {
	fd := protoFileNamed(t, "pathparam", func(m *descriptorpb.MethodOptions) {
		setAction(m, &optionsv1.ActionsOperation{Method: "DELETE", Path: "/actions/things/{nope}", OperationId: "deleteThing", Summary: "s", Consequential: true})
	})
	_, err := registry.New(fd.Services().Get(0))
	if err == nil || !strings.Contains(err.Error(), "path parameter {nope} is not a field") || strings.Contains(err.Error(), "must be GET") {
		t.Errorf("err = %v, want only the unknown path parameter refused", err)
	}
}

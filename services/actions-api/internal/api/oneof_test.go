package api_test

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// oneofService: GET /actions/pick whose request is {string text = 1;
// oneof by { string by_name = 2; int64 by_id = 3; }}, and POST
// /actions/pick/{by_id} (Choose) of the same types.
func oneofService() registrytest.Service {
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	field := func(name, json string, n int32, typ *descriptorpb.FieldDescriptorProto_Type) *descriptorpb.FieldDescriptorProto {
		return &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(n), Type: typ, Label: opt, JsonName: proto.String(json)}
	}
	byName, byID := field("by_name", "byName", 2, str), field("by_id", "byId", 3, descriptorpb.FieldDescriptorProto_TYPE_INT64.Enum())
	byName.OneofIndex, byID.OneofIndex = proto.Int32(0), proto.Int32(0)
	mo := &descriptorpb.MethodOptions{}
	proto.SetExtension(mo, optionsv1.E_ActionsOperation, &optionsv1.ActionsOperation{
		Method: "GET", Path: "/actions/pick", OperationId: "pick", Summary: "Pick", RequiredScopes: []string{"openid"}})
	choose := &descriptorpb.MethodOptions{}
	proto.SetExtension(choose, optionsv1.E_ActionsOperation, &optionsv1.ActionsOperation{
		Method: "POST", Path: "/actions/pick/{by_id}", OperationId: "choose", Summary: "Choose", RequiredScopes: []string{"openid"}, Consequential: true})
	byIDOp := &descriptorpb.MethodOptions{}
	proto.SetExtension(byIDOp, optionsv1.E_ActionsOperation, &optionsv1.ActionsOperation{
		Method: "GET", Path: "/actions/pick/id/{by_id}", OperationId: "pickById", Summary: "Pick by id", RequiredScopes: []string{"openid"}})
	bothOp := &descriptorpb.MethodOptions{}
	proto.SetExtension(bothOp, optionsv1.E_ActionsOperation, &optionsv1.ActionsOperation{
		Method: "GET", Path: "/actions/pick/both/{by_name}/{by_id}", OperationId: "pickBoth", Summary: "Pick by both", RequiredScopes: []string{"openid"}})
	return registrytest.Service{Package: "pick", Name: "PickService", Proto: &descriptorpb.FileDescriptorProto{
		Name: proto.String("pick/pick.proto"), Package: proto.String("pick"), Syntax: proto.String("proto3"),
		Dependency: []string{optionsv1.File_tollgate_options_v1_options_proto.Path()},
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("PickRequest"), Field: []*descriptorpb.FieldDescriptorProto{field("text", "text", 1, str), byName, byID},
				OneofDecl: []*descriptorpb.OneofDescriptorProto{{Name: proto.String("by")}}},
			{Name: proto.String("PickResponse"), Field: []*descriptorpb.FieldDescriptorProto{field("text", "text", 1, str), field("backend", "backend", 2, str)}},
		},
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: proto.String("PickService"), Method: []*descriptorpb.MethodDescriptorProto{{
			Name: proto.String("Pick"), InputType: proto.String(".pick.PickRequest"), OutputType: proto.String(".pick.PickResponse"), Options: mo,
		}, {
			Name: proto.String("Choose"), InputType: proto.String(".pick.PickRequest"), OutputType: proto.String(".pick.PickResponse"), Options: choose,
		}, {
			Name: proto.String("PickByID"), InputType: proto.String(".pick.PickRequest"), OutputType: proto.String(".pick.PickResponse"), Options: byIDOp,
		}, {
			Name: proto.String("PickBoth"), InputType: proto.String(".pick.PickRequest"), OutputType: proto.String(".pick.PickResponse"), Options: bothOp,
		}}}},
	}}
}

// TestQueryOneofMembersAreExclusive: two query parameters that are
// members of one oneof are a 400 naming both, as two in a JSON body are
// (protojson: "oneof … is already set"). They were both decoded and the
// later one kept — later in Go's map order, so the backend got by_name
// or by_id at random.
func TestQueryOneofMembersAreExclusive(t *testing.T) {
	pick := registrytest.Start(t, "pick", []registrytest.Service{oneofService()})
	f := start(t, map[string]string{"CAPABILITY_BACKENDS": "capability-core=$CORE_GRPC_ADDR,pick=" + pick.Addr})
	if f.doc.Paths.Find("/actions/pick") == nil {
		t.Fatalf("GET /actions/pick is not served; logs:\n%s", f.logs.String())
	}
	tok := f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: audience, Scope: "openid"})
	for _, q := range []string{"by_name=a&by_id=5", "byId=5&by_name=a"} {
		r := f.do(t, http.MethodGet, "/actions/pick?text=x&"+q, bearer(tok))
		want := `query parameters "by_id" and "by_name" are members of the oneof by; give one`
		if q == "byId=5&by_name=a" {
			want = `query parameters "byId" and "by_name" are members of the oneof by; give one`
		}
		if r.status != 400 || r.err.Error != "invalid_request" || r.err.Description != want {
			t.Errorf("?%s: %d %s, want 400 %q", q, r.status, r.body, want)
		}
	}
	// Each is named as what it is: a path parameter is not a query one.
	for path, want := range map[string]string{
		"/actions/pick/id/5?by_name=a":  `path parameter "by_id" and query parameter "by_name" are members of the oneof by; give one`,
		"/actions/pick/both/a/5":        `path parameters "by_id" and "by_name" are members of the oneof by; give one`,
		"/actions/pick/both/a/5?text=x": `path parameters "by_id" and "by_name" are members of the oneof by; give one`,
	} {
		if r := f.do(t, http.MethodGet, path, bearer(tok)); r.status != 400 || r.err.Error != "invalid_request" || r.err.Description != want {
			t.Errorf("%s: %d %s, want 400 %q", path, r.status, r.body, want)
		}
	}
	if r := f.do(t, http.MethodGet, "/actions/pick?text=x&by_id=5", bearer(tok)); r.status != 200 {
		t.Errorf("one member: %d %s", r.status, r.body)
	}
	if n := len(pick.Calls()); n != 1 {
		t.Errorf("the backend had %d calls, want 1", n)
	}
}

// TestPathParameterOneofMemberExcludesTheBodys: POST /actions/pick/{by_id}
// with a body naming by_name, the other member of by_id's oneof, is a 400
// naming both, as two query parameters are. The path's by_id was merged
// over the body and silently cleared by_name. A body naming neither is
// served.
func TestPathParameterOneofMemberExcludesTheBodys(t *testing.T) {
	pick := registrytest.Start(t, "pick", []registrytest.Service{oneofService()})
	f := start(t, map[string]string{"CAPABILITY_BACKENDS": "capability-core=$CORE_GRPC_ADDR,pick=" + pick.Addr})
	if f.doc.Paths.Find("/actions/pick/{by_id}") == nil {
		t.Fatalf("POST /actions/pick/{by_id} is not served; logs:\n%s", f.logs.String())
	}
	// The document's body leaves by_name out with by_id, and the oneof's
	// "not two members" constraint, which only named the two.
	body := f.doc.Paths.Find("/actions/pick/{by_id}").Post.RequestBody.Value.Content["application/json"].Schema.Value
	if got := slices.Sorted(maps.Keys(body.Properties)); !slices.Equal(got, []string{"text"}) || body.Not != nil {
		t.Errorf("POST /actions/pick/{by_id} body properties %v, not %v; want [text] and no not", got, body.Not)
	}
	tok := f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: audience, Scope: "openid"})
	post := func(body string) reply {
		req, err := http.NewRequest(http.MethodPost, f.base+"/actions/pick/5", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		r := reply{status: res.StatusCode, header: res.Header, body: b}
		f.validate(t, req, r)
		_ = json.Unmarshal(b, &r.err)
		return r
	}
	want := `path parameter "by_id" and body field "by_name" are members of the oneof by; give one`
	for _, body := range []string{`{"text":"x","by_name":"a"}`, `{"byName":"a"}`} {
		if r := post(body); r.status != 400 || r.err.Error != "invalid_request" || r.err.Description != want {
			t.Errorf("body %s: %d %s, want 400 %q", body, r.status, r.body, want)
		}
	}
	if n := len(pick.Calls()); n != 0 {
		t.Errorf("the backend had %d calls, want none", n)
	}
	if r := post(`{"text":"x"}`); r.status != 200 || string(r.body) != `{"text":"x","backend":"pick"}` {
		t.Errorf("body without by_name: %d %s", r.status, r.body)
	}
}

package api_test

import (
	"net/http"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// getService is a backend's file: package pkg ("" for none), service
// name, one GET operation at path whose GetResponse holds text and
// backend (set by registrytest) and, with extra, an int32 extra.
func getService(pkg, name, path, opID string, extra bool) registrytest.Service {
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	field := func(name string, n int32, typ *descriptorpb.FieldDescriptorProto_Type) *descriptorpb.FieldDescriptorProto {
		return &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(n), Type: typ, Label: opt, JsonName: proto.String(name)}
	}
	resp := []*descriptorpb.FieldDescriptorProto{field("text", 1, str), field("backend", 2, str)}
	if extra {
		resp = append(resp, field("extra", 3, descriptorpb.FieldDescriptorProto_TYPE_INT32.Enum()))
	}
	prefix := "."
	if pkg != "" {
		prefix = "." + pkg + "."
	}
	mo := &descriptorpb.MethodOptions{}
	proto.SetExtension(mo, optionsv1.E_ActionsOperation, &optionsv1.ActionsOperation{
		Method: "GET", Path: path, OperationId: opID, Summary: "Get", RequiredScopes: []string{"openid"}})
	fd := &descriptorpb.FileDescriptorProto{
		Name:       proto.String("names/" + name + ".proto"),
		Syntax:     proto.String("proto3"),
		Dependency: []string{optionsv1.File_tollgate_options_v1_options_proto.Path()},
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("GetRequest"), Field: []*descriptorpb.FieldDescriptorProto{field("text", 1, str)}},
			{Name: proto.String("GetResponse"), Field: resp},
		},
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: proto.String(name), Method: []*descriptorpb.MethodDescriptorProto{{
			Name: proto.String("Get"), InputType: proto.String(prefix + "GetRequest"), OutputType: proto.String(prefix + "GetResponse"), Options: mo,
		}}}},
	}
	if pkg != "" {
		fd.Package = proto.String(pkg)
	}
	return registrytest.Service{Package: pkg, Name: name, Proto: fd}
}

// TestSchemaNameClashesKeepEveryOperation: component names follow the
// messages' short names, and two backends may both have a GetResponse —
// one in a file with no package (full name "GetResponse"), or two
// backends that each define a package dup apart. Such a clash refused
// the whole document (the actions-api refused to start: every Action
// down) or gave one operation another backend's schema; each schema now
// has a name of its own and every operation's responses match the
// served document.
func TestSchemaNameClashesKeepEveryOperation(t *testing.T) {
	a := registrytest.Start(t, "a", []registrytest.Service{getService("dup", "AService", "/actions/a", "getA", true)})
	b := registrytest.Start(t, "b", []registrytest.Service{getService("dup", "BService", "/actions/b", "getB", false)})
	c := registrytest.Start(t, "c", []registrytest.Service{getService("", "CService", "/actions/c", "getC", true)})
	f := start(t, map[string]string{
		"CAPABILITY_BACKENDS": "capability-core=$CORE_GRPC_ADDR,a=" + a.Addr + ",b=" + b.Addr + ",c=" + c.Addr,
	})
	tok := f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: audience, Scope: "openid"})
	want := map[string]string{
		"/actions/a": `{"text":"x","backend":"a","extra":0}`,
		"/actions/b": `{"text":"x","backend":"b"}`,
		"/actions/c": `{"text":"x","backend":"c","extra":0}`,
	}
	refs := map[string]bool{}
	for path, body := range want {
		op := f.doc.Paths.Find(path)
		if op == nil || op.Get == nil {
			t.Fatalf("%s is not in the document; logs:\n%s", path, f.logs.String())
		}
		refs[op.Get.Responses.Value("200").Value.Content["application/json"].Schema.Ref] = true
		// f.do validates the response against the operation's schema.
		if r := f.do(t, http.MethodGet, path+"?text=x", bearer(tok)); r.status != 200 || string(r.body) != body {
			t.Errorf("GET %s: %d %s, want %s", path, r.status, r.body, body)
		}
	}
	if len(refs) != 3 {
		t.Errorf("the three GetResponse messages share schemas: %v", refs)
	}
	for ref := range refs {
		if !strings.HasPrefix(ref, "#/components/schemas/GetResponse") && !strings.HasPrefix(ref, "#/components/schemas/dup.GetResponse") {
			t.Errorf("schema ref %s: want GetResponse, dup.GetResponse or GetResponse_2", ref)
		}
	}
}

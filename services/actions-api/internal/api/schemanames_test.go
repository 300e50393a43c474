package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
	"github.com/tollgate/tollgate/services/actions-api/internal/api"
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

// treeService is a backend's file in package pkg: GET path answers
// GetResponse {text, backend, Tree tree}, Tree {repeated Tree children =
// 1; Leaf leaf = 2} and Leaf {Leaf next = 1; and string value = 2, or
// with count, int64 count = 2 instead}: two recursive messages, the one
// referring to the other.
func treeService(name, path, opID string, count bool) registrytest.Service {
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	rep := descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
	msg := descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum()
	field := func(name string, n int32, typ *descriptorpb.FieldDescriptorProto_Type, label *descriptorpb.FieldDescriptorProto_Label, typeName string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(n), Type: typ, Label: label, JsonName: proto.String(name)}
		if typeName != "" {
			f.TypeName = proto.String(typeName)
		}
		return f
	}
	value := field("value", 2, str, opt, "")
	if count {
		value = field("count", 2, descriptorpb.FieldDescriptorProto_TYPE_INT64.Enum(), opt, "")
	}
	mo := &descriptorpb.MethodOptions{}
	proto.SetExtension(mo, optionsv1.E_ActionsOperation, &optionsv1.ActionsOperation{
		Method: "GET", Path: path, OperationId: opID, Summary: "Get", RequiredScopes: []string{"openid"}})
	return registrytest.Service{Package: "pkg", Name: name, Proto: &descriptorpb.FileDescriptorProto{
		Name: proto.String("trees/" + name + ".proto"), Package: proto.String("pkg"), Syntax: proto.String("proto3"),
		Dependency: []string{optionsv1.File_tollgate_options_v1_options_proto.Path()},
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("GetRequest"), Field: []*descriptorpb.FieldDescriptorProto{field("text", 1, str, opt, "")}},
			{Name: proto.String("GetResponse"), Field: []*descriptorpb.FieldDescriptorProto{
				field("text", 1, str, opt, ""), field("backend", 2, str, opt, ""), field("tree", 3, msg, opt, ".pkg.Tree")}},
			{Name: proto.String("Tree"), Field: []*descriptorpb.FieldDescriptorProto{
				field("children", 1, msg, rep, ".pkg.Tree"), field("leaf", 2, msg, opt, ".pkg.Leaf")}},
			{Name: proto.String("Leaf"), Field: []*descriptorpb.FieldDescriptorProto{field("next", 1, msg, opt, ".pkg.Leaf"), value}},
		},
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: proto.String(name), Method: []*descriptorpb.MethodDescriptorProto{{
			Name: proto.String("Get"), InputType: proto.String(".pkg.GetRequest"), OutputType: proto.String(".pkg.GetResponse"), Options: mo,
		}}}},
	}}
}

// TestRecursiveSchemasAcrossBackends: backends a and b both define the
// recursive pkg.Tree, alike, whose leaf is the recursive pkg.Leaf, which
// they define apart. b's Leaf was named pkg.Leaf-output_2, but b's Tree,
// whose content is a's, took a's component and with it a's Leaf: b's
// leaves had a's schema. Each operation's tree now reaches its own
// backend's Leaf, and the $refs inside renamed recursive components
// (Tree's leaf and children, Leaf's next) name the renamed components.
func TestRecursiveSchemasAcrossBackends(t *testing.T) {
	a := registrytest.Start(t, "a", []registrytest.Service{treeService("AService", "/actions/tree-a", "treeA", false)})
	b := registrytest.Start(t, "b", []registrytest.Service{treeService("BService", "/actions/tree-b", "treeB", true)})
	f := start(t, map[string]string{"CAPABILITY_BACKENDS": "capability-core=$CORE_GRPC_ADDR,a=" + a.Addr + ",b=" + b.Addr})
	res, err := http.Get(f.base + api.PathOpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var doc struct {
		Paths      map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	// ref is the component a property's schema (a $ref, or one in an
	// anyOf with null, or in an array's items) refers to.
	var firstRef func(s any) string
	firstRef = func(s any) string {
		switch v := s.(type) {
		case map[string]any:
			if r, ok := v["$ref"].(string); ok {
				return strings.TrimPrefix(r, "#/components/schemas/")
			}
			for _, k := range []string{"anyOf", "items"} {
				if r := firstRef(v[k]); r != "" {
					return r
				}
			}
		case []any:
			for _, e := range v {
				if r := firstRef(e); r != "" {
					return r
				}
			}
		}
		return ""
	}
	component := func(name string) map[string]any {
		s, ok := doc.Components.Schemas[name]
		if !ok {
			t.Fatalf("$ref to %q, not a component; document:\n%s", name, raw)
		}
		return s
	}
	prop := func(s map[string]any, name string) any {
		props, _ := s["properties"].(map[string]any)
		return props[name]
	}
	trees, leaves := map[string]bool{}, map[string]bool{}
	for path, want := range map[string]string{"/actions/tree-a": "value", "/actions/tree-b": "count"} {
		op, _ := doc.Paths[path]["get"].(map[string]any)
		if op == nil {
			t.Fatalf("GET %s is not in the document; logs:\n%s", path, f.logs.String())
		}
		resp := op["responses"].(map[string]any)["200"].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)["schema"]
		tree := firstRef(prop(component(firstRef(resp)), "tree"))
		treeSchema := component(tree)
		if self := firstRef(prop(treeSchema, "children")); self != tree {
			t.Errorf("GET %s: %s's children refer to %s, not to it", path, tree, self)
		}
		leaf := firstRef(prop(treeSchema, "leaf"))
		leafSchema := component(leaf)
		if prop(leafSchema, want) == nil {
			t.Errorf("GET %s: tree %s's leaf %s has no %s, not its backend's Leaf: %v", path, tree, leaf, want, leafSchema)
		}
		if self := firstRef(prop(leafSchema, "next")); self != leaf {
			t.Errorf("GET %s: %s's next refers to %s, not to it", path, leaf, self)
		}
		trees[tree], leaves[leaf] = true, true
	}
	if len(trees) != 2 || len(leaves) != 2 {
		t.Errorf("the two backends share components: trees %v, leaves %v", trees, leaves)
	}
	tok := f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: audience, Scope: "openid"})
	for path, backend := range map[string]string{"/actions/tree-a": "a", "/actions/tree-b": "b"} {
		// f.do validates the response against the served document.
		if r := f.do(t, http.MethodGet, path+"?text=x", bearer(tok)); r.status != 200 || string(r.body) != `{"text":"x","backend":"`+backend+`","tree":null}` {
			t.Errorf("GET %s: %d %s", path, r.status, r.body)
		}
	}
}

package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// itemService is service pkg.name with one operation, method at path,
// whose request holds text and the path parameter param (both strings);
// its response is registrytest's (text, and the backend's label).
func itemService(pkg, name, method, path, param, opID string) registrytest.Service {
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	field := func(name string, n int32) *descriptorpb.FieldDescriptorProto {
		return &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(n), Type: str, Label: opt, JsonName: proto.String(name)}
	}
	mo := &descriptorpb.MethodOptions{}
	proto.SetExtension(mo, optionsv1.E_ActionsOperation, &optionsv1.ActionsOperation{
		Method: method, Path: path, OperationId: opID, Summary: "Item", RequiredScopes: []string{"openid"}})
	return registrytest.Service{Package: pkg, Name: name, Proto: &descriptorpb.FileDescriptorProto{
		Name:       proto.String(pkg + "/" + name + ".proto"),
		Package:    proto.String(pkg),
		Syntax:     proto.String("proto3"),
		Dependency: []string{optionsv1.File_tollgate_options_v1_options_proto.Path()},
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("ItemRequest"), Field: []*descriptorpb.FieldDescriptorProto{field("text", 1), field(param, 2)}},
			{Name: proto.String("ItemResponse"), Field: []*descriptorpb.FieldDescriptorProto{field("text", 1), field("backend", 2)}},
		},
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: proto.String(name), Method: []*descriptorpb.MethodDescriptorProto{{
			Name: proto.String("Item"), InputType: proto.String("." + pkg + ".ItemRequest"), OutputType: proto.String("." + pkg + ".ItemResponse"), Options: mo,
		}}}},
	}}
}

// answeredBy calls method path with tok and wants a 200 from backend.
func answeredBy(t *testing.T, f *fleet, tok, method, path, backend string) {
	t.Helper()
	r := f.do(t, method, path, bearer(tok))
	if r.status != 200 || !strings.Contains(string(r.body), `"backend":"`+backend+`"`) {
		t.Errorf("%s %s: %d %s, want the %s backend's answer", method, path, r.status, r.body, backend)
	}
}

// TestEquivalentRouteAtStartRefusesOnlyThatService: a backend declaring
// GET /actions/items/{item_id} beside another's GET /actions/items/{id}
// (one route: the same requests match both) was served as a second route:
// the router sent one backend's calls to the other, and kin-openapi
// refused the document holding both paths. Now the later backend's
// service is refused, logged and counted as a conflict; the document is
// valid (start validates it with kin-openapi) and each call reaches its
// own backend.
func TestEquivalentRouteAtStartRefusesOnlyThatService(t *testing.T) {
	items := registrytest.Start(t, "items", []registrytest.Service{itemService("items", "ItemsService", "GET", "/actions/items/{id}", "id", "getItem")})
	other := registrytest.Start(t, "other", []registrytest.Service{notesService("misc"),
		itemService("other", "OtherService", "GET", "/actions/items/{item_id}", "item_id", "getOtherItem")})
	f := start(t, map[string]string{
		"CAPABILITY_BACKENDS": "capability-core=$CORE_GRPC_ADDR,items=" + items.Addr + ",other=" + other.Addr,
	})
	if f.doc.Paths.Value("/actions/items/{item_id}") != nil || f.doc.Paths.Value("/actions/items/{id}") == nil || f.doc.Paths.Value("/actions/misc") == nil {
		t.Errorf("paths = %v, want /actions/items/{id} and /actions/misc, not /actions/items/{item_id}", f.doc.Paths.InMatchingOrder())
	}
	tok := f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: audience, Scope: "openid misc.read"})
	answeredBy(t, f, tok, http.MethodGet, "/actions/items/42?text=hi", "items")
	answeredBy(t, f, tok, http.MethodGet, "/actions/misc?text=m", "other")
	for _, c := range other.Calls() {
		if strings.Contains(c.Method, "OtherService") {
			t.Errorf("the refused service was called: %+v", c)
		}
	}
	logs := f.logs.String()
	for _, want := range []string{`"msg":"capability service refused"`, `"backend":"other"`, `"service":"other.OtherService"`, `"winner":"items"`,
		`other.OtherService.Item: route GET /actions/items/{item_id} already declared by items.ItemsService.Item as GET /actions/items/{id}: paths that differ only in their parameters' names are one route`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	res, err := http.Get(f.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	metrics, _ := io.ReadAll(res.Body)
	if want := `tollgate_capability_conflicts_total{backend="other"} 1`; !strings.Contains(string(metrics), want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

// TestEquivalentPathAtRefreshFreezesNoOtherBackend: DELETE
// /actions/items/{item_id} beside GET /actions/items/{id} is another
// method, but one OpenAPI path with two names ("Templated paths with the
// same hierarchy but different templated names MUST NOT exist", OpenAPI
// 3.1, Paths Object): kin-openapi refused the document. Declared while
// the actions-api ran, it is refused alone: another backend's new
// operations are served, the document stays valid, and once the names
// agree the DELETE is served, each method reaching its own backend.
func TestEquivalentPathAtRefreshFreezesNoOtherBackend(t *testing.T) {
	items := registrytest.Start(t, "items", []registrytest.Service{itemService("items", "ItemsService", "GET", "/actions/items/{id}", "id", "getItem")})
	other := registrytest.Start(t, "other", []registrytest.Service{notesService("misc")})
	f := start(t, map[string]string{
		"CAPABILITY_BACKENDS":         "capability-core=$CORE_GRPC_ADDR,items=" + items.Addr + ",other=" + other.Addr,
		"CAPABILITY_REFRESH_INTERVAL": "1s",
	})
	other.Serve(t, notesService("misc"), itemService("other", "OtherService", "DELETE", "/actions/items/{item_id}", "item_id", "deleteItem"))
	items.Serve(t, itemService("items", "ItemsService", "GET", "/actions/items/{id}", "id", "getItem"), notesService("todo"))
	eventually(t, "the items backend's new operations to be served", func() bool {
		f.loadDocument(t) // fails the test unless the document is valid
		return f.doc.Paths.Value("/actions/todo") != nil
	})
	if p := f.doc.Paths.Value("/actions/items/{id}"); p == nil || p.Get == nil || p.Delete != nil || f.doc.Paths.Value("/actions/items/{item_id}") != nil {
		t.Errorf("paths = %v, want GET /actions/items/{id} alone", f.doc.Paths.InMatchingOrder())
	}
	if want := `other.OtherService.Item: action path /actions/items/{item_id} differs from /actions/items/{id}, already declared by items.ItemsService.Item, only in its parameters' names`; !strings.Contains(f.logs.String(), want) {
		t.Errorf("logs lack %s:\n%s", want, f.logs)
	}
	tok := f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: audience, Scope: "openid todo.read misc.read"})
	answeredBy(t, f, tok, http.MethodGet, "/actions/todo?text=t", "items")
	answeredBy(t, f, tok, http.MethodGet, "/actions/items/7?text=hi", "items")

	// The names agree: both methods are served at the one path, each by
	// its backend.
	other.Serve(t, notesService("misc"), itemService("other", "OtherService", "DELETE", "/actions/items/{id}", "id", "deleteItem"))
	eventually(t, "the DELETE to be served", func() bool {
		f.loadDocument(t)
		p := f.doc.Paths.Value("/actions/items/{id}")
		return p != nil && p.Delete != nil
	})
	answeredBy(t, f, tok, http.MethodDelete, "/actions/items/7?text=bye", "other")
	answeredBy(t, f, tok, http.MethodGet, "/actions/items/7?text=hi", "items")
}

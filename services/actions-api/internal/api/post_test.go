package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// notesFile declares, as a capability author would in proto, a POST
// operation: AddNote takes a JSON body and is consequential. It is built
// at run time so that no generated code or connector code exists for it.
func notesFile(t *testing.T) protoreflect.FileDescriptor {
	t.Helper()
	field := func(name string, n int32, typ descriptorpb.FieldDescriptorProto_Type, label descriptorpb.FieldDescriptorProto_Label, desc string) *descriptorpb.FieldDescriptorProto {
		opts := &descriptorpb.FieldOptions{}
		proto.SetExtension(opts, optionsv1.E_FieldDescription, desc)
		return &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(n), Type: typ.Enum(), Label: label.Enum(), JsonName: proto.String(name), Options: opts}
	}
	opt, rep := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL, descriptorpb.FieldDescriptorProto_LABEL_REPEATED
	str, i32 := descriptorpb.FieldDescriptorProto_TYPE_STRING, descriptorpb.FieldDescriptorProto_TYPE_INT32
	mopts := &descriptorpb.MethodOptions{}
	proto.SetExtension(mopts, optionsv1.E_ActionsOperation, &optionsv1.ActionsOperation{
		Method: "POST", Path: "/actions/notes", OperationId: "addNote", Summary: "Add a note",
		Description: "Stores a note for the signed-in user.", RequiredScopes: []string{"openid"}, Consequential: true,
	})
	fdp := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("tollgate/testing/dyn/v1/notes.proto"),
		Package: proto.String("tollgate.testing.dyn.v1"),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("AddNoteRequest"), Field: []*descriptorpb.FieldDescriptorProto{
				field("text", 1, str, opt, "Text of the note."), field("tags", 2, str, rep, "Labels for the note."),
			}},
			{Name: proto.String("AddNoteResponse"), Field: []*descriptorpb.FieldDescriptorProto{
				field("summary", 1, str, opt, "What was stored."), field("tag_count", 2, i32, opt, "How many tags."),
			}},
		},
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: proto.String("NotesService"), Method: []*descriptorpb.MethodDescriptorProto{{
			Name: proto.String("AddNote"), InputType: proto.String(".tollgate.testing.dyn.v1.AddNoteRequest"),
			OutputType: proto.String(".tollgate.testing.dyn.v1.AddNoteResponse"), Options: mopts,
		}}}},
	}
	fd, err := protodesc.NewFile(fdp, nil)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

// TestPostOperation: a POST capability is served with its JSON body
// decoded into the request message, and every body refusal (wrong type,
// bad JSON, unknown field, query parameters, too large) is a documented
// error in the one shape.
func TestPostOperation(t *testing.T) {
	fd := notesFile(t)
	reg, err := registry.New(fd.Services().Get(0))
	if err != nil {
		t.Fatal(err)
	}
	method := fd.Services().Get(0).Methods().Get(0)
	// A generic gRPC handler answers the dynamic service, as capability-core would.
	handler := grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		in := dynamicpb.NewMessage(method.Input())
		if err := stream.RecvMsg(in); err != nil {
			return err
		}
		out := dynamicpb.NewMessage(method.Output())
		text := in.Get(method.Input().Fields().ByName("text")).String()
		tags := in.Get(method.Input().Fields().ByName("tags")).List()
		out.Set(method.Output().Fields().ByName("summary"), protoreflect.ValueOfString("stored: "+text))
		out.Set(method.Output().Fields().ByName("tag_count"), protoreflect.ValueOfInt32(int32(tags.Len())))
		return stream.SendMsg(out)
	})
	api := serveCapability(t, reg, nil, handler)
	tok := api.iss.Mint(t, tokentest.Token{Audience: testAudience, Scope: "openid"})
	post := func(query, contentType, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, api.url+"/actions/notes"+query, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		code, b := api.send(t, req, []byte(body))
		return code, string(b)
	}

	code, body := post("", "application/json", `{"text":"milk","tags":["home","shop"]}`)
	if code != 200 || body != `{"summary":"stored: milk","tag_count":2}` {
		t.Fatalf("POST: %d %s", code, body)
	}
	if code, body := post("", "", ""); code != 200 || !strings.Contains(body, `"tag_count":0`) {
		t.Errorf("POST with no body: %d %s, want the empty request", code, body)
	}
	big := `{"text":"` + strings.Repeat("x", 4096) + `"}`
	for _, tc := range []struct {
		name, query, ct, body string
		code                  int
		want                  string
	}{
		{"form body", "", "application/x-www-form-urlencoded", "text=milk", 415, "Content-Type must be application/json"},
		{"bad JSON", "", "application/json", `{"text":`, 400, "invalid_request"},
		{"unknown field", "", "application/json", `{"txt":"milk"}`, 400, "invalid_request"},
		{"wrong type", "", "application/json", `{"tags":"home"}`, 400, "invalid_request"},
		{"query parameters", "?text=milk", "application/json", `{}`, 400, "JSON body, not query parameters"},
		{"too large", "", "application/json", big, 413, "request_too_large"},
		// Present but not a JSON object: whitespace is no JSON text (RFC
		// 8259 section 2) and null no object; both were read as no body.
		{"whitespace body", "", "application/json", " \r\n\t", 400, "the request body holds only whitespace, which is not JSON"},
		{"no-break space body", "", "application/json", "\u00a0", 400, "the request body holds only whitespace, which is not JSON"},
		{"null body", "", "application/json", "null", 400, "the request body is null: send a JSON object"},
		{"null body in whitespace", "", "", " null\n", 400, "the request body is null: send a JSON object"},
		{"array body", "", "application/json", "[]", 400, "invalid_request"},
	} {
		code, body := post(tc.query, tc.ct, tc.body)
		if code != tc.code || !strings.Contains(body, tc.want) || !strings.HasPrefix(body, `{"error":`) {
			t.Errorf("%s: %d %s, want %d %s", tc.name, code, body, tc.code, tc.want)
		}
	}
	if code, body := post("", "application/json", "{}"); code != 200 || !strings.Contains(body, `"tag_count":0`) {
		t.Errorf("POST {}: %d %s, want the empty request", code, body)
	}
	if !bytes.Contains([]byte(body), []byte("milk")) {
		t.Error("the body did not reach the capability")
	}
	// The document's 400 names every refusal above that is a 400, so
	// that a GPT builder reading it can tell what went wrong.
	res, err := http.Get(api.url + PathOpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]struct{ Description string }
		}
	}
	err = json.NewDecoder(res.Body).Decode(&doc)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	desc := doc.Paths["/actions/notes"]["post"].Responses["400"].Description
	for _, want := range []string{"JSON object", "Content-Type", "query parameters"} {
		if !strings.Contains(desc, want) {
			t.Errorf("the document's 400 of addNote does not mention %s: %q", want, desc)
		}
	}
	desc = doc.Paths["/actions/notes"]["post"].Responses["415"].Description
	for _, want := range []string{"application/json", "Content-Encoding"} {
		if !strings.Contains(desc, want) {
			t.Errorf("the document's 415 of addNote does not mention %s: %q", want, desc)
		}
	}
}

// TestPostOperationWithPathParameter: a POST whose path names a request
// field ("/actions/notes/{note_id}/pin", as add-a-capability.md allows)
// takes that field from the path and the others from the body. The
// document declares the path parameter (kin-openapi refuses a path
// template without one) and leaves it out of the body schema; a body that
// names it too is a 400.
func TestPostOperationWithPathParameter(t *testing.T) {
	fd := notesFile(t)
	fdp := protodesc.ToFileDescriptorProto(fd)
	fdp.MessageType[0].Field = append(fdp.MessageType[0].Field, &descriptorpb.FieldDescriptorProto{
		Name: proto.String("note_id"), Number: proto.Int32(3), Type: descriptorpb.FieldDescriptorProto_TYPE_INT64.Enum(),
		Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), JsonName: proto.String("note_id"),
	})
	m := fdp.Service[0].Method[0]
	m.Name = proto.String("TagNote")
	op := proto.GetExtension(m.Options, optionsv1.E_ActionsOperation).(*optionsv1.ActionsOperation)
	op.Path, op.OperationId = "/actions/notes/{note_id}/tags", "tagNote"
	api := serveNotesMethod(t, fdp, func(in protoreflect.Message, f protoreflect.FieldDescriptors) (string, int32) {
		return fmt.Sprintf("note %d: %s", in.Get(f.ByName("note_id")).Int(), in.Get(f.ByName("text")).String()), int32(in.Get(f.ByName("tags")).List().Len())
	})
	tok := api.iss.Mint(t, tokentest.Token{Audience: testAudience, Scope: "openid"})
	post := func(path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, api.url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		code, b := api.send(t, req, []byte(body))
		return code, string(b)
	}
	if code, body := post("/actions/notes/42/tags", `{"text":"milk","tags":["home"]}`); code != 200 || body != `{"summary":"note 42: milk","tag_count":1}` {
		t.Errorf("POST with a path parameter: %d %s, want note 42 from the path", code, body)
	}
	for _, tc := range []struct {
		name, path, body, want string
	}{
		{"path field in the body", "/actions/notes/42/tags", `{"note_id":"7","text":"milk"}`, "note_id is a path parameter"},
		{"path value of the wrong type", "/actions/notes/x/tags", `{"text":"milk"}`, "note_id"},
	} {
		if code, body := post(tc.path, tc.body); code != 400 || !strings.Contains(body, tc.want) || !strings.HasPrefix(body, `{"error":"invalid_request"`) {
			t.Errorf("%s: %d %s, want 400 invalid_request naming %q", tc.name, code, body, tc.want)
		}
	}
}

// TestQueryCannotRenameAPathParameter: DecodeQuery takes a field by its
// proto name or its JSON name, so "?noteId=" names the path's note_id and
// "?tagCount=&tag_count=" one field twice. Either is a 400: before, which
// value the backend got depended on map order, and a DELETE's query could
// replace the id in its path (the one ChatGPT shows the user to confirm).
func TestQueryCannotRenameAPathParameter(t *testing.T) {
	_, del := deleteNoteAPI(t)
	if code, body := del("/actions/notes/a?tag_count=2"); code != 200 || body != `{"summary":"deleted a","tag_count":2}` {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	for _, tc := range []struct{ query, want string }{
		{"?note_id=b", "note_id is a path parameter"},
		{"?noteId=b", "note_id is a path parameter"},
		{"?tag_count=1&tagCount=2", `\"tagCount\" and \"tag_count\" name the same field`},
	} {
		// Map order decided which value won: ask a few times.
		for range 8 {
			if code, body := del("/actions/notes/a" + tc.query); code != 400 || !strings.Contains(body, tc.want) {
				t.Errorf("%s: %d %s, want 400 %s", tc.query, code, body, tc.want)
				break
			}
		}
	}
}

// TestPathParameterIsDecoded: a path parameter reaches the backend
// percent-decoded however the client encoded it. echo matches a path with
// an escape Go would not have written (%2F, %5F) on its raw form and gave
// the raw "a%2Fb" as the parameter, while "a%20b" arrived as "a b".
func TestPathParameterIsDecoded(t *testing.T) {
	api, del := deleteNoteAPI(t)
	for path, want := range map[string]string{
		"/actions/notes/a%20b": "deleted a b",
		"/actions/notes/a%5Fb": "deleted a_b", // an unreserved character needlessly escaped
		"/actions/notes/a_b":   "deleted a_b",
	} {
		if code, body := del(path); code != 200 || !strings.Contains(body, want) {
			t.Errorf("DELETE %s: %d %s, want %q", path, code, body, want)
		}
	}
	// kin-openapi's router cannot route an escaped slash: sent without it.
	req, _ := http.NewRequest(http.MethodDelete, api.url+"/actions/notes/a%2Fb", nil)
	req.Header.Set("Authorization", "Bearer "+api.iss.Mint(t, tokentest.Token{Audience: testAudience, Scope: "openid"}))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(b), "deleted a/b") {
		t.Errorf("DELETE /actions/notes/a%%2Fb: %d %s, want \"deleted a/b\"", res.StatusCode, b)
	}
}

// deleteNoteAPI serves DELETE /actions/notes/{note_id} (with a tag_count
// query field) over real gRPC; its answer names the note_id it got.
func deleteNoteAPI(t *testing.T) (*testAPI, func(pathAndQuery string) (int, string)) {
	t.Helper()
	fdp := protodesc.ToFileDescriptorProto(notesFile(t))
	fdp.MessageType[0].Field = []*descriptorpb.FieldDescriptorProto{
		{Name: proto.String("note_id"), Number: proto.Int32(1), Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(),
			Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), JsonName: proto.String("noteId")},
		{Name: proto.String("tag_count"), Number: proto.Int32(2), Type: descriptorpb.FieldDescriptorProto_TYPE_INT32.Enum(),
			Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), JsonName: proto.String("tagCount")},
	}
	m := fdp.Service[0].Method[0]
	m.Name = proto.String("DeleteNote")
	op := proto.GetExtension(m.Options, optionsv1.E_ActionsOperation).(*optionsv1.ActionsOperation)
	op.Method, op.Path, op.OperationId = "DELETE", "/actions/notes/{note_id}", "deleteNote"
	api := serveNotesMethod(t, fdp, func(in protoreflect.Message, f protoreflect.FieldDescriptors) (string, int32) {
		return "deleted " + in.Get(f.ByName("note_id")).String(), int32(in.Get(f.ByName("tag_count")).Int())
	})
	tok := api.iss.Mint(t, tokentest.Token{Audience: testAudience, Scope: "openid"})
	del := func(pathAndQuery string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodDelete, api.url+pathAndQuery, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		code, b := api.send(t, req, nil)
		return code, string(b)
	}
	return api, del
}

// serveNotesMethod serves fdp's one method (a variant of notesFile's) over
// real gRPC behind the actions API, whose document kin-openapi must
// accept (serveCapability); the backend answers the summary and tag_count
// that answer computes from the request it got.
func serveNotesMethod(t *testing.T, fdp *descriptorpb.FileDescriptorProto, answer func(in protoreflect.Message, f protoreflect.FieldDescriptors) (summary string, tagCount int32)) *testAPI {
	t.Helper()
	fd, err := protodesc.NewFile(fdp, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(fd.Services().Get(0))
	if err != nil {
		t.Fatal(err)
	}
	method := fd.Services().Get(0).Methods().Get(0)
	handler := grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		in := dynamicpb.NewMessage(method.Input())
		if err := stream.RecvMsg(in); err != nil {
			return err
		}
		summary, tags := answer(in, method.Input().Fields())
		out := dynamicpb.NewMessage(method.Output())
		out.Set(method.Output().Fields().ByName("summary"), protoreflect.ValueOfString(summary))
		out.Set(method.Output().Fields().ByName("tag_count"), protoreflect.ValueOfInt32(tags))
		return stream.SendMsg(out)
	})
	return serveCapability(t, reg, nil, handler)
}

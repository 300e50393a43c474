package backend_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	notesv1 "github.com/tollgate/tollgate/services/example-backend/gen/example/notes/v1"
	"github.com/tollgate/tollgate/services/example-backend/internal/backend"
	"github.com/tollgate/tollgate/services/example-backend/internal/notes"
	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

const (
	issuer  = "http://localhost:4000"
	mcpAud  = "http://localhost:4000/mcp"
	actsAud = "http://localhost:4000/actions"
)

type fixture struct {
	iss   *tokentest.Issuer
	conn  *grpc.ClientConn
	notes notesv1.NotesServiceClient
	svc   *testharness.Service
}

// start runs the example backend in-process on free ports, with a real
// KeySetService, and connects to it over TCP.
func start(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{iss: tokentest.Start(t, issuer)}
	f.svc = testharness.RunService(t, backend.Run, map[string]string{
		"GRPC_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0", "AUTH_GRPC_ADDR": f.iss.Addr,
		"MCP_RESOURCE_URL": mcpAud, "ACTIONS_AUDIENCE": actsAud,
	})
	conn, err := grpc.NewClient(f.svc.Addr("grpc"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	f.conn, f.notes = conn, notesv1.NewNotesServiceClient(conn)
	return f
}

// as returns a context whose call carries a token of subject with scope.
func (f *fixture) as(t *testing.T, subject, scope string) context.Context {
	tok := f.iss.Mint(t, tokentest.Token{Subject: subject, Audience: mcpAud, Scope: scope})
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
}

func wantCode(t *testing.T, what string, err error, code codes.Code, text string) {
	t.Helper()
	s := status.Convert(err)
	if s.Code() != code || !strings.Contains(s.Message(), text) {
		t.Errorf("%s: %v, want %s containing %q", what, err, code, text)
	}
}

func TestNotesPerCallerWithTheirScopes(t *testing.T) {
	f := start(t)
	alice := f.as(t, "alice", "notes.read notes.write")
	added, err := f.notes.AddNote(alice, &notesv1.AddNoteRequest{Text: "  buy milk \n"})
	if err != nil {
		t.Fatal(err)
	}
	if n := added.GetNote(); n.GetText() != "buy milk" || !strings.HasPrefix(n.GetId(), "note_") || n.GetCreatedAt() == nil {
		t.Errorf("added = %v", n)
	}
	second, err := f.notes.AddNote(alice, &notesv1.AddNoteRequest{Text: "call Bob"})
	if err != nil {
		t.Fatal(err)
	}
	list, err := f.notes.ListNotes(alice, &notesv1.ListNotesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := list.GetNotes(); len(got) != 2 || got[0].GetId() != second.GetNote().GetId() {
		t.Errorf("alice's list = %v", got)
	}

	// Another caller sees none of them and cannot delete them.
	bob := f.as(t, "bob", "notes.read notes.write")
	if list, err := f.notes.ListNotes(bob, &notesv1.ListNotesRequest{}); err != nil || len(list.GetNotes()) != 0 {
		t.Errorf("bob's list = %v, %v", list, err)
	}
	_, err = f.notes.DeleteNote(bob, &notesv1.DeleteNoteRequest{NoteId: added.GetNote().GetId()})
	wantCode(t, "bob deletes alice's note", err, codes.NotFound, "no note")

	if _, err := f.notes.DeleteNote(alice, &notesv1.DeleteNoteRequest{NoteId: added.GetNote().GetId()}); err != nil {
		t.Fatal(err)
	}
	_, err = f.notes.DeleteNote(alice, &notesv1.DeleteNoteRequest{NoteId: added.GetNote().GetId()})
	wantCode(t, "deleting twice", err, codes.NotFound, "no note")

	// A token with notes.read only reads; writing needs notes.write.
	reader := f.as(t, "alice", "notes.read")
	if list, err := f.notes.ListNotes(reader, &notesv1.ListNotesRequest{Limit: 1}); err != nil || len(list.GetNotes()) != 1 {
		t.Errorf("read-only list = %v, %v", list, err)
	}
	_, err = f.notes.AddNote(reader, &notesv1.AddNoteRequest{Text: "x"})
	wantCode(t, "add with notes.read", err, codes.PermissionDenied, "missing scopes: notes.write")
	_, err = f.notes.DeleteNote(reader, &notesv1.DeleteNoteRequest{NoteId: second.GetNote().GetId()})
	wantCode(t, "delete with notes.read", err, codes.PermissionDenied, "missing scopes: notes.write")
	writer := f.as(t, "alice", "notes.write")
	_, err = f.notes.ListNotes(writer, &notesv1.ListNotesRequest{})
	wantCode(t, "list with notes.write", err, codes.PermissionDenied, "missing scopes: notes.read")

	// The Actions audience is accepted as well as the MCP resource.
	acts := metadata.AppendToOutgoingContext(context.Background(), "authorization",
		"Bearer "+f.iss.Mint(t, tokentest.Token{Subject: "alice", Audience: actsAud, Scope: "notes.read"}))
	if list, err := f.notes.ListNotes(acts, &notesv1.ListNotesRequest{}); err != nil || len(list.GetNotes()) != 1 {
		t.Errorf("list with an Actions token = %v, %v", list, err)
	}
}

func TestRefusedCallers(t *testing.T) {
	f := start(t)
	req := &notesv1.ListNotesRequest{}
	_, err := f.notes.ListNotes(context.Background(), req)
	wantCode(t, "no token", err, codes.Unauthenticated, "bearer access token is required")

	bad := func(tok string) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
	}
	_, err = f.notes.ListNotes(bad("not-a-jwt"), req)
	wantCode(t, "garbage token", err, codes.Unauthenticated, "access token rejected")
	_, err = f.notes.ListNotes(bad(f.iss.Mint(t, tokentest.Token{Audience: "https://elsewhere.example/api", Scope: "notes.read"})), req)
	wantCode(t, "other audience", err, codes.Unauthenticated, "access token rejected")
	_, err = f.notes.ListNotes(bad(f.iss.Mint(t, tokentest.Token{Audience: mcpAud, Scope: "notes.read", IssuedAt: time.Now().Add(-2 * time.Hour)})), req)
	wantCode(t, "expired", err, codes.Unauthenticated, "access token rejected")
	_, err = f.notes.ListNotes(bad(f.iss.Mint(t, tokentest.Token{Audience: mcpAud, Scope: "notes.read", Issuer: "https://evil.example"})), req)
	wantCode(t, "other issuer", err, codes.Unauthenticated, "access token rejected")
	_, err = f.notes.ListNotes(bad(f.iss.Mint(t, tokentest.Token{Audience: mcpAud, Scope: "openid profile"})), req)
	wantCode(t, "no notes scope", err, codes.PermissionDenied, "missing scopes: notes.read")
}

func TestRefusedArguments(t *testing.T) {
	f := start(t)
	ctx := f.as(t, "alice", "notes.read notes.write")
	for _, c := range []struct {
		text, want string
	}{
		{"", "text is required"},
		{" \n\t ", "text is required"},
		{strings.Repeat("é", notes.MaxTextRunes+1), "at most 500"},
		{"bell\a", "control character (U+0007)"},
	} {
		_, err := f.notes.AddNote(ctx, &notesv1.AddNoteRequest{Text: c.text})
		wantCode(t, fmt.Sprintf("add %q", c.text), err, codes.InvalidArgument, c.want)
	}
	if _, err := f.notes.AddNote(ctx, &notesv1.AddNoteRequest{Text: strings.Repeat("é", notes.MaxTextRunes)}); err != nil {
		t.Errorf("a note of exactly %d characters: %v", notes.MaxTextRunes, err)
	}
	_, err := f.notes.ListNotes(ctx, &notesv1.ListNotesRequest{Limit: notes.MaxListLimit + 1})
	wantCode(t, "limit too large", err, codes.InvalidArgument, "limit must be 0 to 100")
	_, err = f.notes.DeleteNote(ctx, &notesv1.DeleteNoteRequest{})
	wantCode(t, "delete without id", err, codes.InvalidArgument, "note_id is required")

	for i := 1; i < notes.MaxNotesPerSubject; i++ {
		if _, err := f.notes.AddNote(ctx, &notesv1.AddNoteRequest{Text: fmt.Sprint("note ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = f.notes.AddNote(ctx, &notesv1.AddNoteRequest{Text: "one too many"})
	wantCode(t, "over the per-user limit", err, codes.InvalidArgument, "you already have 100 notes")
}

// TestDiscoverableWithoutAToken reads the backend as the connectors do:
// health and reflection v1 answer without a token, and the descriptors
// served make a valid capability registry with the example's tools,
// operations and scopes.
func TestDiscoverableWithoutAToken(t *testing.T) {
	f := start(t)
	h, err := healthpb.NewHealthClient(f.conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", h, err)
	}

	stream, err := reflectionpb.NewServerReflectionClient(f.conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ask := func(req *reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse {
		t.Helper()
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if e := resp.GetErrorResponse(); e != nil {
			t.Fatalf("reflection error: %v", e)
		}
		return resp
	}
	list := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
	var services []string
	for _, s := range list.GetListServicesResponse().GetService() {
		services = append(services, s.GetName())
	}
	if !strings.Contains(strings.Join(services, " "), "example.notes.v1.NotesService") {
		t.Fatalf("services = %v", services)
	}

	// The file of the service and its dependencies (the Tollgate options
	// among them), as the connectors fetch them.
	files := &descriptorpb.FileDescriptorSet{}
	resp := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "example.notes.v1.NotesService"}})
	for _, b := range resp.GetFileDescriptorResponse().GetFileDescriptorProto() {
		fd := &descriptorpb.FileDescriptorProto{}
		if err := proto.Unmarshal(b, fd); err != nil {
			t.Fatal(err)
		}
		files.File = append(files.File, fd)
	}
	reg, err := protodesc.NewFiles(files)
	if err != nil {
		t.Fatalf("reflected files: %v", err)
	}
	d, err := reg.FindDescriptorByName("example.notes.v1.NotesService")
	if err != nil {
		t.Fatal(err)
	}
	caps, err := registry.New(d.(protoreflect.ServiceDescriptor))
	if err != nil {
		t.Fatalf("registry from reflection: %v", err)
	}
	var tools []string
	for _, tool := range caps.Tools() {
		a := tool.Annotations
		tools = append(tools, fmt.Sprintf("%s ro=%t destructive=%t idempotent=%t %v", tool.Name, a.ReadOnly(), a.Destructive(), a.Idempotent(), tool.RequiredScopes))
	}
	wantTools := "notes.add ro=false destructive=false idempotent=false [notes.write]\n" +
		"notes.delete ro=false destructive=true idempotent=true [notes.write]\n" +
		"notes.list ro=true destructive=false idempotent=true [notes.read]"
	if got := strings.Join(tools, "\n"); got != wantTools {
		t.Errorf("tools:\n%s\nwant:\n%s", got, wantTools)
	}
	var ops []string
	for _, a := range caps.Actions() {
		ops = append(ops, fmt.Sprintf("%s %s %s consequential=%t", a.Method, a.Path, a.OperationID, a.Consequential))
	}
	wantOps := "GET /actions/notes listNotes consequential=false\n" +
		"POST /actions/notes addNote consequential=true\n" +
		"DELETE /actions/notes/{note_id} deleteNote consequential=true"
	if got := strings.Join(ops, "\n"); got != wantOps {
		t.Errorf("operations:\n%s\nwant:\n%s", got, wantOps)
	}
	var scopes []string
	for _, s := range caps.SupportedScopes() {
		scopes = append(scopes, s.Name+": "+s.Description)
	}
	if got := strings.Join(scopes, "; "); !strings.Contains(got, "notes.read: Read your notes") || !strings.Contains(got, "notes.write: Add and delete your notes") {
		t.Errorf("scopes = %s", got)
	}
}

// Every configuration mistake is reported at once, before anything listens.
func TestConfigurationRefused(t *testing.T) {
	env := map[string]string{"TOLLGATE_ENV": "production", "GRPC_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0", "MCP_RESOURCE_URL": "http://mcp.example"}
	err := backend.Run(context.Background(), func(k string) string { return env[k] }, io.Discard, nil)
	if err == nil {
		t.Fatal("started without AUTH_GRPC_ADDR")
	}
	for _, want := range []string{"AUTH_GRPC_ADDR: required", "MCP_RESOURCE_URL", "ACTIONS_AUDIENCE: required", "REDIS_URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

// Package registrytest runs capability backends for tests: real gRPC
// servers on loopback TCP that serve gRPC server reflection (v1) and
// answer, dynamically, services described by FileDescriptorProtos built in
// the test — with Tollgate's options — which a test can change, stop and
// restart on the same address while connectors discover them. While
// stopped, a backend's port is held (testharness.HoldAddr): connecting is
// refused, as at a backend that is down, and no other listener of the
// test (a fleet's servers on :0) is given the port before Restart.
package registrytest

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/durationpb"

	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// Method is one unary RPC of a Service: request {string text = 1},
// response {string text = 1; string backend = 2}.
type Method struct {
	Name   string
	Tool   *optionsv1.McpTool
	Action *optionsv1.ActionsOperation
}

// Service is one annotated service in its own file.
type Service struct {
	Package, Name string
	Scopes        []*optionsv1.Scope
	Methods       []Method
	// Proto, when set, is the service's file as is (Package and Name must
	// name its service; Scopes and Methods are ignored): messages of any
	// shape. A method whose request has no text field echoes its request
	// when the response is of the same type, else answers an empty
	// response. Its dependencies are taken from protoregistry.GlobalFiles
	// (the well-known types, Tollgate's options).
	Proto *descriptorpb.FileDescriptorProto
}

// FullName is "package.Name", or Name in a file with no package.
func (s Service) FullName() string {
	if s.Package == "" {
		return s.Name
	}
	return s.Package + "." + s.Name
}

// File describes s as a .proto file importing Tollgate's options.
func (s Service) File() *descriptorpb.FileDescriptorProto {
	if s.Proto != nil {
		return s.Proto
	}
	so := &descriptorpb.ServiceOptions{}
	if len(s.Scopes) > 0 {
		proto.SetExtension(so, optionsv1.E_Scope, s.Scopes)
	}
	fd := &descriptorpb.FileDescriptorProto{
		Name:       proto.String(fmt.Sprintf("%s/%s.proto", s.Package, s.Name)),
		Package:    proto.String(s.Package),
		Syntax:     proto.String("proto3"),
		Dependency: []string{optionsv1.File_tollgate_options_v1_options_proto.Path()},
	}
	svc := &descriptorpb.ServiceDescriptorProto{Name: proto.String(s.Name), Options: so}
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	for _, m := range s.Methods {
		mo := &descriptorpb.MethodOptions{}
		if m.Tool != nil {
			proto.SetExtension(mo, optionsv1.E_McpTool, []*optionsv1.McpTool{m.Tool})
		}
		if m.Action != nil {
			proto.SetExtension(mo, optionsv1.E_ActionsOperation, m.Action)
		}
		fd.MessageType = append(fd.MessageType,
			&descriptorpb.DescriptorProto{Name: proto.String(m.Name + "Request"), Field: []*descriptorpb.FieldDescriptorProto{
				{Name: proto.String("text"), Number: proto.Int32(1), Type: str, Label: opt, JsonName: proto.String("text")},
			}},
			&descriptorpb.DescriptorProto{Name: proto.String(m.Name + "Response"), Field: []*descriptorpb.FieldDescriptorProto{
				{Name: proto.String("text"), Number: proto.Int32(1), Type: str, Label: opt, JsonName: proto.String("text")},
				{Name: proto.String("backend"), Number: proto.Int32(2), Type: str, Label: opt, JsonName: proto.String("backend")},
			}})
		svc.Method = append(svc.Method, &descriptorpb.MethodDescriptorProto{
			Name:      proto.String(m.Name),
			InputType: proto.String("." + s.Package + "." + m.Name + "Request"), OutputType: proto.String("." + s.Package + "." + m.Name + "Response"),
			Options: mo,
		})
	}
	fd.Service = []*descriptorpb.ServiceDescriptorProto{svc}
	return fd
}

// Call is one call a Backend answered.
type Call struct {
	Method string // "/pkg.Service/Method"
	Text   string // the request's text
	MD     metadata.MD
}

// Backend is a capability backend on loopback TCP.
type Backend struct {
	// Addr is host:port, the same across Restart.
	Addr string
	// Label is put in every response's backend field.
	Label string

	mu      sync.Mutex
	files   *protoregistry.Files
	svcs    map[string]grpc.ServiceInfo
	calls   []Call
	hold    chan struct{} // when set, calls wait on it
	entered chan struct{}
	srv     *grpc.Server
	ln      net.Listener
	release func() // the stopped backend's hold on Addr
	opts    []grpc.ServerOption
}

// Start serves services on a free loopback port until the test ends.
// opts are extra server options (TLS credentials, for example).
func Start(t testing.TB, label string, services []Service, opts ...grpc.ServerOption) *Backend {
	t.Helper()
	b, err := Listen(label, services, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// Listen is Start for a caller without a test (a TestMain that starts a
// fleet around the backend): it serves services on a free loopback port
// until b.Close.
func Listen(label string, services []Service, opts ...grpc.ServerOption) (*Backend, error) {
	b := &Backend{Label: label, opts: opts}
	if err := b.serve(services); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b.Addr = ln.Addr().String()
	b.start(ln)
	return b, nil
}

// Serve replaces the services the backend describes and answers.
func (b *Backend) Serve(t testing.TB, services ...Service) {
	t.Helper()
	if err := b.serve(services); err != nil {
		t.Fatal(err)
	}
}

func (b *Backend) serve(services []Service) error {
	files := new(protoregistry.Files)
	for _, fd := range []protoreflect.FileDescriptor{descriptorpb.File_google_protobuf_descriptor_proto, optionsv1.File_tollgate_options_v1_options_proto} {
		if err := files.RegisterFile(fd); err != nil {
			return err
		}
	}
	svcs := map[string]grpc.ServiceInfo{"grpc.reflection.v1.ServerReflection": {}}
	for _, s := range services {
		for _, dep := range s.File().GetDependency() {
			if err := registerLinked(files, dep); err != nil {
				return err
			}
		}
		fd, err := protodesc.NewFile(s.File(), files)
		if err != nil {
			return err
		}
		if err := files.RegisterFile(fd); err != nil {
			return err
		}
		svcs[s.FullName()] = grpc.ServiceInfo{}
	}
	b.mu.Lock()
	b.files, b.svcs = files, svcs
	b.mu.Unlock()
	return nil
}

// registerLinked registers in files the linked file at path and its
// dependencies, unless already there.
func registerLinked(files *protoregistry.Files, path string) error {
	if _, err := files.FindFileByPath(path); err == nil {
		return nil
	}
	fd, err := protoregistry.GlobalFiles.FindFileByPath(path)
	if err != nil {
		return fmt.Errorf("registrytest: dependency %s: %w", path, err)
	}
	for i := 0; i < fd.Imports().Len(); i++ {
		if err := registerLinked(files, fd.Imports().Get(i).Path()); err != nil {
			return err
		}
	}
	return files.RegisterFile(fd)
}

func (b *Backend) start(ln net.Listener) {
	srv := grpc.NewServer(append([]grpc.ServerOption{grpc.UnknownServiceHandler(b.handle)}, b.opts...)...)
	rpb.RegisterServerReflectionServer(srv, reflection.NewServerV1(reflection.ServerOptions{
		Services: b, DescriptorResolver: resolver{b}, ExtensionResolver: protoregistry.GlobalTypes,
	}))
	b.mu.Lock()
	b.srv, b.ln = srv, ln
	b.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// Stop stops the server at once (calls in flight fail) and holds its
// port until Restart or Close: a socket bound to Addr that does not
// listen, so connecting is refused (ECONNREFUSED, gRPC's Unavailable) as
// at a backend that is down, and the kernel gives the port to no other
// socket bound to port 0 meanwhile. Without the hold, a fleet started
// while the backend is down may be given its port, and Restart fails
// with "address already in use".
func (b *Backend) Stop() {
	b.mu.Lock()
	srv, ln := b.srv, b.ln
	b.srv, b.ln = nil, nil
	b.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Stop()
	// A Serve goroutine that has not taken the listener yet would close it
	// only when it runs: close it here, so the port is free to hold now.
	_ = ln.Close()
	// Holding fails only if another socket took the port in the instant
	// since the close: Restart then reports the address in use.
	release, err := testharness.HoldAddr(b.Addr)
	if err != nil {
		return
	}
	b.mu.Lock()
	b.release = release
	b.mu.Unlock()
}

// Restart serves again on the same address: it binds Addr while the port
// is still held (the hold does not listen, so a listener may bind beside
// it), then lets the hold go, leaving no moment the port is free.
func (b *Backend) Restart(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", b.Addr)
	if err != nil {
		t.Fatalf("registrytest: restart %s on %s: %v", b.Label, b.Addr, err)
	}
	b.mu.Lock()
	release := b.release
	b.release = nil
	b.mu.Unlock()
	if release != nil {
		release()
	}
	b.start(ln)
}

// Close stops the backend for good: Stop, and the port is let go.
func (b *Backend) Close() {
	b.Stop()
	b.mu.Lock()
	release := b.release
	b.release = nil
	b.mu.Unlock()
	if release != nil {
		release()
	}
}

// Hold makes the calls that arrive from now on wait until the returned
// release is called; entered receives once per call that is waiting.
func (b *Backend) Hold() (entered <-chan struct{}, release func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.hold, b.entered = make(chan struct{}), make(chan struct{}, 16)
	h := b.hold
	return b.entered, func() { close(h) }
}

// Calls returns the calls answered (or held) so far.
func (b *Backend) Calls() []Call {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Call(nil), b.calls...)
}

// GetServiceInfo lists the services for reflection.
func (b *Backend) GetServiceInfo() map[string]grpc.ServiceInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.svcs
}

type resolver struct{ b *Backend }

func (r resolver) current() *protoregistry.Files {
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	return r.b.files
}

func (r resolver) FindFileByPath(p string) (protoreflect.FileDescriptor, error) {
	return r.current().FindFileByPath(p)
}

func (r resolver) FindDescriptorByName(n protoreflect.FullName) (protoreflect.Descriptor, error) {
	return r.current().FindDescriptorByName(n)
}

// failPrefix starts a request text that asks the backend to fail.
const failPrefix = "registrytest-fail:"

// FailText is a request text that makes the backend answer the call with
// status code c and message msg, as a backend of one's own would: the way
// tests drive each gRPC code through a connector's real path.
func FailText(c codes.Code, msg string) string {
	return fmt.Sprintf("%s%d:%s", failPrefix, uint32(c), msg)
}

// retryPrefix starts a FailText whose status carries google.rpc.RetryInfo.
const retryPrefix = "registrytest-retry:"

// FailTextRetry is FailText whose status also carries a
// google.rpc.RetryInfo detail with retry_delay delay, as a backend that
// says when to come back sends it.
func FailTextRetry(c codes.Code, msg string, delay time.Duration) string {
	return fmt.Sprintf("%s%d:%s", retryPrefix, int64(delay), FailText(c, msg))
}

// bigPrefix starts a request text that asks for a large reply.
const bigPrefix = "registrytest-big:"

// BigReplyText is a request text that makes the backend answer with a
// text of n bytes: a reply over a client's gRPC receive limit (4 MiB by
// default, grpc.MaxCallRecvMsgSize).
func BigReplyText(n int) string { return fmt.Sprintf("%s%d", bigPrefix, n) }

// failure parses a FailText (or FailTextRetry).
func failure(text string) error {
	var delay *durationpb.Duration
	if rest, ok := strings.CutPrefix(text, retryPrefix); ok {
		ns, fail, _ := strings.Cut(rest, ":")
		n, err := strconv.ParseInt(ns, 10, 64)
		if err != nil {
			return status.Errorf(codes.Internal, "registrytest: bad fail text %q", text)
		}
		delay, text = durationpb.New(time.Duration(n)), fail
	}
	rest, ok := strings.CutPrefix(text, failPrefix)
	if !ok {
		return nil
	}
	num, msg, _ := strings.Cut(rest, ":")
	c, err := strconv.ParseUint(num, 10, 32)
	if err != nil {
		return status.Errorf(codes.Internal, "registrytest: bad fail text %q", text)
	}
	st := status.New(codes.Code(c), msg)
	if delay != nil {
		if st, err = st.WithDetails(&errdetails.RetryInfo{RetryDelay: delay}); err != nil {
			return status.Errorf(codes.Internal, "registrytest: %v", err)
		}
	}
	return st.Err()
}

// handle answers any method of the current services: the response's
// text is the request's, its backend the Label; a FailText is answered
// with its status instead.
func (b *Backend) handle(_ any, stream grpc.ServerStream) error {
	full, _ := grpc.MethodFromServerStream(stream)
	b.mu.Lock()
	files, hold, entered := b.files, b.hold, b.entered
	b.mu.Unlock()
	svc, method := splitMethod(full)
	d, err := files.FindDescriptorByName(protoreflect.FullName(svc))
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if err != nil || !ok || sd.Methods().ByName(protoreflect.Name(method)) == nil {
		return status.Errorf(codes.Unimplemented, "method %s not served", full)
	}
	md := sd.Methods().ByName(protoreflect.Name(method))
	in := dynamicpb.NewMessage(md.Input())
	if err := stream.RecvMsg(in); err != nil {
		return err
	}
	textField := md.Input().Fields().ByName("text")
	if textField == nil || textField.Kind() != protoreflect.StringKind {
		b.mu.Lock()
		b.calls = append(b.calls, Call{Method: full, MD: meta(stream)})
		b.mu.Unlock()
		if md.Output() == md.Input() {
			return stream.SendMsg(in)
		}
		return stream.SendMsg(dynamicpb.NewMessage(md.Output()))
	}
	text := in.Get(textField).String()
	b.mu.Lock()
	b.calls = append(b.calls, Call{Method: full, Text: text, MD: meta(stream)})
	b.mu.Unlock()
	if hold != nil {
		entered <- struct{}{}
		select {
		case <-hold:
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
	if err := failure(text); err != nil {
		return err
	}
	if n, err := strconv.Atoi(strings.TrimPrefix(text, bigPrefix)); err == nil && strings.HasPrefix(text, bigPrefix) {
		text = strings.Repeat("b", n)
	}
	out := dynamicpb.NewMessage(md.Output())
	out.Set(md.Output().Fields().ByName("text"), protoreflect.ValueOfString(text))
	out.Set(md.Output().Fields().ByName("backend"), protoreflect.ValueOfString(b.Label))
	return stream.SendMsg(out)
}

func meta(stream grpc.ServerStream) metadata.MD {
	md, _ := metadata.FromIncomingContext(stream.Context())
	return md
}

func splitMethod(full string) (string, string) {
	if len(full) > 0 && full[0] == '/' {
		full = full[1:]
	}
	for i := len(full) - 1; i >= 0; i-- {
		if full[i] == '/' {
			return full[:i], full[i+1:]
		}
	}
	return "", full
}

// ToolsOnly is s without its Actions operations: its capabilities are
// MCP tools only (a fleet whose OpenAPI document their schemas would push
// over the GPT Actions budget).
func ToolsOnly(s Service) Service {
	fd := proto.Clone(s.File()).(*descriptorpb.FileDescriptorProto)
	for _, svc := range fd.GetService() {
		for _, m := range svc.GetMethod() {
			if m.Options != nil {
				proto.ClearExtension(m.Options, optionsv1.E_ActionsOperation)
			}
		}
	}
	s.Proto = fd
	return s
}

// PartialMessages is a server option for a backend that sends messages
// without their proto2 required fields, as a replica still on the version
// before a required field was added does (gRPC's codec would refuse to
// send them). It also takes such messages.
func PartialMessages() grpc.ServerOption { return grpc.ForceServerCodecV2(partialCodec{}) }

type partialCodec struct{}

func (partialCodec) Name() string { return "proto" }

func (partialCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, err := proto.MarshalOptions{AllowPartial: true}.Marshal(v.(proto.Message))
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (partialCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.UnmarshalOptions{AllowPartial: true}.Unmarshal(data.Materialize(), v.(proto.Message))
}

// Proto2Required is a service in package pkg of syntax proto2 whose RPC
// Get takes {optional string text = 1; required int32 r = 2} and answers
// {optional string text = 1; optional string backend = 2; required int32
// code = 3}, code left unset (a Backend started with PartialMessages can
// send it): MCP tool "<pkg>.get", GET /actions/<pkg>, both needing scope
// openid; its RPC Set, of the same types, is POST /actions/<pkg>/{r}, and
// its RPC Add, of the same types, is POST /actions/<pkg>/add (r in the
// body).
func Proto2Required(pkg string) Service {
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	req := descriptorpb.FieldDescriptorProto_LABEL_REQUIRED.Enum()
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
	i32 := descriptorpb.FieldDescriptorProto_TYPE_INT32.Enum()
	field := func(name string, n int32, typ *descriptorpb.FieldDescriptorProto_Type, label *descriptorpb.FieldDescriptorProto_Label) *descriptorpb.FieldDescriptorProto {
		return &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(n), Type: typ, Label: label, JsonName: proto.String(name)}
	}
	mo := &descriptorpb.MethodOptions{}
	proto.SetExtension(mo, optionsv1.E_McpTool, []*optionsv1.McpTool{{Name: pkg + ".get", Title: "Get", Description: "Answers without its required code.",
		RequiredScopes: []string{"openid"}, Annotations: &optionsv1.ToolAnnotations{ReadOnly: proto.Bool(true), Idempotent: proto.Bool(true)}}})
	proto.SetExtension(mo, optionsv1.E_ActionsOperation, &optionsv1.ActionsOperation{Method: "GET", Path: "/actions/" + pkg, OperationId: pkg + "Get",
		Summary: "Get", RequiredScopes: []string{"openid"}})
	set := &descriptorpb.MethodOptions{}
	proto.SetExtension(set, optionsv1.E_ActionsOperation, &optionsv1.ActionsOperation{Method: "POST", Path: "/actions/" + pkg + "/{r}", OperationId: pkg + "Set",
		Summary: "Set", RequiredScopes: []string{"openid"}, Consequential: true})
	add := &descriptorpb.MethodOptions{}
	proto.SetExtension(add, optionsv1.E_ActionsOperation, &optionsv1.ActionsOperation{Method: "POST", Path: "/actions/" + pkg + "/add", OperationId: pkg + "Add",
		Summary: "Add", RequiredScopes: []string{"openid"}, Consequential: true})
	return Service{Package: pkg, Name: "Proto2Service", Proto: &descriptorpb.FileDescriptorProto{
		Name: proto.String(pkg + "/proto2.proto"), Package: proto.String(pkg), Syntax: proto.String("proto2"),
		Dependency: []string{optionsv1.File_tollgate_options_v1_options_proto.Path()},
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("GetRequest"), Field: []*descriptorpb.FieldDescriptorProto{field("text", 1, str, opt), field("r", 2, i32, req)}},
			{Name: proto.String("GetResponse"), Field: []*descriptorpb.FieldDescriptorProto{field("text", 1, str, opt), field("backend", 2, str, opt), field("code", 3, i32, req)}},
		},
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: proto.String("Proto2Service"), Method: []*descriptorpb.MethodDescriptorProto{{
			Name: proto.String("Get"), InputType: proto.String("." + pkg + ".GetRequest"), OutputType: proto.String("." + pkg + ".GetResponse"), Options: mo,
		}, {
			Name: proto.String("Set"), InputType: proto.String("." + pkg + ".GetRequest"), OutputType: proto.String("." + pkg + ".GetResponse"), Options: set,
		}, {
			Name: proto.String("Add"), InputType: proto.String("." + pkg + ".GetRequest"), OutputType: proto.String("." + pkg + ".GetResponse"), Options: add,
		}}}},
	}}
}

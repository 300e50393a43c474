package capauth_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	testingv1 "github.com/tollgate/tollgate/proto/gen/tollgate/testing/v1"
	"github.com/tollgate/tollgate/services/platform/capauth"
	"github.com/tollgate/tollgate/services/platform/grpcx"
	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/tokens"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

const (
	issuer   = "http://localhost:4000"
	audience = "http://localhost:4000/mcp"
	// chat is a streaming method the server serves but does not list.
	chat = "/tollgate.testing.v1.ChatService/Chat"
)

type echo struct {
	testingv1.UnimplementedEchoServiceServer
}

func (echo) Echo(ctx context.Context, in *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
	c, _ := tokens.FromContext(ctx)
	return &testingv1.EchoResponse{Text: c.Subject + ":" + in.GetText()}, nil
}

// chatService is a bidirectional stream registered by hand (no proto
// needed): it answers whatever it receives.
var chatService = grpc.ServiceDesc{
	ServiceName: "tollgate.testing.v1.ChatService",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName: "Chat", ServerStreams: true, ClientStreams: true,
		Handler: func(_ any, ss grpc.ServerStream) error {
			m := &emptypb.Empty{}
			if err := ss.RecvMsg(m); err != nil {
				return err
			}
			return ss.SendMsg(m)
		},
	}},
}

// serve runs a real gRPC server (grpcx, as every service) with the rule.
func serve(t *testing.T, o capauth.Options) *grpc.ClientConn {
	t.Helper()
	srv := grpcx.NewServer(grpcx.ServerOptions{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Unary:  []grpc.UnaryServerInterceptor{capauth.Unary(o)},
		Stream: []grpc.StreamServerInterceptor{capauth.Stream(o)},
	})
	testingv1.RegisterEchoServiceServer(srv, echo{})
	srv.RegisterService(&chatService, struct{}{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func options(t *testing.T) (capauth.Options, *tokentest.Issuer) {
	t.Helper()
	iss := tokentest.Start(t, issuer)
	reg, err := registry.New(testingv1.File_tollgate_testing_v1_echo_proto.Services().Get(0))
	if err != nil {
		t.Fatal(err)
	}
	kc, err := grpc.NewClient(iss.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kc.Close() })
	v := tokens.NewVerifier(tokens.VerifierOptions{Source: tokens.NewGRPCKeySource(kc), Audiences: []string{audience}})
	return capauth.Options{Registry: reg, Verifier: v}, iss
}

func withToken(raw string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+raw)
}

// reflect lists the services over gRPC reflection (a bidirectional stream).
func reflect(conn *grpc.ClientConn) error {
	stream, err := grpc_reflection_v1.NewServerReflectionClient(conn).ServerReflectionInfo(context.Background())
	if err != nil {
		return err
	}
	// A refused stream may already be closed (io.EOF): see chatOnce.
	if err := stream.Send(&grpc_reflection_v1.ServerReflectionRequest{MessageRequest: &grpc_reflection_v1.ServerReflectionRequest_ListServices{}}); err != nil && err != io.EOF {
		return err
	}
	_, err = stream.Recv()
	return err
}

func chatOnce(ctx context.Context, conn *grpc.ClientConn) error {
	stream, err := conn.NewStream(ctx, &chatService.Streams[0], chat)
	if err != nil {
		return err
	}
	// A refused stream may already be closed when the message goes out
	// (io.EOF); its status comes with the receive.
	if err := stream.SendMsg(&emptypb.Empty{}); err != nil && err != io.EOF {
		return err
	}
	return stream.RecvMsg(&emptypb.Empty{})
}

// TestNothingIsOpenByDefault: with no Public and no Streams, every stream
// (reflection included) is refused, and every unary call needs a verified
// token with the capability's scopes — the health check included.
func TestNothingIsOpenByDefault(t *testing.T) {
	o, iss := options(t)
	conn := serve(t, o)
	if err := reflect(conn); status.Code(err) != codes.PermissionDenied {
		t.Errorf("reflection: %v, want PermissionDenied", err)
	}
	good := iss.Mint(t, tokentest.Token{Subject: "alice", Audience: audience, Scope: "openid"})
	if err := chatOnce(withToken(good), conn); status.Code(err) != codes.PermissionDenied {
		t.Errorf("unlisted stream with a valid token: %v, want PermissionDenied", err)
	}
	if _, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("health check without a token: %v, want Unauthenticated", err)
	}
	echoc := testingv1.NewEchoServiceClient(conn)
	if _, err := echoc.Echo(context.Background(), &testingv1.EchoRequest{Text: "x"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("echo without a token: %v, want Unauthenticated", err)
	}
	noScope := iss.Mint(t, tokentest.Token{Subject: "alice", Audience: audience, Scope: "profile"})
	if _, err := echoc.Echo(withToken(noScope), &testingv1.EchoRequest{Text: "x"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("echo without openid: %v, want PermissionDenied", err)
	}
	other := iss.Mint(t, tokentest.Token{Subject: "alice", Audience: "http://other/mcp", Scope: "openid"})
	if _, err := echoc.Echo(withToken(other), &testingv1.EchoRequest{Text: "x"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("echo for another audience: %v, want Unauthenticated", err)
	}
	out, err := echoc.Echo(withToken(good), &testingv1.EchoRequest{Text: "x"})
	if err != nil || out.GetText() != "alice:x" {
		t.Errorf("echo with a good token: %v %v", out, err)
	}
}

// TestListedMethodsAreServed: what a server lists explicitly is served
// without a token, and nothing more.
func TestListedMethodsAreServed(t *testing.T) {
	o, _ := options(t)
	o.Public = []string{capauth.HealthCheck}
	o.Streams = []string{capauth.HealthWatch, capauth.Reflection}
	conn := serve(t, o)
	if err := reflect(conn); err != nil {
		t.Errorf("listed reflection: %v", err)
	}
	if h, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("listed health check: %v %v", h, err)
	}
	w, err := healthpb.NewHealthClient(conn).Watch(context.Background(), &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = w.Recv()
	}
	if err != nil {
		t.Errorf("listed health watch: %v", err)
	}
	if err := chatOnce(context.Background(), conn); status.Code(err) != codes.PermissionDenied {
		t.Errorf("unlisted stream: %v, want PermissionDenied", err)
	}
	if _, err := testingv1.NewEchoServiceClient(conn).Echo(context.Background(), &testingv1.EchoRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("echo without a token: %v, want Unauthenticated", err)
	}
}

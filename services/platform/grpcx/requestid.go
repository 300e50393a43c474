package grpcx

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/tollgate/tollgate/services/platform/logging"
)

// requestIDFromMetadata puts the caller's x-request-id (when well-formed,
// else a fresh id) in the call's context, so that every line the call
// logs names the request that caused it. Only that key is read
// (metadata.FromIncomingContext would copy every key and value of the
// call's metadata, the caller's token included, on every call).
func requestIDFromMetadata(ctx context.Context) context.Context {
	var id string
	if v := metadata.ValueFromIncomingContext(ctx, logging.RequestIDMetadata); len(v) == 1 {
		id = v[0]
	}
	return logging.WithRequestID(ctx, logging.RequestIDOrNew(id))
}

func unaryRequestID(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	return h(requestIDFromMetadata(ctx), req)
}

type requestIDStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s requestIDStream) Context() context.Context { return s.ctx }

func streamRequestID(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	return h(srv, requestIDStream{ServerStream: ss, ctx: requestIDFromMetadata(ss.Context())})
}

// withRequestID adds the request id of ctx to the outgoing metadata.
func withRequestID(ctx context.Context) context.Context {
	if id := logging.RequestID(ctx); id != "" {
		return metadata.AppendToOutgoingContext(ctx, logging.RequestIDMetadata, id)
	}
	return ctx
}

func unaryClientRequestID(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return invoker(withRequestID(ctx), method, req, reply, cc, opts...)
}

func streamClientRequestID(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return streamer(withRequestID(ctx), desc, cc, method, opts...)
}

package registry

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// partialCodec is gRPC's proto codec (grpc/encoding/proto: the same bytes
// on the wire, the same buffer pooling) without the required-field check,
// for every capability call (Capability.Invoke, which checks a request
// that can hold a required field itself).
//
// Forced on a call (grpc.ForceCodecV2), a codec's name is the call's
// content-subtype: the request goes as "application/grpc+proto", where
// gRPC's default codec sends "application/grpc". The gRPC protocol
// (PROTOCOL-HTTP2.md, Content-Type) defines both as the protobuf encoding
// and every gRPC server takes either; keeping "application/grpc" would
// take registering the codec as the process's default "proto", which
// would drop the check from every other gRPC client and server in it.
type partialCodec struct{}

var (
	partialMarshal   = proto.MarshalOptions{UseCachedSize: true, AllowPartial: true}
	partialUnmarshal = proto.UnmarshalOptions{AllowPartial: true}
	partialCallOpts  = []grpc.CallOption{grpc.ForceCodecV2(partialCodec{})}
)

func (partialCodec) Name() string { return "proto" }

// Marshal is grpc/encoding/proto's, with AllowPartial.
func (partialCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("proto: failed to marshal, message is %T, want proto.Message", v)
	}
	size := proto.Size(m) // UseCachedSize relies on this call
	if mem.IsBelowBufferPoolingThreshold(size) {
		buf, err := partialMarshal.Marshal(m)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	if _, err := partialMarshal.MarshalAppend((*buf)[:0], m); err != nil {
		pool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// Unmarshal is grpc/encoding/proto's, with AllowPartial.
func (partialCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("proto: failed to unmarshal, message is %T, want proto.Message", v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return partialUnmarshal.Unmarshal(buf.ReadOnlyData(), m)
}

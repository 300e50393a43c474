package registry

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// partialCodec is gRPC's proto codec (the same name, so the same
// content-subtype and bytes on the wire) without the required-field
// check, for the calls whose response can hold a proto2 required field
// (Capability.Invoke).
type partialCodec struct{}

var (
	partialMarshal   = proto.MarshalOptions{AllowPartial: true}
	partialUnmarshal = proto.UnmarshalOptions{AllowPartial: true}
	partialCallOpts  = []grpc.CallOption{grpc.ForceCodecV2(partialCodec{})}
)

func (partialCodec) Name() string { return "proto" }

func (partialCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("proto: failed to marshal, message is %T, want proto.Message", v)
	}
	b, err := partialMarshal.Marshal(m)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (partialCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("proto: failed to unmarshal, message is %T, want proto.Message", v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return partialUnmarshal.Unmarshal(buf.ReadOnlyData(), m)
}

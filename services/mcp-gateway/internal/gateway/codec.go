package gateway

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The gateway's capability calls carry messages built from descriptors
// discovered at run time (dynamicpb). gRPC's proto codec marshals and
// unmarshals them with proto's default options, which afterwards check
// that every required field is set: for a dynamicpb message that check
// walks every field, allocating as it goes (14 allocations per
// identity.profile call, issue 12), although proto3 has no required fields
// at all. noRequiredConn calls with a codec that skips the check — the
// same bytes on the wire, the same messages — for calls whose request and
// response types have no required field anywhere; any other call uses
// gRPC's codec unchanged.

// partialProto is gRPC's proto codec (the same name, so the same
// content-subtype) without the required-field check.
type partialProto struct{}

var (
	partialMarshal   = proto.MarshalOptions{UseCachedSize: true, AllowPartial: true}
	partialUnmarshal = proto.UnmarshalOptions{AllowPartial: true}
	partialCallOpts  = []grpc.CallOption{grpc.ForceCodecV2(partialProto{})}
)

func (partialProto) Name() string { return "proto" }

// Marshal is grpc/encoding/proto's, with AllowPartial.
func (partialProto) Marshal(v any) (mem.BufferSlice, error) {
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
func (partialProto) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("failed to unmarshal, message is %T, want proto.Message", v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return partialUnmarshal.Unmarshal(buf.ReadOnlyData(), m)
}

// noRequiredConn is a connection whose unary calls use partialProto when
// neither message has a required field.
type noRequiredConn struct{ grpc.ClientConnInterface }

func (c *noRequiredConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	if len(opts) == 0 && noRequired(args) && noRequired(reply) {
		opts = partialCallOpts
	}
	return c.ClientConnInterface.Invoke(ctx, method, args, reply, opts...)
}

// wrappedConns caches the noRequiredConn of each connection.
var wrappedConns sync.Map // grpc.ClientConnInterface -> *noRequiredConn

func withoutRequiredCheck(conn grpc.ClientConnInterface) grpc.ClientConnInterface {
	if w, ok := wrappedConns.Load(conn); ok {
		return w.(*noRequiredConn)
	}
	w, _ := wrappedConns.LoadOrStore(conn, &noRequiredConn{conn})
	return w.(*noRequiredConn)
}

// requiredByType caches, per message descriptor, whether a message of it
// can hold a required field (its own or a nested message's).
var requiredByType sync.Map // protoreflect.MessageDescriptor -> bool

func noRequired(v any) bool {
	m, ok := v.(proto.Message)
	if !ok {
		return false
	}
	d := m.ProtoReflect().Descriptor()
	if r, ok := requiredByType.Load(d); ok {
		return !r.(bool)
	}
	r := hasRequired(d, map[protoreflect.FullName]bool{})
	requiredByType.Store(d, r)
	return !r
}

func hasRequired(d protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) bool {
	if seen[d.FullName()] {
		return false
	}
	seen[d.FullName()] = true
	fields := d.Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		if f.Cardinality() == protoreflect.Required {
			return true
		}
		if f.IsMap() {
			f = f.MapValue()
		}
		if md := f.Message(); md != nil && hasRequired(md, seen) {
			return true
		}
	}
	return false
}

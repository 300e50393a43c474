package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/grpc"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// errInvalid marks a reflection answer that is not a usable descriptor set
// (as opposed to a backend that could not be reached).
var errInvalid = errors.New("invalid descriptors")

// maxReflectedFiles bounds the files one backend may send (transitive
// dependencies included): a misbehaving backend cannot grow the registry
// without limit.
const maxReflectedFiles = 1000

// reflected is what one backend's reflection service answered.
type reflected struct {
	services []protoreflect.ServiceDescriptor // sorted by full name
	// fingerprint changes whenever any descriptor the backend sent does.
	fingerprint string
}

// reflectServices reads the services conn serves through gRPC server
// reflection v1 (grpc.reflection.v1.ServerReflection): ListServices, then
// FileContainingSymbol of each service and FileByFilename of any
// dependency the server did not send with it. grpc.* services (health,
// reflection) are left out. Custom options are parsed against OptionTypes.
// No token is sent: reflection discloses descriptors, never data.
func reflectServices(ctx context.Context, conn grpc.ClientConnInterface) (*reflected, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The call waits (within ctx) for the connection instead of failing at
	// once; a backend that was down is dialled again within grpcx's
	// ReconnectMaxDelay (1s). ClientConn.ResetConnectBackoff is not used:
	// grpc-go (v1.85) reads its connection map outside the lock there, a
	// data race with a connection being created (seen under -race in CI).
	stream, err := rpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx, grpc.WaitForReady(true))
	if err != nil {
		return nil, err
	}
	ask := func(req *rpb.ServerReflectionRequest) (*rpb.ServerReflectionResponse, error) {
		if err := stream.Send(req); err != nil {
			return nil, err
		}
		res, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		if e := res.GetErrorResponse(); e != nil {
			return nil, fmt.Errorf("%w: reflection error %d: %s", errInvalid, e.GetErrorCode(), e.GetErrorMessage())
		}
		return res, nil
	}
	res, err := ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range res.GetListServicesResponse().GetService() {
		if n := s.GetName(); !strings.HasPrefix(n, "grpc.") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	files := map[string]*descriptorpb.FileDescriptorProto{}
	raw := map[string][]byte{}
	add := func(res *rpb.ServerReflectionResponse) error {
		for _, b := range res.GetFileDescriptorResponse().GetFileDescriptorProto() {
			fd := &descriptorpb.FileDescriptorProto{}
			if err := (proto.UnmarshalOptions{Resolver: OptionTypes}).Unmarshal(b, fd); err != nil {
				return fmt.Errorf("%w: %v", errInvalid, err)
			}
			if _, seen := files[fd.GetName()]; !seen {
				files[fd.GetName()], raw[fd.GetName()] = fd, b
			}
		}
		if len(files) > maxReflectedFiles {
			return fmt.Errorf("%w: more than %d files", errInvalid, maxReflectedFiles)
		}
		return nil
	}
	for _, n := range names {
		res, err := ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: n}})
		if err != nil {
			return nil, err
		}
		if err := add(res); err != nil {
			return nil, err
		}
	}
	for {
		var missing []string
		for _, fd := range files {
			for _, dep := range fd.GetDependency() {
				if _, ok := files[dep]; !ok && !contains(missing, dep) {
					missing = append(missing, dep)
				}
			}
		}
		if len(missing) == 0 {
			break
		}
		for _, dep := range missing {
			res, err := ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_FileByFilename{FileByFilename: dep}})
			if err != nil {
				return nil, err
			}
			if err := add(res); err != nil {
				return nil, err
			}
			if _, ok := files[dep]; !ok {
				return nil, fmt.Errorf("%w: the server did not send %s", errInvalid, dep)
			}
		}
	}
	// End the stream as the server sees it: after CloseSend the server
	// returns and the next Recv is io.EOF. Only then does the client's
	// metrics interceptor count the call (grpc_client_handled_total, code
	// OK); left to the deferred cancel, a reflection that succeeded was
	// never counted while one that failed was, and the failure ratio of
	// TollgateCapabilityCallsFailing read 1 for a caller whose only calls
	// are reflections (the auth-server).
	// Every reflection server ends the stream once the client has (grpc-go,
	// -java, -python and C++ return on the half-close); one that did not
	// would be waited for until ctx's deadline, and its descriptors kept.
	_ = stream.CloseSend()
	_, _ = stream.Recv() // io.EOF

	set := &descriptorpb.FileDescriptorSet{}
	fileNames := make([]string, 0, len(files))
	for n := range files {
		fileNames = append(fileNames, n)
	}
	sort.Strings(fileNames)
	h := sha256.New()
	for _, n := range fileNames {
		set.File = append(set.File, files[n])
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(raw[n]))
		h.Write(raw[n])
	}
	reg, err := protodesc.NewFiles(set)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errInvalid, err)
	}
	out := &reflected{fingerprint: hex.EncodeToString(h.Sum(nil))}
	for _, n := range names {
		d, err := reg.FindDescriptorByName(protoreflect.FullName(n))
		if err != nil {
			return nil, fmt.Errorf("%w: service %s is listed but not described: %v", errInvalid, n, err)
		}
		sd, ok := d.(protoreflect.ServiceDescriptor)
		if !ok {
			return nil, fmt.Errorf("%w: %s is listed as a service but is a %T", errInvalid, n, d)
		}
		out.services = append(out.services, sd)
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

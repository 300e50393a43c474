package registry

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
)

// OptionTypes resolves Tollgate's custom options
// (proto/tollgate/options/v1): the only extensions the registry reads. A
// descriptor built at run time (from reflection, or by protodesc from bytes
// parsed without them) carries its custom options as unknown fields;
// parsing with OptionTypes turns them into these extensions.
var OptionTypes = func() *protoregistry.Types {
	t := new(protoregistry.Types)
	for _, x := range []protoreflect.ExtensionType{
		optionsv1.E_Scope, optionsv1.E_Backend, optionsv1.E_McpTool, optionsv1.E_ActionsOperation,
		optionsv1.E_MessageDescription, optionsv1.E_FieldDescription,
	} {
		if err := t.RegisterExtension(x); err != nil {
			panic(err)
		}
	}
	return t
}()

// resolveOptions returns opts with unknown fields parsed against
// OptionTypes; opts itself when it has none (the usual case: generated
// descriptors and reflection answers parsed with OptionTypes).
func resolveOptions(opts proto.Message) proto.Message {
	if opts == nil {
		return nil
	}
	m := opts.ProtoReflect()
	if !m.IsValid() || len(m.GetUnknown()) == 0 {
		return opts
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(opts)
	if err != nil {
		return opts
	}
	out := m.New().Interface()
	if err := (proto.UnmarshalOptions{Resolver: OptionTypes}).Unmarshal(b, out); err != nil {
		return opts
	}
	return out
}

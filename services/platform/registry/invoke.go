package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/tollgate/tollgate/services/platform/fault"
)

// newMessage makes an empty md: the generated type when md is the linked
// descriptor itself, else a dynamic message. A discovered descriptor
// (reflection) is never mixed with a generated type of the same name,
// which may be another version of it.
func newMessage(md protoreflect.MessageDescriptor) proto.Message {
	if mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName()); err == nil && mt.Descriptor() == md {
		return mt.New().Interface()
	}
	return dynamicpb.NewMessage(md)
}

// DecodeJSON builds a request from JSON arguments (MCP tool arguments or a
// POST body). Unknown fields and wrong types are InvalidArgument faults.
func (c *Capability) DecodeJSON(b []byte) (proto.Message, error) {
	in := newMessage(c.Method.Input())
	if len(strings.TrimSpace(string(b))) == 0 || string(b) == "null" {
		return in, nil
	}
	if err := protojson.Unmarshal(b, in); err != nil {
		return nil, fault.InvalidArgument("invalid arguments: %s", cleanProtoErr(err))
	}
	return in, nil
}

// DecodeQuery builds a request from query parameters named after the request
// fields (GET actions). Unknown or repeated parameters are InvalidArgument.
func (c *Capability) DecodeQuery(q url.Values) (proto.Message, error) {
	in := newMessage(c.Method.Input())
	fields := c.Method.Input().Fields()
	refl := in.ProtoReflect()
	for name, values := range q {
		f := fields.ByName(protoreflect.Name(name))
		if f == nil {
			f = fields.ByJSONName(name)
		}
		if f == nil {
			return nil, fault.InvalidArgument("unknown query parameter %q", name)
		}
		if len(values) != 1 {
			return nil, fault.InvalidArgument("query parameter %q given %d times", name, len(values))
		}
		if !utf8.ValidString(values[0]) {
			return nil, fault.InvalidArgument("query parameter %q is not valid UTF-8", name)
		}
		// Reuse protojson's scalar parsing by decoding {"name": value}. The
		// JSON is written with encoding/json: Go's %q quoting is not JSON
		// (a NUL or DEL comes out as \x00, \x7f), and such a value came
		// back as protojson's syntax error instead of being decoded.
		var raw string
		if queryString(f) {
			raw = "{" + jsonString(string(f.Name())) + ":" + jsonString(values[0]) + "}"
		} else {
			raw = "{" + jsonString(string(f.Name())) + ":" + quoteIfNeeded(values[0]) + "}"
		}
		one := newMessage(c.Method.Input())
		if err := protojson.Unmarshal([]byte(raw), one); err != nil {
			return nil, fault.InvalidArgument("query parameter %q: %s", name, cleanProtoErr(err))
		}
		refl.Set(f, one.ProtoReflect().Get(f))
	}
	return in, nil
}

// queryString reports whether the proto3 JSON form of f's value is a JSON
// string, so that a query or path parameter is taken as one whatever it
// holds ("5" for an int64, "2024-01-02T03:04:05Z" for a Timestamp).
func queryString(f protoreflect.FieldDescriptor) bool {
	k := f.Kind()
	if isMessage(f) {
		switch f.Message().FullName() {
		case "google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask",
			"google.protobuf.StringValue", "google.protobuf.BytesValue",
			"google.protobuf.Int64Value", "google.protobuf.UInt64Value":
			return true
		}
		k = f.Message().Fields().ByName("value").Kind() // the other wrappers
	}
	switch k {
	case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.EnumKind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return true
	}
	return false
}

func quoteIfNeeded(v string) string {
	if v == "" {
		return `""`
	}
	for _, r := range v {
		if !strings.ContainsRune("0123456789.-+eEtruefals", r) {
			return jsonString(v)
		}
	}
	return v
}

// jsonString is s as a JSON string (s is valid UTF-8).
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func cleanProtoErr(err error) string {
	s := err.Error()
	s = strings.ReplaceAll(s, "\u00a0", " ") // first: the prefix may end in one
	s = strings.TrimPrefix(s, "proto: ")
	return s
}

// Invoke calls the capability on conn (a connection to its backend,
// Conns.For) and returns its response.
func (c *Capability) Invoke(ctx context.Context, conn grpc.ClientConnInterface, in proto.Message) (proto.Message, error) {
	out := newMessage(c.Method.Output())
	if err := conn.Invoke(ctx, c.FullMethod, in, out); err != nil {
		return nil, err
	}
	return out, nil
}

var outputJSON = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// MarshalOutput encodes a response the way both connectors publish it:
// snake_case field names, every field present, compact and stable (protojson
// alone varies its whitespace on purpose). The bytes are json.Compact's of
// protojson's output, compacted where protojson wrote them instead of
// copied into a second buffer.
func MarshalOutput(m proto.Message) ([]byte, error) {
	b, err := outputJSON.Marshal(m)
	if err != nil {
		return nil, err
	}
	return compactInPlace(b), nil
}

// compactInPlace removes from b, valid JSON, the whitespace outside its
// strings, as json.Compact does, in b's own array.
func compactInPlace(b []byte) []byte {
	w := 0
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			continue
		case c == '"':
			inString = true
		}
		b[w] = c
		w++
	}
	return b[:w]
}

// Conns are the gRPC connections to the fleet's backends by name
// (Capability.Backend): connectors call each capability on its backend.
type Conns map[string]grpc.ClientConnInterface

// For returns the connection to c's backend.
func (cs Conns) For(c *Capability) (grpc.ClientConnInterface, bool) {
	conn, ok := cs[c.Backend]
	return conn, ok
}

// Check reports every capability of r whose backend has no connection.
func (cs Conns) Check(r *Registry) error {
	var missing []string
	for _, c := range r.Capabilities() {
		if _, ok := cs[c.Backend]; !ok {
			missing = append(missing, fmt.Sprintf("%s (backend %q)", c.FullMethod, c.Backend))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("capability registry: no connection to the backend of %s", strings.Join(missing, ", "))
	}
	return nil
}

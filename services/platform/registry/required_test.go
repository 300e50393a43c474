package registry_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/platform/fault"
	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
)

// TestInvokeChecksOnlyRequestsThatCanHoldARequiredField: every capability
// call goes with the codec that skips gRPC's required-field walk (the
// gateway kept a second codec and three map look-ups a call to choose
// it). A proto3 request is never walked (CheckRequired returns at once:
// it walked every set field, allocating), and a proto2 request without
// its required field is still refused before the backend, as an
// InvalidArgument naming the field (gRPC's codec refused it as an
// internal marshalling error). The call's content-type is
// application/grpc+proto, the forced codec's name (partialcodec.go).
func TestInvokeChecksOnlyRequestsThatCanHoldARequiredField(t *testing.T) {
	p2 := registrytest.Start(t, "p2", []registrytest.Service{registrytest.Proto2Required("ptwo")}, registrytest.PartialMessages())
	n := registrytest.Start(t, "n", []registrytest.Service{notes("notes")})
	h := discover(t, p2, n)
	reg := h.d.Refresh(context.Background())
	add, ok := reg.Tool("notes.add")
	get, ok2 := reg.Tool("ptwo.get")
	if !ok || !ok2 {
		t.Fatalf("tools: %s", toolNames(reg))
	}

	in, err := add.Capability.DecodeJSON([]byte(`{"text":"milk"}`))
	if err != nil {
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		if err := add.Capability.CheckRequired(in); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("CheckRequired of a proto3 request: %v allocations, want 0", allocs)
	}

	conn, _ := h.d.Conns().For(get.Capability)
	partial, err := get.Capability.DecodeBodyPartial([]byte(`{"text":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = get.Capability.Invoke(context.Background(), conn, partial)
	var fe *fault.Error
	if !errorsAs(err, &fe) || fe.Kind != fault.KindInvalidArgument || !strings.Contains(fe.Msg, "required field r not set") {
		t.Errorf("Invoke without r: %v, want an InvalidArgument fault naming r", err)
	}
	if calls := p2.Calls(); len(calls) != 0 {
		t.Errorf("the request without r reached the backend: %+v", calls)
	}

	whole, err := get.Capability.DecodeJSON([]byte(`{"text":"x","r":1}`))
	if err != nil {
		t.Fatal(err)
	}
	out, err := get.Capability.Invoke(context.Background(), conn, whole)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := get.Capability.MarshalOutput(out); string(b) != `{"text":"x","backend":"p2","code":null}` {
		t.Errorf("output %s", b)
	}
	if calls := p2.Calls(); len(calls) != 1 || strings.Join(calls[0].MD["content-type"], ",") != "application/grpc+proto" {
		t.Errorf("backend calls %+v, want one with content-type application/grpc+proto", calls)
	}
}

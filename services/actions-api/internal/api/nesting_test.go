package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
)

// TestDeepBodyIsACallerError: a POST body nested deeper than the
// decoder's bound — 3,333 messages, which the protobuf binary format's
// recursion limit always admits (10,000 messages; a JSON array in a
// google.protobuf.Value is two messages per level, a JSON object in a
// Struct three) — is the caller's mistake: a 400 invalid_request naming
// the field nested deepest, never the 500 server_error of the backend's
// (or the reply's) "proto: exceeded maximum recursion depth", which also
// counts against the 5xx alerts — from an anonymous caller on a public
// operation (brk50a #1). So are Anys nested more than 8 deep, whose
// decoding costs O(depth²) (brk50a #3). As deep as the bounds is a call.
func TestDeepBodyIsACallerError(t *testing.T) {
	shapes := registrytest.Start(t, "shapes", []registrytest.Service{registrytest.Shapes("shapes")})
	f := start(t, map[string]string{"CAPABILITY_BACKENDS": "capability-core=$CORE_GRPC_ADDR,shapes=" + shapes.Addr})
	eventually(t, "the shapes operations in the document", func() bool {
		f.loadDocument(t)
		return f.doc.Paths.Find("/actions/shapes") != nil
	})
	json := http.Header{"Content-Type": {"application/json"}}
	anys := func(n int) string {
		return strings.Repeat(`{"@type":"type.googleapis.com/google.protobuf.Any","value":`, n) + "{}" + strings.Repeat("}", n)
	}
	const tooDeep = ": nested too deep: messages may nest at most 3333 deep"
	const anysTooDeep = ": google.protobuf.Any values nested more than 8 deep"
	for _, tc := range []struct{ name, body, field, says string }{
		{"Value, 5000 arrays deep", `{"val":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`, "val[0][0][0]", tooDeep},
		{"Struct, 3334 objects deep", `{"st":` + strings.Repeat(`{"a":`, 3334) + "1" + strings.Repeat("}", 3334) + `}`, "st.a.a.a", tooDeep},
		{"Anys 9 deep", `{"any":` + anys(9) + `}`, "any", anysTooDeep},
		{"Anys 1000 deep", `{"any":` + anys(1000) + `}`, "any.value.value", anysTooDeep},
	} {
		r := f.doBody(t, http.MethodPost, "/actions/shapes", json, tc.body)
		if r.status != http.StatusBadRequest || r.err.Error != "invalid_request" ||
			!strings.HasPrefix(r.err.Description, "invalid arguments: field "+tc.field) || !strings.Contains(r.err.Description, tc.says) ||
			!strings.Contains(r.err.Description, " of the body)") {
			t.Errorf("%s: %d %.600s, want 400 invalid_request naming %s%s", tc.name, r.status, r.body, tc.field, tc.says)
		}
	}
	body := `{"val":` + strings.Repeat("[", 3000) + strings.Repeat("]", 3000) + `,"any":` + anys(8) + `}`
	if r := f.doBody(t, http.MethodPost, "/actions/shapes", json, body); r.status != http.StatusOK {
		t.Errorf("a Value 3000 arrays deep and Anys 8 deep: %d %.600s", r.status, r.body)
	}
}

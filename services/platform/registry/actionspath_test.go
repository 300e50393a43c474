package registry_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/types/descriptorpb"

	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
	"github.com/tollgate/tollgate/services/platform/registry"
)

// TestOperationPathOutsideTheActionsRoutes: an operation path that the
// actions ingress does not route to the actions-api
// (charts/tollgate/files/routes.yaml: the /actions prefix, /health,
// /privacy) was published in the document but could never be answered by
// the actions-api: GET /oauth/token reached the auth-server, /orders was
// the ingress' 404. It is refused with the reason, like the other path
// rules; the routed ones are accepted.
func TestOperationPathOutsideTheActionsRoutes(t *testing.T) {
	for _, p := range []string{"/oauth/token", "/orders", "/mcp", "/actionsx", "/healthz", "/health/x"} {
		fd := protoFileNamed(t, "outside", func(m *descriptorpb.MethodOptions) {
			setAction(m, &optionsv1.ActionsOperation{Method: "GET", Path: p, OperationId: "getX", Summary: "s"})
		})
		_, err := registry.New(fd.Services().Get(0))
		want := `action path "` + p + `" is not routed to the actions-api: the actions ingress sends it only /actions/…, /health and /privacy (charts/tollgate/files/routes.yaml); use a path under /actions/`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("path %s: err = %v, want %q", p, err, want)
		}
	}
	for _, p := range []string{"/actions", "/actions/orders", "/actions/orders/list", "/health"} {
		fd := protoFileNamed(t, "routed", func(m *descriptorpb.MethodOptions) {
			setAction(m, &optionsv1.ActionsOperation{Method: "GET", Path: p, OperationId: "getX", Summary: "s"})
		})
		if _, err := registry.New(fd.Services().Get(0)); err != nil {
			t.Errorf("path %s: %v", p, err)
		}
	}
}

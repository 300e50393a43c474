package api_test

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
	"github.com/tollgate/tollgate/services/actions-api/internal/openapi"
	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// bigService has n GET operations with long descriptions: with n = 60 its
// OpenAPI document is far over openapi.MaxDocument.
func bigService(n int) registrytest.Service {
	s := registrytest.Service{Package: "big", Name: "BigService",
		Scopes: []*optionsv1.Scope{{Name: "big.read", Description: "Read big things"}}}
	for i := range n {
		s.Methods = append(s.Methods, registrytest.Method{Name: fmt.Sprintf("Get%d", i), Action: &optionsv1.ActionsOperation{
			Method: "GET", Path: fmt.Sprintf("/actions/big%d", i), OperationId: fmt.Sprintf("big%d", i),
			Summary: "Get a big thing", Description: strings.Repeat("A long description of a big thing. ", 8),
			RequiredScopes: []string{"big.read"}}})
	}
	return s
}

// TestDocumentOverLimitsIsServedAndReported: a backend whose operations
// make the document exceed the GPT Actions budget does not stop the
// actions-api (it refused to start) nor keep a later registry from being
// served (it kept the previous operations): the operations and the
// document are served, and the problem is logged, shown by readiness as
// the dependency openapi-document (down, readiness still ok) and measured
// by tollgate_actions_openapi_document_bytes.
func TestDocumentOverLimitsIsServedAndReported(t *testing.T) {
	big := registrytest.Start(t, "big", []registrytest.Service{bigService(60)})
	f := start(t, map[string]string{
		"CAPABILITY_BACKENDS":         "capability-core=$CORE_GRPC_ADDR,big=" + big.Addr,
		"CAPABILITY_REFRESH_INTERVAL": "1s",
	})
	tok := f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: audience, Scope: "big.read"})
	if r := f.do(t, http.MethodGet, "/actions/big59?text=x", bearer(tok)); r.status != 200 {
		t.Fatalf("GET /actions/big59: %d %s", r.status, r.body)
	}
	if f.doc.Paths.Find("/actions/big59") == nil {
		t.Error("the served document lacks the big backend's operations")
	}
	status, body := f.ready(t)
	if status != 200 || !strings.Contains(body, `{"name":"openapi-document","status":"down","error":"failed"}`) {
		t.Errorf("readiness: %d %s; want 200 with openapi-document down", status, body)
	}
	if logs := f.logs.String(); !strings.Contains(logs, "OpenAPI document over the GPT Actions limits") || !strings.Contains(logs, "over the budget of 75000") {
		t.Errorf("the problem is not logged:\n%s", logs)
	}
	if size := documentBytes(t, f); size <= openapi.MaxDocument {
		t.Errorf("tollgate_actions_openapi_document_bytes = %d, want over %d", size, openapi.MaxDocument)
	}

	// A registry update over the limits is served too; one back within
	// them clears the report.
	big.Serve(t, bigService(61))
	eventually(t, "the 61st operation to be served", func() bool {
		return f.do(t, http.MethodGet, "/actions/big60?text=x", bearer(tok)).status == 200
	})
	big.Serve(t, bigService(2))
	eventually(t, "the document back within the limits", func() bool {
		status, body := f.ready(t)
		return status == 200 && strings.Contains(body, `{"name":"openapi-document","status":"ok"}`)
	})
	if size := documentBytes(t, f); size > openapi.MaxDocument {
		t.Errorf("tollgate_actions_openapi_document_bytes = %d after the backend shrank", size)
	}
}

var documentBytesRE = regexp.MustCompile(`(?m)^tollgate_actions_openapi_document_bytes (\S+)$`)

// documentBytes is the tollgate_actions_openapi_document_bytes gauge, and
// checks it is the served document's size.
func documentBytes(t *testing.T, f *fleet) int {
	t.Helper()
	res, err := http.Get(f.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	m := documentBytesRE.FindSubmatch(b)
	if m == nil {
		t.Fatal("/metrics lacks tollgate_actions_openapi_document_bytes")
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return int(v)
}

// TestLimitsCountCharactersNotBytes: the GPT Actions limits on summaries
// and descriptions are in characters. A backend whose operation has a
// 300-character summary and a 300-character description in Japanese
// (three bytes a character in UTF-8) is within them: the registry takes
// its capability (it refused it as 900 bytes over 300 characters), the
// operation is served and the document is reported within the limits; a
// 301st character is still refused.
func TestLimitsCountCharactersNotBytes(t *testing.T) {
	service := func(summary int) registrytest.Service {
		return registrytest.Service{Package: "ja", Name: "JaService",
			Scopes: []*optionsv1.Scope{{Name: "ja.read", Description: "Read"}},
			Methods: []registrytest.Method{{Name: "Get", Action: &optionsv1.ActionsOperation{
				Method: "GET", Path: "/actions/ja", OperationId: "ja",
				Summary: strings.Repeat("要", summary), Description: strings.Repeat("説", openapi.MaxOperationDescription),
				RequiredScopes: []string{"ja.read"}}}}}
	}
	ja := registrytest.Start(t, "ja", []registrytest.Service{service(openapi.MaxSummary)})
	f := start(t, map[string]string{"CAPABILITY_BACKENDS": "capability-core=$CORE_GRPC_ADDR,ja=" + ja.Addr, "CAPABILITY_REFRESH_INTERVAL": "1s"})
	op := f.doc.Paths.Find("/actions/ja")
	if op == nil || op.Get == nil {
		t.Fatalf("GET /actions/ja is not served; logs:\n%s", f.logs.String())
	}
	if n := len([]rune(op.Get.Summary)); n != openapi.MaxSummary {
		t.Errorf("summary of %d characters, want %d", n, openapi.MaxSummary)
	}
	if n := len([]rune(op.Get.Description)); n != openapi.MaxOperationDescription {
		t.Errorf("description of %d characters, want %d", n, openapi.MaxOperationDescription)
	}
	tok := f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: audience, Scope: "ja.read"})
	if r := f.do(t, http.MethodGet, "/actions/ja?text=x", bearer(tok)); r.status != 200 {
		t.Errorf("GET /actions/ja: %d %s", r.status, r.body)
	}
	if status, body := f.ready(t); status != 200 || !strings.Contains(body, `{"name":"openapi-document","status":"ok"}`) {
		t.Errorf("readiness: %d %s; want openapi-document ok", status, body)
	}

	// One character more is over the limit: the registry refuses the
	// capability and the actions-api keeps the previous operations.
	ja.Serve(t, service(openapi.MaxSummary+1))
	eventually(t, "the over-long summary refused", func() bool {
		return strings.Contains(f.logs.String(), "action summary must be 1 to 300 characters")
	})
}

// TestOperationDescriptionOverLimitIsServedAndReported: a backend whose
// actions_operation description has 400 characters (over the GPT Actions
// limit of 300, within the 700 the registry holds it to) is not refused
// at discovery, which took its MCP tools away with it: its operation is
// served and callable, with the description as declared, and the document
// is reported over the limits as any other (readiness openapi-document
// down, the log names the description).
func TestOperationDescriptionOverLimitIsServedAndReported(t *testing.T) {
	long := registrytest.Service{Package: "long", Name: "LongService",
		Scopes: []*optionsv1.Scope{{Name: "long.read", Description: "Read"}},
		Methods: []registrytest.Method{{Name: "Get",
			Tool: &optionsv1.McpTool{Name: "long.get", Title: "Get", Description: "Gets a thing.",
				RequiredScopes: []string{"long.read"}, Annotations: &optionsv1.ToolAnnotations{ReadOnly: proto.Bool(true)}},
			Action: &optionsv1.ActionsOperation{Method: "GET", Path: "/actions/long", OperationId: "long",
				Summary: "Get a thing", Description: strings.Repeat("d", 400), RequiredScopes: []string{"long.read"}}}}}
	b := registrytest.Start(t, "long", []registrytest.Service{long})
	f := start(t, map[string]string{"CAPABILITY_BACKENDS": "capability-core=$CORE_GRPC_ADDR,long=" + b.Addr, "CAPABILITY_REFRESH_INTERVAL": "1s"})
	op := f.doc.Paths.Find("/actions/long")
	if op == nil || op.Get == nil {
		t.Fatalf("GET /actions/long is not served; logs:\n%s", f.logs.String())
	}
	if n := len([]rune(op.Get.Description)); n != 400 {
		t.Errorf("description of %d characters, want 400", n)
	}
	tok := f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: audience, Scope: "long.read"})
	if r := f.do(t, http.MethodGet, "/actions/long?text=x", bearer(tok)); r.status != 200 {
		t.Errorf("GET /actions/long: %d %s", r.status, r.body)
	}
	if status, body := f.ready(t); status != 200 || !strings.Contains(body, `{"name":"openapi-document","status":"down","error":"failed"}`) {
		t.Errorf("readiness: %d %s; want 200 with openapi-document down", status, body)
	}
	if logs := f.logs.String(); !strings.Contains(logs, "OpenAPI document over the GPT Actions limits") ||
		!strings.Contains(logs, "#/paths/~1actions~1long/get/description: description is 400 characters, over 300") ||
		strings.Contains(logs, "capability service refused") {
		t.Errorf("logs:\n%s", logs)
	}
}

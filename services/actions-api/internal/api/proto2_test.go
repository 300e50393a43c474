package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// TestProto2RequiredFields: a proto2 backend's GET operation. Its required
// request field is a required query parameter in the document, and a
// request without it is a 400 naming it (it was sent to the backend and
// failed there as gRPC's codec refused the partial message). Given, the
// other parameters decode beside it (each was refused as a message
// without r). A response without its required field (a replica of an
// older version) is served with the field null, as the output schema
// admits, not failed as a whole.
func TestProto2RequiredFields(t *testing.T) {
	p2 := registrytest.Start(t, "p2", []registrytest.Service{registrytest.Proto2Required("ptwo")}, registrytest.PartialMessages())
	f := start(t, map[string]string{"CAPABILITY_BACKENDS": "capability-core=$CORE_GRPC_ADDR,p2=" + p2.Addr})
	op := f.doc.Paths.Find("/actions/ptwo")
	if op == nil || op.Get == nil {
		t.Fatalf("GET /actions/ptwo is not served; logs:\n%s", f.logs.String())
	}
	for _, p := range op.Get.Parameters {
		if want := p.Value.Name == "r"; p.Value.Required != want {
			t.Errorf("parameter %s: required %v, want %v", p.Value.Name, p.Value.Required, want)
		}
	}
	tok := f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: audience, Scope: "openid"})
	r := f.do(t, http.MethodGet, "/actions/ptwo?text=x&r=1", bearer(tok))
	if r.status != 200 || string(r.body) != `{"text":"x","backend":"p2","code":null}` {
		t.Errorf("GET with r: %d %s", r.status, r.body)
	}
	r = f.do(t, http.MethodGet, "/actions/ptwo?text=x", bearer(tok))
	if r.status != 400 || r.err.Error != "invalid_request" || !strings.Contains(r.err.Description, "required field r not set") {
		t.Errorf("GET without r: %d %s", r.status, r.body)
	}
	if n := len(p2.Calls()); n != 1 {
		t.Errorf("the backend had %d calls, want 1 (the request without r is not sent)", n)
	}

	// POST /actions/ptwo/{r}: the required r is the path's, so neither the
	// body's schema requires it (a body naming it is refused) nor is a
	// body without it refused (it was: "required field … not set").
	set := f.doc.Paths.Find("/actions/ptwo/{r}")
	if set == nil || set.Post == nil {
		t.Fatal("POST /actions/ptwo/{r} is not served")
	}
	if req := set.Post.RequestBody.Value.Content["application/json"].Schema.Value.Required; len(req) != 0 {
		t.Errorf("the body's schema requires %q, given in the path", req)
	}
	post, err := http.NewRequest(http.MethodPost, f.base+"/actions/ptwo/7", strings.NewReader(`{"text":"y"}`))
	if err != nil {
		t.Fatal(err)
	}
	post.Header.Set("Authorization", "Bearer "+tok)
	post.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(post)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	r = reply{status: res.StatusCode, header: res.Header, body: b}
	f.validate(t, post, r)
	if r.status != 200 || string(r.body) != `{"text":"y","backend":"p2","code":null}` {
		t.Errorf("POST with r in the path: %d %s", r.status, r.body)
	}
	if calls := p2.Calls(); len(calls) != 2 || calls[1].Method != "/ptwo.Proto2Service/Set" {
		t.Errorf("backend calls: %+v", calls)
	}
	if set.Post.RequestBody.Value.Required {
		t.Error("POST /actions/ptwo/{r}: the body, whose schema requires nothing, is required")
	}

	// POST /actions/ptwo/add: r is the body's, so the body is required in
	// the document (it was not, though an empty one is a 400), and an
	// empty body is the 400 naming r, never sent.
	add := f.doc.Paths.Find("/actions/ptwo/add")
	if add == nil || add.Post == nil {
		t.Fatal("POST /actions/ptwo/add is not served")
	}
	if body := add.Post.RequestBody.Value; !body.Required || !slices.Equal(body.Content["application/json"].Schema.Value.Required, []string{"r"}) {
		t.Errorf("POST /actions/ptwo/add: request body required %v, schema requires %q; want true and r", body.Required, body.Content["application/json"].Schema.Value.Required)
	}
	for body, want := range map[string]string{"": "required field r not set", `{"text":"y"}`: "required field r not set", "null": "the request body is null"} {
		post, err := http.NewRequest(http.MethodPost, f.base+"/actions/ptwo/add", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		post.Header.Set("Authorization", "Bearer "+tok)
		post.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(post)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		r = reply{status: res.StatusCode, header: res.Header, body: b}
		f.validate(t, post, r)
		var e Error
		if r.status != 400 || json.Unmarshal(b, &e) != nil || e.Error != "invalid_request" || !strings.Contains(e.Description, want) {
			t.Errorf("POST /actions/ptwo/add with body %q: %d %s, want 400 invalid_request %q", body, r.status, b, want)
		}
	}
	if n := len(p2.Calls()); n != 2 {
		t.Errorf("the backend had %d calls, want 2 (the bodies without r are not sent)", n)
	}
}

package api_test

import (
	"io"
	"net/http"
	"regexp"
	"testing"

	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
)

// TestPathParameterIsOneSegment: echo's last path parameter took the
// rest of the path, slashes included, so GET /actions/shapes/1/2 was
// served as /actions/shapes/{id} with id "1/2" (a 400 about the int64
// here; a string id such as a grant's reached the backend), and a POST
// there was a 405 naming GET. A path parameter is one segment of the
// document's path template: a path with more segments than its route
// (a trailing slash included) is the 404 of an unknown path for every
// method, and the backend is not called. An escaped slash (%2F) stays
// one segment and is decoded for the backend.
func TestPathParameterIsOneSegment(t *testing.T) {
	shapes := registrytest.Start(t, "shapes", []registrytest.Service{registrytest.Shapes("shapes")})
	f := start(t, map[string]string{"CAPABILITY_BACKENDS": "capability-core=$CORE_GRPC_ADDR,shapes=" + shapes.Addr})
	eventually(t, "the shapes operations in the document", func() bool {
		f.loadDocument(t)
		return f.doc.Paths.Find("/actions/shapes/{id}") != nil
	})
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/actions/shapes/1/2"},
		{http.MethodGet, "/actions/shapes/1/"},
		{http.MethodGet, "/actions/shapes//"},
		{http.MethodGet, "/actions/shapes/at/x/y"},
		{http.MethodDelete, "/actions/shapes/at/2024-01-02T03:04:05Z/x"},
		{http.MethodDelete, "/actions/shapes/at/2024-01-02T03:04:05Z/"},
		{http.MethodPost, "/actions/shapes/1/2"},
		{http.MethodOptions, "/actions/shapes/1/2"},
		{http.MethodHead, "/actions/shapes/1/2"},
	} {
		r := f.do(t, c.method, c.path, nil)
		if r.status != 404 || (c.method != http.MethodHead && r.err.Error != "not_found") || r.header.Get("Allow") != "" {
			t.Errorf("%s %s: %d (Allow %q) %s, want 404 not_found", c.method, c.path, r.status, r.header.Get("Allow"), r.body)
		}
	}
	// A browser at a listed origin can read this 404 as any other (its CORS
	// headers), a preflight of the path is refused as an unknown path's,
	// and the 404s count against no operation.
	listed := http.Header{"Origin": {"https://chatgpt.com"}}
	if r := f.do(t, http.MethodGet, "/actions/shapes/1/2", listed); r.status != 404 || r.header.Get("Access-Control-Allow-Origin") != "https://chatgpt.com" {
		t.Errorf("GET /actions/shapes/1/2 from a listed origin: %d %v, want 404 with its CORS headers", r.status, r.header)
	}
	preflight := http.Header{"Origin": {"https://chatgpt.com"}, "Access-Control-Request-Method": {"GET"}}
	if r := f.do(t, http.MethodOptions, "/actions/shapes/1/2", preflight); r.status != 404 || r.err.Error != "not_found" || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight of /actions/shapes/1/2: %d %v, want 404 not_found without CORS headers", r.status, r.header)
	}
	res, err := http.Get(f.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if m := regexp.MustCompile(`tollgate_actions_requests_total\{code="404",operation="shapes[^"]*"\}.*`).Find(metrics); m != nil {
		t.Errorf("a path no operation serves is counted as an operation's: %s", m)
	}
	if calls := shapes.Calls(); len(calls) != 0 {
		t.Errorf("the backend was called %d times for paths it does not serve", len(calls))
	}
	// One segment each: served (or refused by the parameter's type).
	if r := f.do(t, http.MethodGet, "/actions/shapes/7", nil); r.status != 200 {
		t.Errorf("GET /actions/shapes/7: %d %s", r.status, r.body)
	}
	if r := f.do(t, http.MethodDelete, "/actions/shapes/at/2024-01-02T03:04:05Z", nil); r.status != 200 {
		t.Errorf("DELETE /actions/shapes/at/…: %d %s", r.status, r.body)
	}
	if r := f.do(t, http.MethodGet, "/actions/shapes/1%2F2", nil); r.status != 400 || r.err.Description != `path parameter "id": want an integer in decimal digits, such as "1000" or "-5", got "1/2"` {
		t.Errorf("GET /actions/shapes/1%%2F2: %d %s, want the escaped slash decoded into the parameter", r.status, r.body)
	}
	if r := f.do(t, http.MethodPost, "/actions/shapes/7", nil); r.status != 405 {
		t.Errorf("POST /actions/shapes/7: %d %s, want 405", r.status, r.body)
	}
}
